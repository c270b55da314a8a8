// SIGKILL the score service in the middle of a burst of grants. Every grant a
// client saw answered 200 must be in PostgreSQL once, in JetStream (at least
// once: a batch published but not yet marked when score died goes again) and
// counted in Redis once, and the three must agree on every user's total.
import { afterAll, beforeAll, expect, inject, it } from "vitest";
import { Redis } from "ioredis";
import { RedisBoards } from "../services/ranking/src/boards.js";
import { connect } from "nats";
import { EnvReader } from "@scoreboard/platform/config";
import { EventSealer, generateEventSealEnv, readEventSealConfig } from "@scoreboard/platform/event-seal";
import { ScoresStream, headerRecord } from "@scoreboard/platform/nats";
import { decodeScoreEvents } from "@scoreboard/platform/score-events";
import { eventually, startMesh, type Mesh } from "./harness/mesh.js";
import { grantUntilAnswered, type AnsweredGrant } from "./harness/retried-grant.js";

const USERS = 12;
const ACTIONS = 40;
const sealEnv = generateEventSealEnv();
let mesh: Mesh;

beforeAll(async () => {
  mesh = await startMesh(inject("infra"), { ...sealEnv, RATE_LIMIT_ACTIONS_USER: "100000/1m", RATE_LIMIT_WRITES_IP: "100000/1m" });
  // Points 1, 2, 4, … would overflow; distinct small primes-ish values make a wrong sum visible.
  await mesh.sql(`INSERT INTO actions (action_id, points) SELECT 'a' || g, 10 + g FROM generate_series(1, ${ACTIONS}) g`);
});
afterAll(async () => {
  await mesh?.stop();
});

/** The ledger ids of every event in SCORES, one entry per time it is there, and every message's Nats-Msg-Id. */
async function eventsInStream(): Promise<{ ledgerIds: string[]; msgIds: string[] }> {
  const env = new EnvReader(sealEnv);
  const config = readEventSealConfig(env, "production");
  env.done();
  const sealer = new EventSealer(config);
  const nc = await connect({ servers: inject("infra").natsUrl });
  try {
    const jsm = await nc.jetstreamManager();
    const info = await jsm.streams.info(ScoresStream.name);
    const ledgerIds: string[] = [];
    const msgIds: string[] = [];
    for (let seq = info.state.first_seq; seq <= info.state.last_seq; seq++) {
      const msg = await jsm.streams.getMessage(ScoresStream.name, { seq });
      msgIds.push(msg.header.get("Nats-Msg-Id"));
      const events = decodeScoreEvents(msg.subject, sealer.open(msg.data, headerRecord(msg.header)));
      ledgerIds.push(...events.map((e) => e.ledgerId.toString()));
    }
    return { ledgerIds, msgIds };
  } finally {
    await nc.close();
  }
}

async function outboxDrained(): Promise<void> {
  await eventually(
    async () => ((await mesh.sql<{ n: number }>("SELECT count(*)::int AS n FROM outbox WHERE published_at IS NULL"))[0]!.n === 0 ? true : undefined),
    30_000,
    "the outbox to drain",
  );
}

/** Waits until Redis's global board holds exactly PostgreSQL's total for every user whose id starts with `prefix`. */
async function redisAgreesWithPostgres(prefix: string, expected?: Map<string, number>): Promise<void> {
  const pgTotals = new Map(
    (await mesh.sql<{ user_id: string; score: number }>("SELECT user_id, score::int FROM scores WHERE user_id LIKE $1", [`${prefix}%`])).map((r) => [
      r.user_id,
      r.score,
    ]),
  );
  if (expected) expect(pgTotals).toEqual(expected);
  const redis = new Redis(inject("infra").redisUrl);
  try {
    await eventually(
      async () => {
        const users = [...pgTotals.keys()];
        const scores = await new RedisBoards(redis).scoresOf("global", users);
        return users.every((userId, i) => scores[i] === pgTotals.get(userId)) ? true : undefined;
      },
      30_000,
      "Redis to agree with PostgreSQL",
    );
  } finally {
    redis.disconnect();
  }
}

type Acknowledged = AnsweredGrant;

