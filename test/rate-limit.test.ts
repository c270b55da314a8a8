// The sliding-window limiter on a real Redis: shared across replicas, exact
// under concurrency, and still deciding (per fail mode) while Redis is down.
import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, inject, it, vi } from "vitest";
import { Redis } from "ioredis";
import { RedisSlidingWindowLimiter, type RateLimitDecision, type RateLimitRule } from "../packages/platform/src/rate-limit.js";
import { startRedis, type RedisInstance } from "./harness/infra.js";

// Other files share this Redis: every key of this file lives under one unique prefix.
const prefix = `rl-test-${randomUUID()}:`;
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const connections: Redis[] = [];

function connect(url: string): Redis {
  const redis = new Redis(url, { maxRetriesPerRequest: 1, retryStrategy: () => 100 });
  redis.on("error", () => undefined); // outages are the limiter's business here
  connections.push(redis);
  return redis;
}

/** Retries `attempt` every 20ms until it returns a decision matching `until`. */
async function pollFor(attempt: () => Promise<RateLimitDecision>, until: (d: RateLimitDecision) => boolean, timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const decision = await attempt();
    if (until(decision)) return decision;
    if (Date.now() > deadline) throw new Error(`no matching decision within ${timeoutMs}ms; last: ${JSON.stringify(decision)}`);
    await sleep(20);
  }
}

let redis: Redis;
let limiter: RedisSlidingWindowLimiter;
let ruleSeq = 0;
const rule = (limit: number, windowMs: number, failMode: RateLimitRule["failMode"] = "local"): RateLimitRule => ({
  name: `rule-${++ruleSeq}`,
  limit,
  windowMs,
  failMode,
});

beforeAll(() => {
  redis = connect(inject("infra").redisUrl);
  limiter = new RedisSlidingWindowLimiter(redis, { prefix, timeoutMs: 1_000 });
});

afterAll(async () => {
  const keys = await redis.keys(`${prefix}*`);
  if (keys.length > 0) await redis.del(...keys);
  for (const c of connections) c.disconnect();
});

describe("on a shared Redis", () => {
  it("allows exactly `limit` of many concurrent requests for one key", async () => {
    const r = rule(7, 60_000);
    const decisions = await Promise.all(Array.from({ length: 50 }, () => limiter.check(r, "user-1")));
    expect(decisions.filter((d) => d.allowed)).toHaveLength(7);
    expect(decisions.every((d) => !d.degraded)).toBe(true);
    expect(
      decisions
        .filter((d) => d.allowed)
        .map((d) => d.remaining)
        .sort(),
    ).toEqual([0, 1, 2, 3, 4, 5, 6]);
    expect(await redis.zcard(limiter.keyOf(r, "user-1"))).toBe(7); // denied requests left no entries
  });

  it("keeps keys and rules apart, whatever characters a key holds", async () => {
    const r = rule(1, 60_000);
    expect((await limiter.check(r, "10.0.0.1")).allowed).toBe(true);
    expect((await limiter.check(r, "10.0.0.1")).allowed).toBe(false);
    expect((await limiter.check(r, "10.0.0.2")).allowed).toBe(true);
    expect((await limiter.check(rule(1, 60_000), "10.0.0.1")).allowed).toBe(true);
    // Rule "x" with key "y:z" and rule "x:y" with key "z" must not share a counter.
    const a = { ...r, name: `${r.name}-x` };
    const b = { ...r, name: `${r.name}-x:y` };
    expect((await limiter.check(a, "y:z")).allowed).toBe(true);
    expect((await limiter.check(b, "z")).allowed).toBe(true);
    for (const odd of ["{rl}", "a b/ü*?", "x".repeat(1_000)]) expect((await limiter.check(r, odd)).allowed).toBe(true);
  });

  it("allows again once the window slides the oldest request out, with retryAfterMs within the window", async () => {
    const r = rule(2, 300);
    expect((await limiter.check(r, "k")).allowed).toBe(true);
    expect((await limiter.check(r, "k")).allowed).toBe(true);
    const denied = await limiter.check(r, "k");
    expect(denied).toMatchObject({ allowed: false, remaining: 0, degraded: false });
    expect(denied.retryAfterMs).toBeGreaterThanOrEqual(1);
    expect(denied.retryAfterMs).toBeLessThanOrEqual(300);
    expect(denied.resetMs).toBeGreaterThanOrEqual(denied.retryAfterMs);
    const again = await pollFor(
      () => limiter.check(r, "k"),
      (d) => d.allowed,
    );
    expect(again).toMatchObject({ allowed: true, retryAfterMs: 0, degraded: false });
  });

  it("does not let denied requests extend the window", async () => {
    const r = rule(1, 300);
    expect((await limiter.check(r, "hammer")).allowed).toBe(true);
    // Hammering every 20ms: if denials were recorded, the window would never free.
    const freed = await pollFor(
      () => limiter.check(r, "hammer"),
      (d) => d.allowed,
    );
    expect(freed.allowed).toBe(true);
    expect(await redis.zcard(limiter.keyOf(r, "hammer"))).toBe(1);
    const ttl = await redis.pttl(limiter.keyOf(r, "hammer"));
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(300);
  });

  it("shares one count between two replicas on their own connections", async () => {
    const other = new RedisSlidingWindowLimiter(connect(inject("infra").redisUrl), { prefix, timeoutMs: 1_000 });
    const r = rule(4, 60_000);
    expect((await limiter.check(r, "shared")).allowed).toBe(true);
    expect((await other.check(r, "shared")).allowed).toBe(true);
    const burst = await Promise.all(Array.from({ length: 20 }, (_, i) => (i % 2 === 0 ? limiter : other).check(r, "shared")));
    expect(burst.filter((d) => d.allowed)).toHaveLength(2);
    expect(await other.check(r, "shared")).toMatchObject({ allowed: false, degraded: false });
    expect(await limiter.check(r, "shared")).toMatchObject({ allowed: false, degraded: false });
  });
});

