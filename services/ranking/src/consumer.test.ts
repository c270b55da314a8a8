import { randomBytes } from "node:crypto";
import { create, toBinary } from "@bufbuild/protobuf";
import { headers, type ConsumerMessages, type JetStreamClient, type JsMsg, type MsgHdrs } from "nats";
import { describe, expect, it } from "vitest";
import { SortOrder, TieRule } from "@scoreboard/gen/scoreboard/v1/boards_pb";
import { ScoreChangedBatchSchema, ScoreChangedSchema } from "@scoreboard/gen/scoreboard/v1/events_pb";
import { EventSealer } from "@scoreboard/platform/event-seal";
import { createLogger } from "@scoreboard/platform/logger";
import { DeadLetterHeaders, Subjects } from "@scoreboard/platform/nats";
import type { Boards, ScoreState } from "./boards.js";
import { ScoreEventConsumer, deadLetterReason } from "./consumer.js";
import type { DefinedBoardWrites } from "./defined-boards/events.js";

describe("deadLetterReason", () => {
  it("maps every dead-letter reason text to one of three bounded labels", () => {
    expect(deadLetterReason("max-deliveries: Connection is closed.")).toBe("max_deliveries");
    expect(deadLetterReason("undecodable: premature EOF")).toBe("undecodable");
    expect(deadLetterReason("bad-signature")).toBe("verification");
    expect(deadLetterReason("verification-error: key k9 unknown")).toBe("verification");
  });
});

const sealer = new EventSealer({
  hmacKeys: new Map([["h1", randomBytes(32)]]),
  hmacKeyId: "h1",
  encryptionKeys: new Map([["e1", randomBytes(32)]]),
  encryptionKeyId: "e1",
});

const scoreChanged = (ledgerId: number, userId = `u${ledgerId}`) =>
  create(ScoreChangedSchema, { ledgerId: BigInt(ledgerId), userId, username: userId, newScore: BigInt(ledgerId * 10), version: BigInt(ledgerId) });

/** A JetStream message as the consumer sees it, recording what it was told. */
function message(subject: string, payload: Uint8Array, options: { deliveryCount?: number; seal?: EventSealer } = {}) {
  const sealed = (options.seal ?? sealer).seal(payload);
  const h = headers();
  for (const [name, value] of Object.entries(sealed.headers)) h.set(name, value);
  h.set("Nats-Msg-Id", "b1-test");
  const told: string[] = [];
  const msg = {
    subject,
    data: sealed.data,
    headers: h,
    seq: 7,
    info: { deliveryCount: options.deliveryCount ?? 1, stream: "SCORES", timestampNanos: 1 },
    ack: () => told.push("ack"),
    nak: () => told.push("nak"),
    term: () => told.push("term"),
  };
  return { msg: msg as unknown as JsMsg, told };
}

const batchOf = (count: number) =>
  toBinary(ScoreChangedBatchSchema, create(ScoreChangedBatchSchema, { events: Array.from({ length: count }, (_, i) => scoreChanged(i + 1)) }));