it("loses nothing and counts nothing twice when score is SIGKILLed mid-burst", async () => {
  const acknowledged: Acknowledged[] = [];
  const failures: Record<string, number> = {};
  let killed = false;

  const client = async (userId: string) => {
    const token = await mesh.token(userId);
    for (let a = 1; a <= ACTIONS; a++) {
      const actionId = `a${a}`;
      acknowledged.push(await grantUntilAnswered(mesh.urls.gateway, token, userId, actionId, failures, 200));
    }
  };

  const burst = Promise.all(Array.from({ length: USERS }, (_, i) => client(`crash-${i}`)));
  await eventually(async () => (acknowledged.length >= 60 ? true : undefined), 30_000, "the burst to get going");
  await mesh.kill("score", "SIGKILL");
  killed = true;
  const atKill = acknowledged.length;
  await new Promise((r) => setTimeout(r, 500));
  await mesh.start("score");
  await burst;
  expect(killed).toBe(true);
  expect(atKill).toBeLessThan(USERS * ACTIONS);
  expect(Object.keys(failures).length).toBeGreaterThan(0); // the kill was felt

  // Every answered grant is in PostgreSQL exactly once.
  expect(acknowledged).toHaveLength(USERS * ACTIONS);
  const ledger = await mesh.sql<{ id: string; request_id: string; user_id: string; points: number }>(
    "SELECT id::text, request_id::text, user_id, points FROM ledger WHERE user_id LIKE 'crash-%'",
  );
  expect(ledger).toHaveLength(USERS * ACTIONS);
  expect(new Set(ledger.map((r) => r.request_id))).toEqual(new Set(acknowledged.map((a) => a.requestId)));

  // Every ledger row's event is in JetStream, in the batches the relay
  // published; the server stored no message id twice.
  await outboxDrained();
  const stream = await eventsInStream();
  const ledgerIds = new Set(ledger.map((r) => r.id));
  expect(new Set(stream.ledgerIds.filter((id) => ledgerIds.has(id)))).toEqual(ledgerIds);
  expect(stream.msgIds.length).toBeLessThan(stream.ledgerIds.length); // batched
  expect(new Set(stream.msgIds).size).toBe(stream.msgIds.length);

  // Redis counts each grant once: its totals equal PostgreSQL's, which equal
  // the sum of what the clients were told.
  const expected = new Map<string, number>();
  for (const a of acknowledged) expected.set(a.userId, (expected.get(a.userId) ?? 0) + a.points);
  await redisAgreesWithPostgres("crash-", expected);
});

it("counts events once that the relay published twice (it died between the publish and marking the rows)", async () => {
  const users = ["again-0", "again-1", "again-2"];
  // One published batch each, so any republish is composed differently and
  // JetStream's duplicate window does not drop it.
  for (const userId of users) {
    expect((await mesh.submitAction(userId, "a1")).status).toBe(200);
    await outboxDrained();
  }
  const first = await mesh.sql<{ id: string }>("SELECT id::text FROM ledger WHERE user_id LIKE 'again-%'");
  // What a relay that died after JetStream's ack but before its commit leaves: the rows still there.
  await mesh.sql("INSERT INTO outbox (ledger_id, subject) SELECT id, 'scoreboard.score.changed' FROM ledger WHERE user_id LIKE 'again-%'");
  // Newer grants of the same users race the republished older events to ranking.
  const newer = await Promise.all(users.map((userId) => mesh.submitAction(userId, "a2")));
  expect(newer.map((r) => r.status)).toEqual([200, 200, 200]);
  await outboxDrained();

  const { ledgerIds } = await eventsInStream();
  for (const { id } of first) expect(ledgerIds.filter((l) => l === id)).toHaveLength(2);
  // Ranking has had every copy, so the check below sees their final effect.
  const nc = await connect({ servers: inject("infra").natsUrl });
  try {
    const jsm = await nc.jetstreamManager();
    await eventually(
      async () => {
        const consumer = await jsm.consumers.info(ScoresStream.name, "ranking");
        return consumer.num_pending === 0 && consumer.num_ack_pending === 0 ? true : undefined;
      },
      30_000,
      "ranking to ack every message",
    );
  } finally {
    await nc.close();
  }
  await redisAgreesWithPostgres("again-", new Map(users.map((u) => [u, 11 + 12])));
});
