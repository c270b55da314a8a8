// Only what score sealed reaches a leaderboard: forged or tampered score
// events published straight to NATS end in SCORES_DLQ, and so does a message
// ranking could not apply within its maximum deliveries (a batch whole), from
// where the dead-letters CLI lists and replays it.
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { connect, headers, type JetStreamManager, type NatsConnection, type StoredMsg } from "nats";
import { ScoreChangedBatchSchema, ScoreChangedSchema } from "@scoreboard/gen/scoreboard/v1/events_pb";
import { EnvReader } from "@scoreboard/platform/config";
import { EventSealer, generateEventSealEnv, readEventSealConfig } from "@scoreboard/platform/event-seal";
import { DeadLetterHeaders, DeadLettersStream, ScoresStream, Subjects } from "@scoreboard/platform/nats";
import { batchMessageId } from "../services/score/src/events.js";
import { startRedis, type RedisInstance } from "./harness/infra.js";
import { eventually, startMesh, type Mesh } from "./harness/mesh.js";

const root = fileURLToPath(new URL("../", import.meta.url));
const sealEnv = generateEventSealEnv();
const MAX_DELIVER = 3;

let redis: RedisInstance;
let mesh: Mesh;
let nc: NatsConnection;
let jsm: JetStreamManager;
let natsUrl: string;

beforeAll(async () => {
  // Its own Redis, so this file can take it away without touching the others.
  redis = await startRedis();
  const infra = inject("infra");
  natsUrl = infra.natsUrl;
  mesh = await startMesh({ ...infra, redisUrl: redis.url }, { ...sealEnv, RANKING_MAX_DELIVER: String(MAX_DELIVER) });
  await mesh.sql(`INSERT INTO actions (action_id, points) VALUES ('a', 5), ('b', 7), ('c', 11)`);
  nc = await connect({ servers: natsUrl });
  jsm = await nc.jetstreamManager();
});

afterAll(async () => {
  await nc?.close();
  await mesh?.stop();
  await redis?.stop();
});

async function grant(userId: string, actionId: string): Promise<number> {
  const res = await mesh.submitAction(userId, actionId);
  return res.status;
}

async function leaderboard(): Promise<{ userId: string; score: number }[]> {
  const res = await fetch(`${mesh.urls.gateway}/api/leaderboard`);
  expect(res.status).toBe(200);
  return ((await res.json()) as { data: { userId: string; score: number }[] }).data;
}

/** Every dead letter, oldest first. */
async function deadLetters(): Promise<StoredMsg[]> {
  const info = await jsm.streams.info(DeadLettersStream.name, { deleted_details: true });
  const deleted = new Set(info.state.deleted ?? []);
  const out: StoredMsg[] = [];
  if (info.state.messages === 0) return out;
  for (let seq = info.state.first_seq; seq <= info.state.last_seq; seq++) {
    if (!deleted.has(seq)) out.push(await jsm.streams.getMessage(DeadLettersStream.name, { seq }));
  }
  return out;
}

async function deadLetterCount(n: number, what: string, timeoutMs = 15_000): Promise<StoredMsg[]> {
  return eventually(
    async () => {
      const letters = await deadLetters();
      return letters.length === n ? letters : undefined;
    },
    timeoutMs,
    what,
  );
}

function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ["--import", "tsx", "cli/main.ts", "dead-letters", ...args],
      { cwd: root, env: { PATH: process.env.PATH, HOME: process.env.HOME, NATS_URL: natsUrl, ...sealEnv }, timeout: 30_000 },
      (err, stdout, stderr) => resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

const sealer = () => {
  const env = new EnvReader(sealEnv);
  const config = readEventSealConfig(env, "production");
  env.done();
  return new EventSealer(config);
};

const forgedEvent = () =>
  toBinary(
    ScoreChangedSchema,
    create(ScoreChangedSchema, {
      ledgerId: 999_999n,
      requestId: "forged",
      userId: "mallory",
      username: "Mallory",
      actionId: "a",
      points: 1_000_000_000n,
      newScore: 1_000_000_000n,
      version: 1n,
    }),
  );