/** Runs a consumer over `msgs` until `done`, against boards that record (or fail) each apply. */
async function consume(msgs: JsMsg[], done: () => boolean, options: { failUser?: string; maxDeliver?: number; definedBoards?: DefinedBoardWrites } = {}) {
  const applied: ScoreState[] = [];
  const deadLetters: Array<{ subject: string; data: Uint8Array; headers: MsgHdrs }> = [];
  let inFlight = 0;
  let maxInFlight = 0;
  const boards = {
    apply: async (state: ScoreState) => {
      inFlight += 1;
      maxInFlight = Math.max(maxInFlight, inFlight);
      await new Promise((r) => setTimeout(r, 1));
      inFlight -= 1;
      if (state.userId === options.failUser) throw new Error("Connection is closed.");
      applied.push(state);
      return true;
    },
    applyPeriods: async () => [],
  } as unknown as Boards;
  let close!: () => void;
  const closed = new Promise<void>((r) => (close = r));
  const feed = {
    async *[Symbol.asyncIterator]() {
      yield* msgs;
      await closed;
    },
    close: async () => close(),
  } as unknown as ConsumerMessages;
  const js = {
    consumers: { get: async () => ({ consume: async () => feed }) },
    publish: async (subject: string, data: Uint8Array, opts: { headers: MsgHdrs }) => {
      deadLetters.push({ subject, data, headers: opts.headers });
      return { seq: 1, duplicate: false, stream: "SCORES_DLQ" };
    },
  } as unknown as JetStreamClient;
  const changed: string[][] = [];
  const changedBy: string[] = [];
  const consumer = new ScoreEventConsumer({
    js,
    boards,
    definedBoards: options.definedBoards,
    logger: createLogger("consumer-test", "silent"),
    onBoardsChanged: (b, event) => {
      changed.push(b);
      changedBy.push(event.userId);
    },
    declare: async () => {},
    opener: sealer,
    maxDeliver: options.maxDeliver ?? 5,
  });
  await consumer.start();
  const deadline = Date.now() + 5_000;
  while (!done() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
  await consumer.stop();
  return { applied, deadLetters, changed, changedBy, maxInFlight };
}

describe("ScoreEventConsumer", () => {
  it("applies every event of a batch message, 64 at a time, and acks the message once", async () => {
    const { msg, told } = message(Subjects.scoreBatch, batchOf(200));
    const { applied, changed, changedBy, maxInFlight, deadLetters } = await consume([msg], () => told.length > 0);
    expect(told).toEqual(["ack"]);
    expect(applied.map((s) => s.userId).sort()).toEqual(Array.from({ length: 200 }, (_, i) => `u${i + 1}`).sort());
    expect(applied.find((s) => s.userId === "u3")).toMatchObject({ score: 30, version: 3 });
    expect(changed).toHaveLength(200);
    // Each change comes with its event: the move announcements need who moved and by how much.
    expect(changedBy.sort()).toEqual(applied.map((s) => s.userId).sort());
    expect(maxInFlight).toBe(64);
    expect(deadLetters).toHaveLength(0);
  });

  it("applies a single ScoreChanged message, as releases before batches published them", async () => {
    const { msg, told } = message(Subjects.scoreChanged, toBinary(ScoreChangedSchema, scoreChanged(42, "legacy")));
    const { applied } = await consume([msg], () => told.length > 0);
    expect(told).toEqual(["ack"]);
    expect(applied).toMatchObject([{ userId: "legacy", score: 420, version: 42 }]);
  });

  it("dead-letters a batch with a bad signature whole, applying none of its events", async () => {
    const forger = new EventSealer({ hmacKeys: new Map([["h1", randomBytes(32)]]), hmacKeyId: "h1", encryptionKeys: new Map(), encryptionKeyId: undefined });
    const { msg, told } = message(Subjects.scoreBatch, batchOf(5), { seal: forger });
    const { applied, deadLetters } = await consume([msg], () => told.length > 0);
    expect(told).toEqual(["term"]);
    expect(applied).toHaveLength(0);
    expect(deadLetters).toHaveLength(1);
    expect(deadLetters[0]!.subject).toBe("scoreboard.dlq.score.batch");
    expect(Buffer.from(deadLetters[0]!.data).equals(Buffer.from(msg.data))).toBe(true);
    expect(deadLetters[0]!.headers.get(DeadLetterHeaders.reason)).toBe("bad-signature");
    expect(deadLetters[0]!.headers.get(DeadLetterHeaders.msgId)).toBe("b1-test");
  });

  it("naks a batch when one of its events fails, and dead-letters it whole after the max deliveries", async () => {
    const first = message(Subjects.scoreBatch, batchOf(10), { deliveryCount: 1 });
    const failing = await consume([first.msg], () => first.told.length > 0, { failUser: "u4", maxDeliver: 3 });
    expect(first.told).toEqual(["nak"]);
    expect(failing.applied).toHaveLength(9); // the rest applied; they are no-ops when the message comes back
    expect(failing.deadLetters).toHaveLength(0);

    const last = message(Subjects.scoreBatch, batchOf(10), { deliveryCount: 3 });
    const given = await consume([last.msg], () => last.told.length > 0, { failUser: "u4", maxDeliver: 3 });
    expect(last.told).toEqual(["term"]);
    expect(given.deadLetters).toHaveLength(1);
    expect(given.deadLetters[0]!.headers.get(DeadLetterHeaders.reason)).toBe("max-deliveries: Connection is closed.");
  });

  it("dead-letters a verified message on a subject that carries no score events", async () => {
    const { msg, told } = message("scoreboard.score.other", batchOf(1));
    const { applied, deadLetters } = await consume([msg], () => told.length > 0);
    expect(told).toEqual(["term"]);
    expect(applied).toHaveLength(0);
    expect(deadLetters[0]!.headers.get(DeadLetterHeaders.reason)).toMatch(/^undecodable: no score events/);
  });

  it("applies a submission's event to its defined board's season only, and retries it while that apply fails", async () => {
    const submission = create(ScoreChangedSchema, {
      ledgerId: 9n,
      userId: "racer",
      username: "Racer",
      boardEntry: { boardId: "laps", season: "20261207T0000Z", score: 61_250n, version: 2n, sortOrder: SortOrder.ASCENDING, tieRule: TieRule.SUBSCORE },
    });
    const payload = toBinary(ScoreChangedBatchSchema, create(ScoreChangedBatchSchema, { events: [submission, scoreChanged(1)] }));
    const seen: unknown[][] = [];
    const ok = message(Subjects.scoreBatch, payload);
    const { applied } = await consume([ok.msg], () => ok.told.length > 0, {
      definedBoards: {
        apply: async (...args) => {
          seen.push(args);
          return true;
        },
      },
    });
    expect(ok.told).toEqual(["ack"]);
    expect(applied.map((s) => s.userId)).toEqual(["u1"]); // the submission left the seed boards alone
    expect(seen).toMatchObject([
      [
        { boardId: "laps", order: "asc", tieRule: "subscore" },
        { season: "20261207T0000Z", userId: "racer", username: "Racer", score: 61_250, version: 2 },
        undefined,
      ],
    ]);
    const failing = message(Subjects.scoreBatch, payload);
    await consume([failing.msg], () => failing.told.length > 0, {
      definedBoards: {
        apply: async () => {
          throw new Error("Connection is closed.");
        },
      },
    });
    expect(failing.told).toEqual(["nak"]);
  });
});
