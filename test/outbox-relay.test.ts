// The outbox relay on a real PostgreSQL: nothing committed is skipped, nothing
// is published twice by concurrent relays, a failed publish is retried, and a
// burst leaves as one JetStream message.
import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, expect, inject, it } from "vitest";
import { fromBinary } from "@bufbuild/protobuf";
import { connect } from "nats";
import pino from "pino";
import { ScoreChangedBatchSchema } from "@scoreboard/gen/scoreboard/v1/events_pb";
import type { Db } from "@scoreboard/platform/db";
import { EventSealer } from "@scoreboard/platform/event-seal";
import { ScoresStream, Subjects, ensureStream, headerRecord } from "@scoreboard/platform/nats";
import { OutboxRelay } from "../services/score/src/outbox.js";
import { JetStreamPublisher, batchMessageId, type EventPublisher, type OutboxEvent } from "../services/score/src/events.js";
import { freshMigratedDb } from "./harness/database.js";

let db: Db;
const logger = pino({ level: "silent" });
const options = { batchSize: 3, pollIntervalMs: 50, coalesceMs: 0 };

class RecordingPublisher implements EventPublisher {
  /** The ledger ids published, in order. */
  readonly published: string[] = [];
  failNext = 0;
  async publish(events: readonly OutboxEvent[]): Promise<void> {
    if (this.failNext > 0) {
      this.failNext -= 1;
      throw new Error("nats unavailable");
    }
    await new Promise((r) => setTimeout(r, 1));
    this.published.push(...events.map((e) => e.ledgerId));
  }
}

beforeAll(async () => {
  ({ db } = await freshMigratedDb(inject("infra").databaseUrl));
  await db.insertInto("actions").values({ action_id: "a", points: 1 }).execute();
});

afterAll(async () => {
  await db?.destroy();
});

let nextUser = 0;
/**
 * Inserts a ledger row and its outbox row, in `executor`'s transaction when it
 * is one; with `encoded`, the row carries no payload and the relay encodes
 * its ScoreChanged from the ledger, as for a grant.
 */
async function addEvent(executor: Db = db, encoded = false) {
  const userId = `u${nextUser++}`;
  await executor.insertInto("users").values({ user_id: userId, username: userId }).execute();
  const { id } = await executor.insertInto("ledger").values({ user_id: userId, action_id: "a", points: 1 }).returning("id").executeTakeFirstOrThrow();
  await executor
    .insertInto("outbox")
    .values({ ledger_id: id, subject: Subjects.scoreChanged, payload: encoded ? null : new Uint8Array([1]) })
    .execute();
  return String(id);
}

