import { describe, expect, it, vi } from "vitest";
import type { Redis } from "ioredis";
import { type ConfigError, EnvReader } from "./config.js";
import { parseRateLimit, rateLimitHeaders, readRateLimitRules, RedisSlidingWindowLimiter, type RateLimitDecision, type RateLimitRule } from "./rate-limit.js";

describe("parseRateLimit", () => {
  it.each([
    ["10/1m", 10, 60_000],
    ["100/60s", 100, 60_000],
    ["5/500ms", 5, 500],
    ["1000/1h", 1000, 3_600_000],
    [" 3 / 2s ", 3, 2_000],
  ])("parses %j", (text, limit, windowMs) => {
    expect(parseRateLimit(text)).toEqual({ limit, windowMs });
  });

  it.each(["", "10", "10/", "/1m", "10/m", "10/1d", "10/1.5s", "-1/1s", "0/1m", "10/0s", "1e3/1s", "abc", "200000/1s", "10/1m extra"])(
    "rejects %j with a message naming the value and the format",
    (text) => {
      expect(() => parseRateLimit(text)).toThrow(`invalid rate limit "${text}"`);
    },
  );

  it("says what is wrong with a well-formed but out-of-range value", () => {
    expect(() => parseRateLimit("0/1m")).toThrow(/requests must be in 1\.\./);
    expect(() => parseRateLimit("1/0ms")).toThrow(/at least 1ms/);
    expect(() => parseRateLimit("1/h")).toThrow(/such as 10\/1m/);
  });
});

const defaults = {
  update: { name: "scores-update-user", limit: 10, windowMs: 60_000, failMode: "local" },
  read: { name: "boards-read", limit: 100, windowMs: 1_000, failMode: "open" },
} satisfies Record<string, RateLimitRule>;

function problemsOf(env: EnvReader): string[] {
  try {
    env.done();
    return [];
  } catch (err) {
    return (err as ConfigError).problems;
  }
}

describe("readRateLimitRules", () => {
  it("keeps the defaults without overrides and does not mutate them", () => {
    const env = new EnvReader({});
    const rules = readRateLimitRules(env, defaults);
    expect(rules).toEqual(defaults);
    expect(rules.update).not.toBe(defaults.update);
    expect(problemsOf(env)).toEqual([]);
  });

  it("applies limit and fail-mode overrides by upper-cased rule name", () => {
    const env = new EnvReader({
      RATE_LIMIT_SCORES_UPDATE_USER: "5/30s",
      RATE_LIMIT_BOARDS_READ_FAIL_MODE: "closed",
    });
    const rules = readRateLimitRules(env, defaults);
    expect(rules.update).toEqual({ name: "scores-update-user", limit: 5, windowMs: 30_000, failMode: "local" });
    expect(rules.read).toEqual({ ...defaults.read, failMode: "closed" });
    expect(problemsOf(env)).toEqual([]);
    expect(defaults.update.limit).toBe(10);
  });

  it("reports bad values as problems and keeps the defaults meanwhile", () => {
    const env = new EnvReader({
      RATE_LIMIT_SCORES_UPDATE_USER: "ten per minute",
      RATE_LIMIT_SCORES_UPDATE_USER_FAIL_MODE: "sometimes",
    });
    const rules = readRateLimitRules(env, defaults);
    expect(rules.update).toEqual(defaults.update);
    const problems = problemsOf(env);
    expect(problems).toHaveLength(2);
    expect(problems[0]).toMatch(/^RATE_LIMIT_SCORES_UPDATE_USER: invalid rate limit "ten per minute"/);
    expect(problems[1]).toBe('RATE_LIMIT_SCORES_UPDATE_USER_FAIL_MODE must be one of local, open, closed, got "sometimes"');
  });
});

