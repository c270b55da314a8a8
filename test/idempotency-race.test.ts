// Parallel retries with one Idempotency-Key, through the gateway on the real
// mesh. Score writes up to four grant batches at once, so copies of one request
// land in concurrent transactions: each copy must answer as the first grant
// did (same requestId), never "already granted", and the grant happens once.
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { startMesh, type Mesh } from "./harness/mesh.js";

let mesh: Mesh;

const rounds = 20;
const usersPerRound = 3;
const copies = 10;

beforeAll(async () => {
  mesh = await startMesh(inject("infra"), {
    // Every request here is a retry of a handful of writes, not abuse.
    RATE_LIMIT_WRITES_IP: "100000/1m",
    RATE_LIMIT_ACTIONS_USER: "1000/1m",
    RATE_LIMIT_SCORE_INCREMENT_USER: "1000/1m",
  });
  await mesh.sql(`INSERT INTO actions (action_id, points) VALUES ('quest', 20)`);
});
afterAll(async () => {
  await mesh?.stop();
});

type Answer = { status: number; body: Record<string, unknown> };

async function post(path: string, body: unknown, token: string, key: string): Promise<Answer> {
  const res = await fetch(`${mesh.urls.gateway}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${token}`, "idempotency-key": key },
    body: JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

/** Sends `copies` identical requests at once per user, `rounds` times; answers every user's answers. */
async function burst(prefix: string, send: (userId: string, token: string, key: string) => Promise<Answer>) {
  const answers = new Map<string, Answer[]>();
  for (let round = 0; round < rounds; round++) {
    const users = Array.from({ length: usersPerRound }, (_, i) => `${prefix}-${round}-${i}`);
    await Promise.all(
      users.map(async (userId) => {
        const token = await mesh.token(userId);
        const key = `key-${userId}`;
        answers.set(userId, await Promise.all(Array.from({ length: copies }, () => send(userId, token, key))));
      }),
    );
  }
  return answers;
}

async function ledgerAndAudit(prefix: string) {
  const ledger = await mesh.sql<{ user_id: string; n: number }>("SELECT user_id, count(*)::int AS n FROM ledger WHERE user_id LIKE $1 GROUP BY user_id", [
    `${prefix}-%`,
  ]);
  const refused = await mesh.sql<{ reason: string }>("SELECT reason FROM audit_log WHERE user_id LIKE $1 AND outcome = 'refused'", [`${prefix}-%`]);
  return { ledger, refused };
}

describe("parallel retries with one Idempotency-Key", () => {
  it("POST /api/actions: every copy gets the first grant's answer; one grant", async () => {
    const answers = await burst("act", (_userId, token, key) => post("/api/actions", { actionId: "quest" }, token, key));
    for (const [userId, list] of answers) {
      const requestIds = new Set(list.map((a) => a.body.requestId));
      expect(
        list.map((a) => a.status),
        userId,
      ).toEqual(Array(copies).fill(200));
      expect(requestIds.size, userId).toBe(1);
      expect(
        list.every((a) => a.body.newScore === 20),
        userId,
      ).toBe(true);
    }
    const { ledger, refused } = await ledgerAndAudit("act");
    expect(ledger).toHaveLength(rounds * usersPerRound);
    expect(ledger.every((r) => r.n === 1)).toBe(true);
    expect(refused).toEqual([]);
  });

  it("AddScore (POST /api/score/{user_id}): every copy gets the first grant's answer; one grant", async () => {
    const answers = await burst("add", (userId, token, key) => post(`/api/score/${userId}`, { increment: 3 }, token, key));
    for (const [userId, list] of answers) {
      expect(
        list.map((a) => a.status),
        userId,
      ).toEqual(Array(copies).fill(200));
      expect(new Set(list.map((a) => a.body.request_id)).size, userId).toBe(1);
      expect(
        list.every((a) => a.body.newScore === 3),
        userId,
      ).toBe(true);
    }
    const { ledger, refused } = await ledgerAndAudit("add");
    expect(ledger).toHaveLength(rounds * usersPerRound);
    expect(ledger.every((r) => r.n === 1)).toBe(true);
    expect(refused).toEqual([]);
    const totals = await mesh.sql<{ score: number }>("SELECT score::int AS score FROM scores WHERE user_id LIKE 'add-%'");
    expect(totals.every((t) => t.score === 3)).toBe(true);
  });

  it("a key reused in parallel for another increment is refused, never replayed", async () => {
    const answers = await burst("mix", (userId, token, key) => post(`/api/score/${userId}`, { increment: 1 + Math.floor(Math.random() * 2) }, token, key));
    for (const [userId, list] of answers) {
      const ok = list.filter((a) => a.status === 200);
      expect(ok.length, userId).toBeGreaterThan(0);
      // Only copies of the request that was granted get its answer.
      expect(new Set(ok.map((a) => a.body.increment)).size, userId).toBe(1);
      expect(
        ok.every((a) => a.body.newScore === ok[0]!.body.increment),
        userId,
      ).toBe(true);
      expect(
        list.filter((a) => a.status !== 200).every((a) => a.status === 400),
        userId,
      ).toBe(true);
    }
    const { ledger } = await ledgerAndAudit("mix");
    expect(ledger.every((r) => r.n === 1)).toBe(true);
  });
});
