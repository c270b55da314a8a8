// SIGKILL the score service in the middle of a burst of grants. Every grant a
// client saw answered 200 must be in PostgreSQL once, in JetStream once and
// counted in Redis once, and the three must agree on every user's total.
import { afterAll, beforeAll, expect, inject, it } from "vitest";
import { Redis } from "ioredis";
import { RedisBoards } from "../services/ranking/src/boards.js";
import { connect } from "nats";
import { eventually, startMesh, type Mesh } from "./harness/mesh.js";

const USERS = 12;
const ACTIONS = 40;
let mesh: Mesh;

beforeAll(async () => {
  mesh = await startMesh(inject("infra"), { RATE_LIMIT_ACTIONS_USER: "100000/1m", RATE_LIMIT_WRITES_IP: "100000/1m" });
  // Points 1, 2, 4, … would overflow; distinct small primes-ish values make a wrong sum visible.
  await mesh.sql(`INSERT INTO actions (action_id, points) SELECT 'a' || g, 10 + g FROM generate_series(1, ${ACTIONS}) g`);
});
afterAll(async () => {
  await mesh?.stop();
});

interface Acknowledged {
  userId: string;
  actionId: string;
  requestId: string;
  points: number;
}

it("loses nothing and counts nothing twice when score is SIGKILLed mid-burst", async () => {
  const acknowledged: Acknowledged[] = [];
  const failures: Record<string, number> = {};
  let killed = false;

  const client = async (userId: string) => {
    const token = await mesh.token(userId);
    for (let a = 1; a <= ACTIONS; a++) {
      const actionId = `a${a}`;
      // Retry with the same key until the grant is answered: a grant that
      // committed while its answer was lost comes back as a replay.
      for (let attempt = 0; attempt < 200; attempt++) {
        let status = 0;
        let body: Record<string, unknown> = {};
        try {
          const res = await fetch(`${mesh.urls.gateway}/api/actions`, {
            method: "POST",
            headers: { "content-type": "application/json", authorization: `Bearer ${token}`, "idempotency-key": `${userId}/${actionId}` },
            body: JSON.stringify({ actionId }),
          });
          status = res.status;
          body = (await res.json()) as Record<string, unknown>;
        } catch {
          status = -1;
        }
        if (status === 200) {
          acknowledged.push({ userId, actionId, requestId: String(body.requestId), points: Number(body.points) });
          break;
        }
        failures[status] = (failures[status] ?? 0) + 1;
        if (![-1, 500, 502, 503, 504].includes(status)) throw new Error(`unexpected ${status}: ${JSON.stringify(body)}`);
        await new Promise((r) => setTimeout(r, 50));
      }
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

  // Every ledger row is in JetStream exactly once (Nats-Msg-Id = ledger id).
  await eventually(
    async () => ((await mesh.sql<{ n: number }>("SELECT count(*)::int AS n FROM outbox WHERE published_at IS NULL"))[0]!.n === 0 ? true : undefined),
    30_000,
    "the outbox to drain",
  );
  const nc = await connect({ servers: inject("infra").natsUrl });
  const jsm = await nc.jetstreamManager();
  const info = await jsm.streams.info("SCORES");
  const msgIds: string[] = [];
  for (let seq = info.state.first_seq; seq <= info.state.last_seq; seq++) {
    const msg = await jsm.streams.getMessage("SCORES", { seq });
    msgIds.push(msg.header.get("Nats-Msg-Id"));
  }
  await nc.close();
  const ledgerIds = ledger.map((r) => r.id).sort();
  expect(msgIds.filter((id) => ledgerIds.includes(id)).sort()).toEqual(ledgerIds);
  expect(new Set(msgIds).size).toBe(msgIds.length);

  // Redis counts each grant once: its totals equal PostgreSQL's, which equal
  // the sum of what the clients were told.
  const expected = new Map<string, number>();
  for (const a of acknowledged) expected.set(a.userId, (expected.get(a.userId) ?? 0) + a.points);
  const pgTotals = new Map(
    (await mesh.sql<{ user_id: string; score: number }>("SELECT user_id, score::int FROM scores WHERE user_id LIKE 'crash-%'")).map((r) => [r.user_id, r.score]),
  );
  expect(pgTotals).toEqual(expected);
  const redis = new Redis(inject("infra").redisUrl);
  try {
    await eventually(async () => {
      const users = [...expected.keys()];
      const scores = await new RedisBoards(redis).scoresOf("global", users);
      return users.every((userId, i) => scores[i] === expected.get(userId)) ? true : undefined;
    }, 30_000, "Redis to agree with PostgreSQL");
  } finally {
    redis.disconnect();
  }
});