async function waitFor(done: () => boolean | Promise<boolean>, what: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!(await done())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

it("publishes a slower transaction's row that commits after a newer one was published", async () => {
  const publisher = new RecordingPublisher();
  const relay = new OutboxRelay(db, publisher, logger, options);
  let release!: () => void;
  const held = new Promise<void>((r) => (release = r));
  let slowId = "";
  const slow = db.transaction().execute(async (trx) => {
    slowId = await addEvent(trx); // lower id, not yet committed
    await held;
  });
  while (!slowId) await new Promise((r) => setTimeout(r, 5)); // its row exists, uncommitted
  const fastId = await addEvent();
  expect(Number(fastId)).toBeGreaterThan(Number(slowId));

  await relay.drain();
  expect(publisher.published).toEqual([fastId]);

  release();
  await slow;
  await relay.drain();
  expect(publisher.published).toEqual([fastId, slowId]);
  const pending = await db.selectFrom("outbox").select("id").where("published_at", "is", null).execute();
  expect(pending).toHaveLength(0);
});

it("publishes each row once with several relays draining at the same time", async () => {
  const ids: string[] = [];
  for (let i = 0; i < 40; i++) ids.push(await addEvent());
  const publisher = new RecordingPublisher();
  const relays = Array.from({ length: 4 }, () => new OutboxRelay(db, publisher, logger, options));
  await Promise.all(relays.map((r) => r.drain()));
  expect([...publisher.published].sort()).toEqual([...ids].sort());
  expect(new Set(publisher.published).size).toBe(publisher.published.length);
});

it("keeps rows unpublished when JetStream fails, and publishes them on retry", async () => {
  const publisher = new RecordingPublisher();
  const relay = new OutboxRelay(db, publisher, logger, { ...options, pollIntervalMs: 20 });
  const id = await addEvent();
  publisher.failNext = 2;
  await expect(relay.drain()).rejects.toThrow("nats unavailable");
  const [row] = await db.selectFrom("outbox").select("published_at").where("ledger_id", "=", Number(id)).execute();
  expect(row?.published_at).toBeNull();

  relay.start();
  const deadline = Date.now() + 5_000;
  while (!publisher.published.includes(id) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  await relay.stop();
  expect(publisher.published.filter((p) => p === id)).toHaveLength(1);
  // Published, the row is gone: the ledger keeps the grant.
  expect(await db.selectFrom("outbox").select("id").where("ledger_id", "=", Number(id)).execute()).toEqual([]);
});

it("gathers the kicks of a burst into one batch at the window's end, and publishes a kick after a quiet spell at once", async () => {
  /** A relay whose batches are recorded. */
  const recorded = (coalesceMs: number) => {
    const publisher = new RecordingPublisher();
    const relay = new OutboxRelay(db, publisher, logger, { ...options, batchSize: 100, pollIntervalMs: 600_000, coalesceMs });
    const batches: number[] = [];
    const drain = relay.drain.bind(relay);
    relay.drain = async () => {
      const moved = await drain();
      if (moved > 0) batches.push(moved);
      return moved;
    };
    return { publisher, relay, batches };
  };
  const until = async (done: () => boolean) => {
    const deadline = Date.now() + 10_000;
    while (!done() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  };

  // Started, it has just run a cycle: kicks within the window wait for its end and go together.
  const busy = recorded(1_000);
  busy.relay.start();
  await new Promise((r) => setTimeout(r, 50));
  const burst: string[] = [];
  for (let i = 0; i < 6; i++) {
    burst.push(await addEvent());
    busy.relay.kick();
  }
  await until(() => busy.publisher.published.length === 6);
  await busy.relay.stop();
  expect(busy.batches).toEqual([6]);
  expect([...busy.publisher.published].sort()).toEqual([...burst].sort());

  // No cycle for longer than the window (a minute here): a kick publishes at once, not a minute later.
  const quiet = recorded(60_000);
  const lone = await addEvent();
  quiet.relay.kick();
  await until(() => quiet.publisher.published.includes(lone));
  await quiet.relay.stop();
  expect(quiet.publisher.published).toEqual([lone]);
});

it("sends the grants of a burst as one sealed JetStream message, however many events it holds", async () => {
  const nc = await connect({ servers: inject("infra").natsUrl });
  try {
    const jsm = await nc.jetstreamManager();
    await jsm.streams.delete(ScoresStream.name).catch(() => false); // what earlier files left
    await ensureStream(jsm, ScoresStream, logger);
    const sealer = new EventSealer({
      hmacKeys: new Map([["h1", randomBytes(32)]]),
      hmacKeyId: "h1",
      encryptionKeys: new Map([["e1", randomBytes(32)]]),
      encryptionKeyId: "e1",
    });
    const jetstream = new JetStreamPublisher(nc.jetstream(), () => ensureStream(jsm, ScoresStream, logger), sealer);
    // The relay's first publish is held (a slow ack): the burst's grants commit and kick meanwhile.
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    let holding = false;
    const publisher: EventPublisher = {
      publish: async (events) => {
        if (!holding) {
          holding = true;
          await held;
        }
        return jetstream.publish(events);
      },
    };
    const relay = new OutboxRelay(db, publisher, logger, { ...options, batchSize: 256, coalesceMs: 10 });
    const first = await addEvent(db, true);
    relay.start();
    await waitFor(() => holding, "the first publish");
    const burst: string[] = [];
    for (let i = 0; i < 20; i++) {
      burst.push(await addEvent(db, true));
      relay.kick();
    }
    release();
    const unpublished = async () => (await db.selectFrom("outbox").select("id").where("published_at", "is", null).execute()).length;
    await waitFor(async () => (await unpublished()) === 0, "the burst to be published");
    await relay.stop();

    // 21 events, 2 messages: the lone first one, then the whole burst.
    const info = await jsm.streams.info(ScoresStream.name);
    expect(info.state.messages).toBe(2);
    const messages = await Promise.all([info.state.first_seq, info.state.last_seq].map((seq) => jsm.streams.getMessage(ScoresStream.name, { seq })));
    const ledgerIds = messages.map((m) => {
      expect(m.subject).toBe(Subjects.scoreBatch);
      const events = fromBinary(ScoreChangedBatchSchema, sealer.open(m.data, headerRecord(m.header))).events;
      const ids = events.map((e) => e.ledgerId.toString());
      expect(m.header.get("Nats-Msg-Id")).toBe(batchMessageId(ids));
      return ids;
    });
    expect(ledgerIds).toEqual([[first], burst]);
  } finally {
    await nc.close();
  }
});
