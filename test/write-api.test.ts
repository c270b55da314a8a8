// Every seed's write endpoint on the real mesh: shapes, status codes, retries,
// rate limits, and a table of bad inputs that must all be 4xx with JSON.
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { Scopes } from "@scoreboard/platform/auth";
import { startMesh, type Mesh } from "./harness/mesh.js";

let mesh: Mesh;

beforeAll(async () => {
  mesh = await startMesh(inject("infra"), {
    // Small limits so the tests can reach them without thousands of requests.
    RATE_LIMIT_SCORES_UPDATE_USER: "10/1m",
    RATE_LIMIT_SCORE_INCREMENT_USER: "100/1m",
  });
  await mesh.sql(`INSERT INTO actions (action_id, points) VALUES ('login', 5), ('boss', 50), ('quest', 20)`);
});
afterAll(async () => {
  await mesh?.stop();
});

type Answer = { status: number; body: Record<string, unknown>; headers: Headers };

async function post(path: string, body: unknown, token?: string, headers: Record<string, string> = {}): Promise<Answer> {
  const res = await fetch(`${mesh.urls.gateway}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json", ...(token ? { authorization: `Bearer ${token}` } : {}), ...headers },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
  const text = await res.text();
  let parsed: Record<string, unknown>;
  try {
    parsed = JSON.parse(text) as Record<string, unknown>;
  } catch {
    throw new Error(`${path} answered ${res.status} with non-JSON: ${text.slice(0, 200)}`);
  }
  return { status: res.status, body: parsed, headers: res.headers };
}

const total = async (userId: string) =>
  Number((await mesh.sql<{ score: string }>("SELECT score::text FROM scores WHERE user_id = $1", [userId]))[0]?.score ?? 0);

describe("seed 000: POST /api/scores/update", () => {
  it("grants the action for the token's own user", async () => {
    const token = await mesh.token("u000");
    const res = await post("/api/scores/update", { userId: "u000", actionId: "boss" }, token);
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ success: true, newScore: 50 });
  });

  it("answers 403 when userId is not the token's subject", async () => {
    const res = await post("/api/scores/update", { userId: "someone-else", actionId: "boss" }, await mesh.token("u000b"));
    expect(res).toMatchObject({ status: 403, body: { success: false } });
    expect(await total("someone-else")).toBe(0);
  });

  it("limits a user to 10 requests a minute with 429 and Retry-After", async () => {
    const token = await mesh.token("u000c");
    const statuses: number[] = [];
    let limited: Answer | undefined;
    for (let i = 0; i < 12; i++) {
      const res = await post("/api/scores/update", { userId: "u000c", actionId: i === 0 ? "login" : "nope" }, token);
      statuses.push(res.status);
      if (res.status === 429) limited ??= res;
    }
    expect(statuses.filter((s) => s === 429)).toHaveLength(2);
    expect(Number(limited!.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
    expect(limited!.body).toMatchObject({ success: false, code: "resource_exhausted" });
  });
});

describe("seed 001: POST /api/score/{user_id}", () => {
  it("adds 1..5 and answers newScore with a server-generated request_id", async () => {
    const token = await mesh.token("u001");
    const first = await post("/api/score/u001", { increment: 3 }, token);
    const second = await post("/api/score/u001", { increment: 5 }, token);
    expect(first).toMatchObject({ status: 200, body: { newScore: 3 } });
    expect(second).toMatchObject({ status: 200, body: { newScore: 8 } });
    expect(second.body.request_id).toMatch(/^[0-9a-f-]{36}$/);
    expect(second.body.request_id).not.toBe(first.body.request_id);
    const ledger = await mesh.sql<{ request_id: string }>("SELECT request_id::text FROM ledger WHERE user_id = 'u001'");
    expect(ledger.map((r) => r.request_id).sort()).toEqual([first.body.request_id, second.body.request_id].sort());
  });

  it("answers 400 outside 1..5, 403 for another user's path or without the player role", async () => {
    const token = await mesh.token("u001b");
    for (const increment of [0, 6, -1, 2.5, "3"]) {
      expect((await post("/api/score/u001b", { increment }, token)).status).toBe(400);
    }
    expect((await post("/api/score/u001", { increment: 1 }, token)).status).toBe(403);
    const spectator = await mesh.token("u001c", { roles: ["spectator"] });
    expect((await post("/api/score/u001c", { increment: 1 }, spectator)).status).toBe(403);
    expect(await total("u001b")).toBe(0);
  });

  it("checks an X-API-Key against the users table", async () => {
    const token = await mesh.token("u001d");
    expect((await post("/api/score/u001d", { increment: 1 }, token)).status).toBe(200);
    // sha256("right-key")
    await mesh.sql("UPDATE users SET api_key_hash = encode(sha256('right-key'), 'hex') WHERE user_id = 'u001d'");
    expect((await post("/api/score/u001d", { increment: 1 }, token, { "x-api-key": "wrong-key" })).status).toBe(401);
    expect((await post("/api/score/u001d", { increment: 1 }, token, { "x-api-key": "right-key" })).status).toBe(200);
  });
});

describe("seed 002: POST /api/score/update", () => {
  it("answers the seed's success shape", async () => {
    const res = await post("/api/score/update", { userId: "u002", scoreIncrement: 4 }, await mesh.token("u002"));
    expect(res).toMatchObject({ status: 200, body: { status: "success", message: "Score update queued", newScore: 4 } });
  });

  it("answers the seed's error shapes", async () => {
    const token = await mesh.token("u002b");
    for (const scoreIncrement of [0, -3, 1.5, "2", null]) {
      const res = await post("/api/score/update", { userId: "u002b", scoreIncrement }, token);
      expect(res).toMatchObject({ status: 400, body: { status: "error", message: "Invalid score increment" } });
    }
    const unauthenticated = await post("/api/score/update", { userId: "u002b", scoreIncrement: 1 });
    expect(unauthenticated).toMatchObject({ status: 401, body: { status: "error", message: "Authentication failed" } });
  });
});

describe("seed 003: POST /update-score", () => {
  it("answers {playerId,newScore}", async () => {
    const res = await post("/update-score", { playerId: "u003", scoreDelta: 5 }, await mesh.token("u003"));
    expect(res).toMatchObject({ status: 200, body: { playerId: "u003", newScore: 5 } });
  });

  it("allows a negative delta only with admin:score, and never below zero", async () => {
    const player = await mesh.token("u003");
    expect((await post("/update-score", { playerId: "u003", scoreDelta: -2 }, player)).status).toBe(403);
    const admin = await mesh.token("ops", { scopes: [Scopes.updateScore, Scopes.adminScore] });
    expect(await post("/update-score", { playerId: "u003", scoreDelta: -2 }, admin)).toMatchObject({ status: 200, body: { newScore: 3 } });
    expect((await post("/update-score", { playerId: "u003", scoreDelta: -10 }, admin)).status).toBe(400);
    expect(await total("u003")).toBe(3);
  });

  it("answers 401 without a token and 400 above the configured maximum", async () => {
    expect((await post("/update-score", { playerId: "u003", scoreDelta: 1 })).status).toBe(401);
    expect((await post("/update-score", { playerId: "u003", scoreDelta: 6 }, await mesh.token("u003"))).status).toBe(400);
  });
});

describe("retries with Idempotency-Key", () => {
  it("returns the first answer and grants once", async () => {
    const token = await mesh.token("retry");
    const key = { "idempotency-key": "retry-1" };
    const first = await post("/api/score/retry", { increment: 2 }, token, key);
    const again = await post("/api/score/retry", { increment: 2 }, token, key);
    expect(again.body.request_id).toBe(first.body.request_id);
    expect(again.body.newScore).toBe(2);
    expect(await total("retry")).toBe(2);
    const reused = await post("/api/score/retry", { increment: 3 }, token, key);
    expect(reused.status).toBe(400);
    const action = await post("/api/actions", { actionId: "quest" }, token, { "idempotency-key": "retry-2" });
    const actionAgain = await post("/api/actions", { actionId: "quest" }, token, { "idempotency-key": "retry-2" });
    expect(actionAgain).toMatchObject({ status: 200, body: { requestId: action.body.requestId, newScore: 22 } });
    expect(await total("retry")).toBe(22);
  });
});

describe("the audit log", () => {
  it("records grants and refusals with their reasons", async () => {
    const token = await mesh.token("audited");
    await post("/api/actions", { actionId: "login" }, token);
    await post("/api/actions", { actionId: "login" }, token);
    const rows = await mesh.sql<{ outcome: string; reason: string }>("SELECT outcome, reason FROM audit_log WHERE user_id = 'audited' ORDER BY id");
    expect(rows).toEqual([
      { outcome: "granted", reason: "granted" },
      { outcome: "refused", reason: "already_granted" },
    ]);
    const partitions = await mesh.sql<{ name: string }>(
      "SELECT c.relname AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'audit_log'::regclass",
    );
    expect(partitions.map((p) => p.name)).toContain(`audit_log_${new Date().getUTCFullYear()}_${String(new Date().getUTCMonth() + 1).padStart(2, "0")}`);
  });
});

describe("bad input never gets a 5xx or a partial write", () => {
  const big = "x".repeat(17 * 1024);
  const cases: Array<[string, string, unknown]> = [];
  const endpoints = [
    ["/api/actions", { actionId: "login" }],
    ["/api/scores/update", { userId: "bad", actionId: "login" }],
    ["/api/score/bad", { increment: 1 }],
    ["/api/score/update", { userId: "bad", scoreIncrement: 1 }],
    ["/update-score", { playerId: "bad", scoreDelta: 1 }],
  ] as const;
  for (const [path, valid] of endpoints) {
    const fields = Object.keys(valid);
    cases.push([path, "malformed JSON", '{"a":']);
    cases.push([path, "a JSON array", "[1,2]"]);
    cases.push([path, "a JSON string", '"hello"']);
    cases.push([path, "an empty body", ""]);
    cases.push([path, "a body over 16 KiB", JSON.stringify({ ...valid, padding: big })]);
    for (const field of fields) {
      const value = (valid as Record<string, unknown>)[field];
      const bad =
        typeof value === "number"
          ? ["1", 1.5, 1e300, -1e300, Number.MAX_SAFE_INTEGER + 2, true, null, {}]
          : [42, "", "x".repeat(65), "a\u0000b", "tab\there", [], null];
      for (const v of bad) cases.push([path, `${field}=${JSON.stringify(v)}`, { ...valid, [field]: v }]);
      const { [field]: _dropped, ...missing } = valid as Record<string, unknown>;
      cases.push([path, `missing ${field}`, missing]);
    }
  }

  it.each(cases)("%s with %s → 4xx JSON", async (path, _what, body) => {
    const res = await post(path, body, await mesh.token("bad"));
    expect(res.status).toBeGreaterThanOrEqual(400);
    expect(res.status).toBeLessThan(500);
    expect(typeof (res.body.message ?? res.body.error)).toBe("string");
  });

  it("left no partial writes behind", async () => {
    expect(await mesh.sql("SELECT 1 FROM ledger WHERE user_id = 'bad'")).toHaveLength(0);
    expect(await total("bad")).toBe(0);
  });
});