describe("rateLimitHeaders", () => {
  const base: RateLimitDecision = { allowed: true, limit: 10, remaining: 7, retryAfterMs: 0, resetMs: 1_200, degraded: false };

  it("rounds seconds up and omits Retry-After when allowed", () => {
    expect(rateLimitHeaders(base)).toEqual({ "RateLimit-Limit": "10", "RateLimit-Remaining": "7", "RateLimit-Reset": "2" });
  });

  it("adds Retry-After of at least one second when denied", () => {
    const denied = { ...base, allowed: false, remaining: 0, retryAfterMs: 1, resetMs: 59_001 };
    expect(rateLimitHeaders(denied)).toEqual({
      "RateLimit-Limit": "10",
      "RateLimit-Remaining": "0",
      "RateLimit-Reset": "60",
      "Retry-After": "1",
    });
    expect(rateLimitHeaders({ ...denied, retryAfterMs: 2_500 })["Retry-After"]).toBe("3");
  });
});

type Behaviour = "reject" | "hang" | ((...args: unknown[]) => unknown);

/** A stand-in for ioredis: the script command does whatever `behaviour` says. */
function fakeRedis(initial: Behaviour) {
  const fake = {
    behaviour: initial,
    status: "ready",
    calls: 0,
    defineCommand(name: string) {
      (fake as unknown as Record<string, unknown>)[name] = (...args: unknown[]) => {
        fake.calls++;
        const b = fake.behaviour;
        if (b === "reject") return Promise.reject(new Error("connect ECONNREFUSED"));
        if (b === "hang") return new Promise(() => undefined);
        return Promise.resolve(b(...args));
      };
    },
  };
  return fake;
}

function setup(initial: Behaviour, options: { localMaxKeys?: number; timeoutMs?: number } = {}) {
  const redis = fakeRedis(initial);
  const logger = { warn: vi.fn(), info: vi.fn() };
  let clock = 1_000_000;
  const now = () => clock;
  const limiter = new RedisSlidingWindowLimiter(redis as unknown as Redis, { timeoutMs: 10, logger, now, ...options });
  return { redis, logger, limiter, now, advance: (ms: number) => (clock += ms) };
}

/**
 * The limiter's script run in memory on the test's clock, so a test sees what
 * Redis would answer. Its protocol: key count, keys, member, then limit,
 * window and the replica's own count per key; reply: allowed by all, now, then
 * allowed, count, oldest, newest per key.
 */
function slidingWindowScript(clock: () => number) {
  const logs = new Map<string, number[]>();
  const run = (...args: unknown[]): number[] => {
    const n = args[0] as number;
    const keys = args.slice(1, 1 + n) as string[];
    const params = args.slice(2 + n) as number[];
    const now = clock();
    const live = keys.map((key, i) => {
      const times = (logs.get(key) ?? []).filter((t) => t > now - params[3 * i + 1]!);
      logs.set(key, times);
      return times;
    });
    const admits = keys.map((_, i) => live[i]!.length < params[3 * i]! && params[3 * i + 2]! < params[3 * i]!);
    const all = admits.every(Boolean);
    const reply = [all ? 1 : 0, now];
    live.forEach((times, i) => {
      if (all) times.push(now);
      reply.push(admits[i] ? 1 : 0, times.length, times[0] ?? now, times[times.length - 1] ?? now);
    });
    return reply;
  };
  return { run, logs };
}

/** A behaviour whose answer waits until `answer()` is called. */
function heldAnswer(script: (...args: unknown[]) => unknown) {
  const held: { answer: () => void } = { answer: () => {} };
  const behaviour = (...args: unknown[]) =>
    new Promise((resolve) => {
      held.answer = () => resolve(script(...args));
    });
  return { held, behaviour };
}

const settle = () => new Promise((resolve) => setImmediate(resolve));

const rule = (failMode: RateLimitRule["failMode"], limit = 3, windowMs = 1_000): RateLimitRule => ({
  name: `test-${failMode}`,
  limit,
  windowMs,
  failMode,
});