describe("sealed score events", () => {
  it("carries a grant to the leaderboard, signed and encrypted on the wire", async () => {
    expect(await grant("ann", "a")).toBe(200);
    await eventually(async () => ((await leaderboard()).find((e) => e.userId === "ann" && e.score === 5) ? true : undefined), 10_000, "ann on the leaderboard");
    const stored = await jsm.streams.getMessage(ScoresStream.name, { last_by_subj: Subjects.scoreBatch });
    expect(stored.header.get("Sb-Sig")).toMatch(/^v1;kid=h1;mac=[A-Za-z0-9_-]{43}$/);
    expect(stored.header.get("Sb-Enc")).toMatch(/^v1;alg=A256GCM;kid=e1;iv=[A-Za-z0-9_-]{16}$/);
    expect(Buffer.from(stored.data).includes(Buffer.from("ann"))).toBe(false);
    const headersOf = Object.fromEntries([...stored.header].map(([k, v]) => [k, v[0]!]));
    const { events } = fromBinary(ScoreChangedBatchSchema, sealer().open(stored.data, headersOf));
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ userId: "ann", newScore: 5n, version: 1n });
    expect(stored.header.get("Nats-Msg-Id")).toBe(batchMessageId([events[0]!.ledgerId.toString()]));
  });

  it("keeps forged and tampered events off the leaderboard and in SCORES_DLQ with the reason", async () => {
    const js = nc.jetstream();
    // ann's genuine sealed batch, the newest in SCORES so far.
    const genuine = await jsm.streams.getMessage(ScoresStream.name, { last_by_subj: Subjects.scoreBatch });
    expect(genuine.header.get("Sb-Enc")).not.toBe("");
    const forged = forgedEvent();
    // 1. no signature at all
    const unsigned = await js.publish(Subjects.scoreChanged, forged, { msgID: "forged-unsigned" });
    // 2. signed under the real key id with a key the attacker made up
    const wrongKey = new EventSealer({
      hmacKeys: new Map([["h1", randomBytes(32)]]),
      hmacKeyId: "h1",
      encryptionKeys: new Map(),
      encryptionKeyId: undefined,
    }).seal(forged);
    const h2 = headers();
    for (const [k, v] of Object.entries(wrongKey.headers)) h2.set(k, v);
    const badSig = await js.publish(Subjects.scoreChanged, wrongKey.data, { msgID: "forged-wrong-key", headers: h2 });
    // 3. a genuine sealed batch with one byte of its ciphertext changed
    const tampered = new Uint8Array(genuine.data);
    tampered[0] = tampered[0]! ^ 0x01;
    const h3 = headers();
    h3.set("Sb-Sig", genuine.header.get("Sb-Sig"));
    h3.set("Sb-Enc", genuine.header.get("Sb-Enc"));
    const flipped = await js.publish(Subjects.scoreBatch, tampered, { msgID: "forged-tampered", headers: h3 });

    const letters = await deadLetterCount(3, "three dead letters");
    const byId = Object.fromEntries(letters.map((m) => [m.header.get(DeadLetterHeaders.msgId), m]));
    expect(Object.keys(byId).sort()).toEqual(["forged-tampered", "forged-unsigned", "forged-wrong-key"]);
    expect(byId["forged-unsigned"]!.header.get(DeadLetterHeaders.reason)).toBe("missing-signature");
    expect(byId["forged-wrong-key"]!.header.get(DeadLetterHeaders.reason)).toBe("bad-signature");
    expect(byId["forged-tampered"]!.header.get(DeadLetterHeaders.reason)).toBe("bad-signature");
    for (const [id, ack, data, subject] of [
      ["forged-unsigned", unsigned, forged, "scoreboard.dlq.score.changed"],
      ["forged-wrong-key", badSig, wrongKey.data, "scoreboard.dlq.score.changed"],
      ["forged-tampered", flipped, tampered, "scoreboard.dlq.score.batch"],
    ] as const) {
      const letter = byId[id]!;
      expect(letter.subject).toBe(subject);
      expect(Buffer.from(letter.data).equals(Buffer.from(data))).toBe(true);
      expect(letter.header.get(DeadLetterHeaders.streamSeq)).toBe(String(ack.seq));
      expect(letter.header.get(DeadLetterHeaders.deliveries)).toBe("1");
      expect(Date.now() - Date.parse(letter.header.get(DeadLetterHeaders.at))).toBeLessThan(60_000);
      expect(letter.header.get("Nats-Expected-Stream")).toBe(DeadLettersStream.name);
    }
    // The original seal travels with the dead letter, untouched.
    expect(byId["forged-wrong-key"]!.header.get("Sb-Sig")).toBe(wrongKey.headers["Sb-Sig"]);

    // Ranking moved on (a later grant lands) and never ranked mallory.
    expect(await grant("bob", "b")).toBe(200);
    const board = await eventually(
      async () => {
        const entries = await leaderboard();
        return entries.some((e) => e.userId === "bob") ? entries : undefined;
      },
      10_000,
      "bob after the forgeries",
    );
    expect(board.map((e) => e.userId).sort()).toEqual(["ann", "bob"]);
    expect(Math.max(...board.map((e) => e.score))).toBe(7);
    const consumer = await jsm.consumers.info(ScoresStream.name, "ranking");
    expect(consumer.num_ack_pending).toBe(0);
  });

  it("dead-letters an event ranking cannot apply within its max deliveries, and the CLI lists and replays it", async () => {
    // The event is committed and stored while Redis is still up (the gateway uses it too)...
    await mesh.kill("ranking", "SIGTERM");
    expect(await grant("carl", "c")).toBe(200);
    const carlLedgerId = (await mesh.sql<{ id: string }>(`SELECT id::text AS id FROM ledger WHERE user_id = 'carl'`))[0]!.id;
    const carlMsgId = batchMessageId([carlLedgerId]);
    await eventually(
      async () => {
        const pending = await mesh.sql<{ n: number }>("SELECT count(*)::int AS n FROM outbox WHERE published_at IS NULL");
        return pending[0]!.n === 0 ? true : undefined;
      },
      10_000,
      "carl's event in SCORES",
    );
    // ...then ranking comes back to find Redis gone: every attempt fails.
    await redis.kill("SIGTERM");
    await mesh.start("ranking");
    const letters = await deadLetterCount(4, "carl's event dead-lettered after max deliveries", 30_000);
    const carl = letters.find((m) => m.header.get(DeadLetterHeaders.msgId) === carlMsgId);
    expect(carl, "carl's dead letter").toBeDefined();
    expect(carl!.header.get(DeadLetterHeaders.reason)).toMatch(/^max-deliveries: /);
    expect(carl!.header.get(DeadLetterHeaders.deliveries)).toBe(String(MAX_DELIVER));
    expect(carl!.header.get("Sb-Sig")).toMatch(/^v1;kid=h1;/);
    // Score published it with Nats-Expected-Stream: SCORES; the dead letter
    // carries only its own directives.
    expect(carl!.header.values("Nats-Expected-Stream")).toEqual([DeadLettersStream.name]);
    await redis.restart();

    const listed = await cli("list");
    expect(listed.stderr).toBe("");
    expect(listed.code).toBe(0);
    const rows = listed.stdout.trim().split("\n");
    expect(rows[0]).toBe("SEQ\tTIME\tDELIVERIES\tLEDGER\tREASON");
    expect(rows).toHaveLength(5);
    const row = (seq: number) => rows.find((r) => r.startsWith(`${seq}\t`))?.split("\t");
    // The CLI has the keys: it decrypts carl's event to show its ledger id;
    // the plain forgeries show the ledger id they claim.
    expect(row(carl!.seq)).toEqual([String(carl!.seq), expect.any(String), String(MAX_DELIVER), carlLedgerId, expect.stringMatching(/^max-deliveries: /)]);
    const unsigned = letters.find((m) => m.header.get(DeadLetterHeaders.msgId) === "forged-unsigned")!;
    expect(row(unsigned.seq)).toEqual([String(unsigned.seq), expect.any(String), "1", "999999", "missing-signature"]);

    const shown = await cli("show", String(carl!.seq));
    expect(shown.code).toBe(0);
    expect(shown.stdout).toContain("verified: yes");
    expect(shown.stdout).toContain('"userId":"carl"');

    const replayed = await cli("replay", String(carl!.seq));
    expect(replayed.stderr).toBe("");
    expect(replayed.code).toBe(0);
    expect(replayed.stdout).toContain(`as ${carlMsgId}-replay-${carl!.seq}`);
    await eventually(
      async () => ((await leaderboard()).find((e) => e.userId === "carl" && e.score === 11) ? true : undefined),
      20_000,
      "carl on the leaderboard after the replay",
    );
    expect((await deadLetters()).map((m) => m.seq)).not.toContain(carl!.seq);
    const gone = await cli("show", String(carl!.seq));
    expect(gone.code).toBe(1);
    expect(gone.stderr).toContain(`no dead letter with sequence ${carl!.seq}`);
  });

  it("sends replayed forgeries straight back to SCORES_DLQ, purges, and refuses bad usage", async () => {
    const before = await deadLetters();
    expect(before).toHaveLength(3);
    const all = await cli("replay-all");
    expect(all.code).toBe(0);
    expect(all.stdout).toContain("replayed 3 dead letters");
    const after = await eventually(
      async () => {
        const letters = await deadLetters();
        return letters.length === 3 && letters.every((m) => m.seq > before.at(-1)!.seq) ? letters : undefined;
      },
      15_000,
      "the replayed forgeries dead-lettered again",
    );
    expect(after.map((m) => m.header.get(DeadLetterHeaders.reason)).sort()).toEqual(["bad-signature", "bad-signature", "missing-signature"]);
    expect((await leaderboard()).some((e) => e.userId === "mallory")).toBe(false);

    const purged = await cli("purge");
    expect(purged.code).toBe(0);
    expect(purged.stdout.trim()).toBe("purged 3 dead letters");
    expect((await cli("list")).stdout.trim()).toBe("no dead letters");

    const usages = [[], ["nope"], ["show"], ["replay", "x"], ["list", "extra"]];
    const bad = await Promise.all(usages.map((args) => cli(...args)));
    for (const [i, result] of bad.entries()) {
      expect(result.code, usages[i]!.join(" ")).toBe(2);
      expect(result.stderr).toContain("(scoreboard dead-letters --help for usage)");
    }
  });

  it("dead-letters a forged batch whole, and the CLI lists and shows each of its events", async () => {
    const events = ["mallory", "mallet", "malva"].map((userId, i) =>
      create(ScoreChangedSchema, { ledgerId: BigInt(900_001 + i), requestId: "forged", userId, username: userId, newScore: 1_000_000_000n, version: 1n }),
    );
    const batch = toBinary(ScoreChangedBatchSchema, create(ScoreChangedBatchSchema, { events }));
    const forged = new EventSealer({
      hmacKeys: new Map([["h1", randomBytes(32)]]),
      hmacKeyId: "h1",
      encryptionKeys: new Map(),
      encryptionKeyId: undefined,
    }).seal(batch);
    const h = headers();
    for (const [k, v] of Object.entries(forged.headers)) h.set(k, v);
    await nc.jetstream().publish(Subjects.scoreBatch, forged.data, { msgID: "forged-batch", headers: h });

    const [letter] = await deadLetterCount(1, "the forged batch dead-lettered");
    expect(letter!.subject).toBe("scoreboard.dlq.score.batch");
    expect(letter!.header.get(DeadLetterHeaders.reason)).toBe("bad-signature");
    expect(letter!.header.get(DeadLetterHeaders.msgId)).toBe("forged-batch");
    expect(Buffer.from(letter!.data).equals(Buffer.from(forged.data))).toBe(true);

    const listed = await cli("list");
    expect(listed.code).toBe(0);
    const rows = listed.stdout
      .trim()
      .split("\n")
      .slice(1)
      .map((r) => r.split("\t"));
    expect(rows.map((r) => [r[0], r[3], r[4]])).toEqual(["900001", "900002", "900003"].map((id) => [String(letter!.seq), id, "bad-signature"]));
    const shown = await cli("show", String(letter!.seq));
    expect(shown.code).toBe(0);
    expect(shown.stdout).toContain("verified: no: bad-signature");
    expect(shown.stdout).toContain("events: 3");
    for (const userId of ["mallory", "mallet", "malva"]) expect(shown.stdout).toContain(`"userId":"${userId}"`);
    expect((await leaderboard()).some((e) => e.userId.startsWith("mal"))).toBe(false);
    expect((await cli("purge")).code).toBe(0);
  });

  it("still applies a single sealed ScoreChanged, as releases before batches published them", async () => {
    const event = create(ScoreChangedSchema, {
      ledgerId: 800_001n,
      requestId: "legacy",
      userId: "lena",
      username: "Lena",
      actionId: "a",
      points: 5n,
      newScore: 5n,
      version: 1n,
    });
    const sealed = sealer().seal(toBinary(ScoreChangedSchema, event));
    const h = headers();
    for (const [k, v] of Object.entries(sealed.headers)) h.set(k, v);
    await nc.jetstream().publish(Subjects.scoreChanged, sealed.data, { msgID: "800001", headers: h });
    await eventually(
      async () => ((await leaderboard()).find((e) => e.userId === "lena" && e.score === 5) ? true : undefined),
      10_000,
      "lena's legacy event on the leaderboard",
    );
    await eventually(async () => ((await jsm.consumers.info(ScoresStream.name, "ranking")).num_ack_pending === 0 ? true : undefined), 10_000, "the ack");
    expect(await deadLetters()).toHaveLength(0);
  });
});