describe("several rules in one script", () => {
  it("records a request under every rule or none, exactly under concurrency", async () => {
    const byIp = rule(5, 60_000);
    const byUser = rule(2, 60_000);
    const both = (user: string) =>
      limiter.checkAll([
        { rule: byIp, key: "10.1.1.1" },
        { rule: byUser, key: user },
      ]);
    const burst = await Promise.all(Array.from({ length: 10 }, () => both("alice")));
    expect(burst.filter(([ip, user]) => ip!.allowed && user!.allowed)).toHaveLength(2);
    // The eight refused by alice's rule spent nothing of the address's.
    expect(await redis.zcard(limiter.keyOf(byIp, "10.1.1.1"))).toBe(2);
    expect(await redis.zcard(limiter.keyOf(byUser, "alice"))).toBe(2);
    const others = await Promise.all(["bob", "bob", "carol", "carol", "dave"].map(both));
    expect(others.map(([ip, user]) => ip!.allowed && user!.allowed)).toEqual([true, true, true, false, false]);
    expect(others[3]![0]).toMatchObject({ allowed: false, remaining: 0, degraded: false }); // the address's 5 are spent
    expect(await redis.zcard(limiter.keyOf(byUser, "carol"))).toBe(1);
  });
});

describe("while Redis is down", () => {
  let server: RedisInstance | undefined;
  afterAll(async () => {
    await server?.stop();
  });

  it("decides by fail mode without throwing, then returns to Redis", async () => {
    server = await startRedis();
    const logger = { warn: vi.fn(), info: vi.fn() };
    const ownRedis = connect(server.url);
    await ownRedis.ping(); // a first command must not race the connection against the 50ms timeout
    const own = new RedisSlidingWindowLimiter(ownRedis, { prefix, timeoutMs: 50, logger });
    const local = rule(2, 60_000, "local");
    const open = rule(1, 60_000, "open");
    const closed = rule(1, 60_000, "closed");
    expect(await own.check(closed, "u")).toMatchObject({ allowed: true, degraded: false });

    await server.kill();
    const attempts = [];
    for (let i = 0; i < 3; i++) attempts.push(await own.check(local, "u"));
    expect(attempts.map((d) => [d.allowed, d.degraded])).toEqual([
      [true, true],
      [true, true],
      [false, true],
    ]);
    expect(attempts[2]!.retryAfterMs).toBeGreaterThanOrEqual(1);
    expect(await own.check(open, "u")).toMatchObject({ allowed: true, degraded: true });
    expect(await own.check(open, "u")).toMatchObject({ allowed: true, degraded: true });
    expect(await own.check(closed, "v")).toMatchObject({ allowed: false, retryAfterMs: 1_000, degraded: true });
    expect(logger.warn).toHaveBeenCalledOnce();

    await server.restart();
    const back = await pollFor(
      () => own.check(open, "after"),
      (d) => !d.degraded,
    );
    expect(back.allowed).toBe(true);
    expect(await own.check(open, "after")).toMatchObject({ allowed: false, degraded: false });
    expect(logger.info).toHaveBeenCalledOnce();
    expect(logger.warn).toHaveBeenCalledOnce();
  });

  it("never lets a replica through more than the limit when Redis stalls mid-window", async () => {
    const stalled = await startRedis();
    try {
      const ownRedis = connect(stalled.url);
      await ownRedis.ping();
      const own = new RedisSlidingWindowLimiter(ownRedis, { prefix, timeoutMs: 50 });
      const local = rule(3, 60_000, "local");
      for (let i = 0; i < 3; i++) expect(await own.check(local, "u")).toMatchObject({ allowed: true, degraded: false });
      // Redis holds every client's commands for a while: the check outlives its timeout.
      await connect(stalled.url).call("CLIENT", "PAUSE", "1000");
      expect(await own.check(local, "u")).toMatchObject({ allowed: false, degraded: true });
      expect(await own.check(local, "someone-else")).toMatchObject({ allowed: true, degraded: true });
    } finally {
      await stalled.stop();
    }
  });
});