describe("RedisSlidingWindowLimiter with Redis answering", () => {
  it("turns the script's reply into a decision", async () => {
    // reply: allowed by all, now (Redis server ms), then per key: allowed, count, oldest, newest
    const { limiter, redis } = setup(() => [1, 10_000, 1, 2, 9_000, 10_000]);
    expect(await limiter.check(rule("local"), "u1")).toEqual({
      allowed: true,
      limit: 3,
      remaining: 1,
      retryAfterMs: 0,
      resetMs: 1_000,
      degraded: false,
    });
    redis.behaviour = () => [0, 10_000, 0, 3, 9_200, 9_900];
    expect(await limiter.check(rule("local"), "u1")).toEqual({
      allowed: false,
      limit: 3,
      remaining: 0,
      retryAfterMs: 200,
      resetMs: 900,
      degraded: false,
    });
  });

  it("passes a collision-free key, the rule and a unique member to the script", async () => {
    const seen: unknown[][] = [];
    const { limiter } = setup((...args) => {
      seen.push(args);
      return [1, 0, 1, 1, 0, 0];
    });
    await limiter.check({ ...rule("open"), name: "a" }, "b:c");
    await limiter.check({ ...rule("open"), name: "a:b" }, "c");
    // key count, keys, member, then limit, window and this replica's own count per key
    expect(seen[0]!.slice(0, 2)).toEqual([1, "sb:rl:a:{b%3Ac}"]);
    expect(seen[0]!.slice(3)).toEqual([3, 1_000, 0]);
    expect(seen[1]![1]).toBe("sb:rl:a:b:{c}");
    expect(seen[0]![2]).not.toBe(seen[1]![2]);
    expect(limiter.keyOf({ name: "r" }, "x".repeat(500))).toMatch(/^sb:rl:r:\{#[\w-]{43}\}$/);
  });

  it("treats a malformed reply as Redis being unavailable", async () => {
    const { limiter, logger } = setup(() => "OK");
    expect(await limiter.check(rule("open"), "u")).toMatchObject({ allowed: true, degraded: true });
    expect(logger.warn).toHaveBeenCalledOnce();
  });
});

describe("RedisSlidingWindowLimiter without Redis", () => {
  it("open allows and closed denies for a second, both degraded", async () => {
    const { limiter } = setup("reject");
    expect(await limiter.check(rule("open"), "u")).toEqual({
      allowed: true,
      limit: 3,
      remaining: 2,
      retryAfterMs: 0,
      resetMs: 1_000,
      degraded: true,
    });
    expect(await limiter.check(rule("closed"), "u")).toEqual({
      allowed: false,
      limit: 3,
      remaining: 0,
      retryAfterMs: 1_000,
      resetMs: 1_000,
      degraded: true,
    });
  });

  it("local keeps a sliding window per key and rule in process", async () => {
    const { limiter, advance } = setup("reject");
    const local = rule("local");
    const results = [];
    for (let i = 0; i < 3; i++) {
      results.push(await limiter.check(local, "u"));
      advance(100);
    }
    expect(results.map((d) => [d.allowed, d.remaining, d.degraded])).toEqual([
      [true, 2, true],
      [true, 1, true],
      [true, 0, true],
    ]);
    // Entries at 0, 100, 200; now 300: the oldest frees at 1000.
    expect(await limiter.check(local, "u")).toMatchObject({ allowed: false, remaining: 0, retryAfterMs: 700, resetMs: 900 });
    expect(await limiter.check(local, "other")).toMatchObject({ allowed: true, remaining: 2 });
    expect(await limiter.check({ ...local, name: "another-rule" }, "u")).toMatchObject({ allowed: true });
    // Hammering while denied does not push the window out.
    for (let i = 0; i < 6; i++) {
      advance(100);
      expect((await limiter.check(local, "u")).allowed).toBe(false);
    }
    advance(100); // now 1000: the entry at 0 has slid out, exactly one slot frees
    expect(await limiter.check(local, "u")).toMatchObject({ allowed: true, remaining: 0 });
    expect(await limiter.check(local, "u")).toMatchObject({ allowed: false, retryAfterMs: 100 });
  });

  it("local forgets the least recently used key beyond its cap", async () => {
    const { limiter, advance } = setup("reject", { localMaxKeys: 2 });
    const one = rule("local", 1, 60_000);
    for (const key of ["a", "b"]) expect((await limiter.check(one, key)).allowed).toBe(true);
    advance(1);
    expect((await limiter.check(one, "a")).allowed).toBe(false); // touches "a", so "b" is the oldest
    expect((await limiter.check(one, "c")).allowed).toBe(true); // evicts "b"
    expect((await limiter.check(one, "a")).allowed).toBe(false);
    expect((await limiter.check(one, "b")).allowed).toBe(true);
  });

  it("decides when Redis does not answer within timeoutMs", async () => {
    const { limiter } = setup("hang");
    expect(await limiter.check(rule("closed"), "u")).toMatchObject({ allowed: false, degraded: true });
  });

  it("probes with one request at a time during an outage", async () => {
    const { limiter, redis } = setup("hang");
    await limiter.check(rule("open"), "u"); // starts the outage
    redis.calls = 0;
    const decisions = await Promise.all(Array.from({ length: 20 }, () => limiter.check(rule("open"), "u")));
    expect(decisions.every((d) => d.degraded && d.allowed)).toBe(true);
    expect(redis.calls).toBe(1);
  });

  it("does not send while ioredis reconnects, so nothing queued is replayed later", async () => {
    const { limiter, redis } = setup(() => [1, 0, 1, 1, 0, 0]);
    redis.status = "reconnecting";
    expect(await limiter.check(rule("closed"), "u")).toMatchObject({ degraded: true });
    redis.status = "connecting"; // would queue the command in the offline queue
    expect(await limiter.check(rule("closed"), "u")).toMatchObject({ degraded: true });
    expect(redis.calls).toBe(0);
    redis.status = "ready";
    expect(await limiter.check(rule("closed"), "u")).toMatchObject({ allowed: true, degraded: false });
    expect(redis.calls).toBe(1);
  });

  it("sends while ioredis first connects, outside an outage", async () => {
    const { limiter, redis } = setup(() => [1, 0, 1, 1, 0, 0]);
    redis.status = "connecting";
    expect(await limiter.check(rule("closed"), "u")).toMatchObject({ degraded: false });
  });

  it("logs one warning per outage and an info when Redis answers again", async () => {
    const { limiter, redis, logger } = setup("reject");
    await Promise.all(Array.from({ length: 10 }, () => limiter.check(rule("local"), "u")));
    for (let i = 0; i < 10; i++) await limiter.check(rule("open"), "u");
    expect(logger.warn).toHaveBeenCalledOnce();
    expect(logger.info).not.toHaveBeenCalled();

    redis.behaviour = () => [1, 0, 1, 1, 0, 0];
    expect(await limiter.check(rule("local"), "u")).toMatchObject({ allowed: true, degraded: false });
    await limiter.check(rule("local"), "u");
    expect(logger.info).toHaveBeenCalledOnce();
    expect(logger.info.mock.calls[0]![0]).toMatchObject({ degradedDecisions: 20 });

    redis.behaviour = "reject";
    await limiter.check(rule("local"), "u");
    await limiter.check(rule("local"), "u");
    expect(logger.warn).toHaveBeenCalledTimes(2);
  });

  it("never throws, even when the command throws synchronously", async () => {
    const { limiter } = setup(() => {
      throw new Error("sync boom");
    });
    await expect(limiter.check(rule("local"), "u")).resolves.toMatchObject({ allowed: true, degraded: true });
  });
});

describe("RedisSlidingWindowLimiter never lets a caller through more than the limit", () => {
  it("when Redis stalls mid-window: the fallback knows what Redis allowed", async () => {
    const { limiter, redis, now } = setup("hang");
    redis.behaviour = slidingWindowScript(now).run;
    const local = rule("local", 3, 60_000);
    for (let i = 0; i < 3; i++) expect(await limiter.check(local, "u")).toMatchObject({ allowed: true, degraded: false });
    redis.behaviour = "hang"; // slower than timeoutMs: the fallback decides
    expect(await limiter.check(local, "u")).toMatchObject({ allowed: false, remaining: 0, degraded: true });
    expect(await limiter.check(local, "other")).toMatchObject({ allowed: true, degraded: true });
  });

  it("when a check still waits for Redis: the fallback counts it as spent", async () => {
    const { limiter, redis, now } = setup("reject", { timeoutMs: 60_000 });
    const script = slidingWindowScript(now);
    const local = rule("local", 2, 60_000);
    expect(await limiter.check(local, "u")).toMatchObject({ allowed: true, degraded: true }); // one of two spent while Redis is down
    const { held, behaviour } = heldAnswer(script.run);
    redis.behaviour = behaviour;
    const probe = limiter.check(local, "u"); // Redis is back, slowly: this check waits for it
    expect(await limiter.check(local, "u")).toMatchObject({ allowed: false, degraded: true }); // the probe may take the last one
    held.answer();
    expect(await probe).toMatchObject({ allowed: true, remaining: 0, degraded: false });
  });

  it("when Redis comes back without what the fallback let through", async () => {
    const { limiter, redis, now, advance } = setup("reject");
    const script = slidingWindowScript(now);
    const local = rule("local", 3, 60_000);
    for (let i = 0; i < 3; i++) expect(await limiter.check(local, "u")).toMatchObject({ allowed: true, degraded: true });
    advance(1_000);
    redis.behaviour = script.run; // answering again, but it never saw those three
    expect(await limiter.check(local, "u")).toMatchObject({ allowed: false, remaining: 0, retryAfterMs: 59_000, degraded: false });
    expect(script.logs.get(limiter.keyOf(local, "u"))).toEqual([]); // and the refusal was not recorded there
    advance(59_000);
    expect(await limiter.check(local, "u")).toMatchObject({ allowed: true, remaining: 2, degraded: false });
  });

  it("when a check that timed out is recorded by Redis after all", async () => {
    const { limiter, redis, now } = setup("hang");
    const script = slidingWindowScript(now);
    const local = rule("local", 2, 60_000);
    const closed = rule("closed", 10, 60_000);
    const { held, behaviour } = heldAnswer(script.run);
    redis.behaviour = behaviour;
    const late = await limiter.checkAll([
      { rule: closed, key: "u" },
      { rule: local, key: "u" },
    ]);
    expect(late.map((d) => [d.allowed, d.degraded])).toEqual([
      [false, true],
      [true, true],
    ]); // closed refused it here...
    held.answer(); // ...but the script ran in Redis and spent one of the two
    await settle();
    redis.behaviour = "reject";
    expect(await limiter.check(local, "u")).toMatchObject({ allowed: true, remaining: 0, degraded: true });
    expect(await limiter.check(local, "u")).toMatchObject({ allowed: false, degraded: true });
  });
});

describe("RedisSlidingWindowLimiter.checkAll", () => {
  it("checks every rule of a request in one round trip and records it under all or none", async () => {
    const { limiter, redis, now } = setup("hang");
    const script = slidingWindowScript(now);
    redis.behaviour = script.run;
    const byIp = { ...rule("local", 5, 60_000), name: "ip" };
    const byUser = { ...rule("local", 1, 60_000), name: "user" };
    const both = () =>
      limiter.checkAll([
        { rule: byIp, key: "10.0.0.1" },
        { rule: byUser, key: "alice" },
      ]);
    expect((await both()).map((d) => [d.allowed, d.remaining])).toEqual([
      [true, 4],
      [true, 0],
    ]);
    expect(redis.calls).toBe(1);
    expect((await both()).map((d) => [d.allowed, d.remaining])).toEqual([
      [true, 4],
      [false, 0],
    ]);
    expect(redis.calls).toBe(2);
    // The request the user's rule refused did not spend the address's quota.
    expect(script.logs.get(limiter.keyOf(byIp, "10.0.0.1"))).toHaveLength(1);
    expect(await limiter.checkAll([])).toEqual([]);
  });

  it("without Redis decides each rule by its fail mode and records only what all allow", async () => {
    const { limiter } = setup("reject");
    const local = rule("local", 2, 60_000);
    const withLocal = (other: RateLimitRule) =>
      limiter.checkAll([
        { rule: other, key: "u" },
        { rule: local, key: "u" },
      ]);
    expect((await withLocal(rule("closed", 10))).map((d) => d.allowed)).toEqual([false, true]);
    expect((await withLocal(rule("open", 10))).map((d) => d.allowed)).toEqual([true, true]);
    expect((await withLocal(rule("open", 10))).map((d) => d.allowed)).toEqual([true, true]);
    expect((await withLocal(rule("open", 10))).map((d) => d.allowed)).toEqual([true, false]);
  });
});
