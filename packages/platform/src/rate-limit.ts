// Sliding-window rate limiting shared by every gateway replica through Redis.
//
// What a rule does while Redis errors or is slower than timeoutMs (its failMode):
// - "open":   allow everything. No false 429s, but no protection at all during
//             an outage; for cheap reads where availability matters most.
// - "closed": deny everything (Retry-After 1s). Protection holds, but an outage
//             of the limiter becomes an outage of the endpoint; for endpoints
//             where abuse is worse than downtime (e.g. credential guessing).
// - "local":  an in-process sliding window per replica with the same rule. The
//             endpoint keeps working and abuse stays bounded, at up to
//             replicas x limit per window; the default for writes for that
//             reason. The window is kept all the time, not just during an
//             outage (it records what Redis allowed too), so a replica never
//             lets one caller through more than the limit, even when Redis
//             stalls mid-window or comes back without the outage's requests.
import { createHash, randomBytes } from "node:crypto";
import type { Redis } from "ioredis";
import type { Logger } from "pino";
import type { EnvReader } from "./config.js";
import { LocalSlidingWindow, type WindowView } from "./local-sliding-window.js";
import type { Tally } from "./metrics.js";

export type FailMode = "local" | "open" | "closed";
export const failModes: readonly FailMode[] = ["local", "open", "closed"];

export interface RateLimitRule {
  name: string;
  limit: number;
  windowMs: number;
  failMode: FailMode;
}

export interface RateLimitDecision {
  allowed: boolean;
  limit: number;
  remaining: number;
  /** 0 when allowed; else ms until a slot frees (>= 1). */
  retryAfterMs: number;
  /** ms until the window fully frees. */
  resetMs: number;
  /** true when decided without Redis. */
  degraded: boolean;
}

/** One rule to apply to one request, and the caller's key under it (an address, a user id). */
export interface RateLimitCheck {
  rule: RateLimitRule;
  key: string;
}

export interface RateLimiter {
  check(rule: RateLimitRule, key: string): Promise<RateLimitDecision>;
  /**
   * Every rule of one request at once (one Redis round trip). The request
   * counts under all of them or none: it is recorded only when every rule
   * allows it. One decision per check, in order, each with its own rule's
   * verdict and numbers; the request is allowed when all are.
   */
  checkAll(checks: readonly RateLimitCheck[]): Promise<RateLimitDecision[]>;
}

export interface RedisSlidingWindowLimiterOptions {
  prefix?: string;
  timeoutMs?: number;
  logger?: Pick<Logger, "warn" | "info">;
  /** Cap on keys the "local" fallback tracks; memory is at most localMaxKeys x limit timestamps. */
  localMaxKeys?: number;
  /** Monotonic ms clock of the "local" fallback; tests inject a fake one. */
  now?: () => number;
  /** Counts checks Redis failed or could not take (decided by the fail mode instead). */
  redisErrors?: Tally;
}

// A sliding log per (rule, key): one sorted-set member per allowed request,
// scored by Redis server time so replicas with skewed clocks agree. One call
// checks every rule of a request (one round trip) and records the request
// under all of them or none: denied requests are not recorded, so hammering
// while limited cannot extend the ban, and a request one rule refuses never
// uses up another rule's quota. ARGV: member, then limit, window and floor per
// key; the floor is how many requests the calling replica itself let through
// in the window, which Redis may not know of (those it allowed while Redis was
// away). Reply: allowed-by-all, now, then per key allowed, count, oldest, newest.
const SLIDING_WINDOW_LUA = `
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local member = ARGV[1]
local counts, admits, all = {}, {}, 1
for i, key in ipairs(KEYS) do
  local limit, window, floor = tonumber(ARGV[3 * i - 1]), tonumber(ARGV[3 * i]), tonumber(ARGV[3 * i + 1])
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
  counts[i] = redis.call('ZCARD', key)
  admits[i] = (counts[i] < limit and floor < limit) and 1 or 0
  if admits[i] == 0 then all = 0 end
end
local reply = {all, now}
for i, key in ipairs(KEYS) do
  if all == 1 then
    redis.call('ZADD', key, now, member)
    redis.call('PEXPIRE', key, tonumber(ARGV[3 * i]))
    counts[i] = counts[i] + 1
  end
  local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')[2] or now
  local newest = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')[2] or now
  local n = #reply
  reply[n + 1], reply[n + 2], reply[n + 3], reply[n + 4] = admits[i], counts[i], tonumber(oldest), tonumber(newest)
end
return reply
`;
const COMMAND = "sbSlidingWindowRateLimitAll";

interface WithScript {
  // Without numberOfKeys in defineCommand, ioredis takes the key count first.
  [COMMAND](keyCount: number, ...keysThenArgs: Array<string | number>): Promise<unknown>;
}

const UNITS: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 };
// The sliding log stores one entry per allowed request, so huge limits cost memory.
const MAX_LIMIT = 100_000;

/** "10/1m", "100/60s", "5/500ms", "1000/1h" → { limit, windowMs }. */
export function parseRateLimit(text: string): { limit: number; windowMs: number } {
  const match = /^\s*(\d+)\s*\/\s*(\d+)\s*(ms|s|m|h)\s*$/.exec(text);
  const fail = (why: string): never => {
    throw new Error(`invalid rate limit "${text}": ${why}`);
  };
  if (!match) return fail("expected <requests>/<window> such as 10/1m, 100/60s, 5/500ms or 1000/1h");
  const limit = Number(match[1]);
  const windowMs = Number(match[2]) * UNITS[match[3]!]!;
  if (limit < 1 || limit > MAX_LIMIT) fail(`requests must be in 1..${MAX_LIMIT}`);
  if (windowMs < 1) fail("window must be at least 1ms");
  if (!Number.isSafeInteger(windowMs)) fail("window is too long");
  return { limit, windowMs };
}

/** Applies RATE_LIMIT_<NAME> and RATE_LIMIT_<NAME>_FAIL_MODE overrides; bad values become env problems. */
export function readRateLimitRules<K extends string>(env: EnvReader, defaults: Record<K, RateLimitRule>): Record<K, RateLimitRule> {
  const rules = {} as Record<K, RateLimitRule>;
  for (const id of Object.keys(defaults) as K[]) {
    const rule = { ...defaults[id] };
    const variable = `RATE_LIMIT_${rule.name.toUpperCase().replace(/[^A-Z0-9]/g, "_")}`;
    const raw = env.optional(variable);
    if (raw !== undefined) {
      try {
        Object.assign(rule, parseRateLimit(raw));
      } catch (err) {
        env.problem(`${variable}: ${(err as Error).message}`);
      }
    }
    rule.failMode = env.oneOf(`${variable}_FAIL_MODE`, rule.failMode, failModes);
    rules[id] = rule;
  }
  return rules;
}

/** IETF RateLimit-* headers (seconds) plus Retry-After on a denial. */
export function rateLimitHeaders(decision: RateLimitDecision): Record<string, string> {
  const headers: Record<string, string> = {
    "RateLimit-Limit": String(decision.limit),
    "RateLimit-Remaining": String(Math.max(0, decision.remaining)),
    "RateLimit-Reset": String(Math.max(0, Math.ceil(decision.resetMs / 1000))),
  };
  if (!decision.allowed) headers["Retry-After"] = String(Math.max(1, Math.ceil(decision.retryAfterMs / 1000)));
  return headers;
}

function decide(allowed: boolean, limit: number, windowMs: number, view: WindowView, degraded: boolean): RateLimitDecision {
  const { count, oldest, newest, now } = view;
  return {
    allowed,
    limit,
    remaining: Math.max(0, limit - count),
    retryAfterMs: allowed ? 0 : count > 0 ? Math.max(1, Math.ceil(oldest + windowMs - now)) : windowMs,
    resetMs: count > 0 ? Math.max(0, Math.ceil(newest + windowMs - now)) : 0,
    degraded,
  };
}

function isReply(value: unknown, keys: number): value is number[] {
  return Array.isArray(value) && value.length === 2 + 4 * keys && value.every((v) => typeof v === "number");
}

/** Raised when Redis is slower than timeoutMs; the script may still run there later. */
class TimeoutError extends Error {
  constructor(
    message: string,
    readonly late: Promise<unknown>,
  ) {
    super(message);
  }
}

/** One rule of one request, normalized. */
interface Check {
  rule: RateLimitRule;
  limit: number;
  windowMs: number;
  redisKey: string;
  /** Kept in this replica's log too (failMode "local"). */
  local: boolean;
}

export class RedisSlidingWindowLimiter implements RateLimiter {
  private readonly prefix: string;
  private readonly timeoutMs: number;
  private readonly logger: Pick<Logger, "warn" | "info"> | undefined;
  private readonly redisErrors: Tally | undefined;
  private readonly local: LocalSlidingWindow;
  /** Checks of "local" rules sent to Redis and not yet answered, per Redis key. */
  private readonly inFlight = new Map<string, number>();
  // Members must be unique per request across replicas; a random id per limiter plus a counter is.
  private readonly memberPrefix = randomBytes(6).toString("base64url");
  private sequence = 0;
  private outage: { since: number; degraded: number } | undefined;
  private probing = false;

  constructor(
    private readonly redis: Redis,
    options: RedisSlidingWindowLimiterOptions = {},
  ) {
    this.prefix = options.prefix ?? "sb:";
    this.timeoutMs = options.timeoutMs ?? 50;
    this.logger = options.logger;
    this.redisErrors = options.redisErrors;
    this.local = new LocalSlidingWindow(options.localMaxKeys ?? 100_000, options.now ?? (() => performance.now()));
    // EVALSHA, falling back to EVAL once after a SCRIPT FLUSH or a failover to a fresh server.
    redis.defineCommand(COMMAND, { lua: SLIDING_WINDOW_LUA });
  }

  /** Redis key of a rule and caller key. */
  keyOf(rule: Pick<RateLimitRule, "name">, key: string): string {
    // Escaping removes every ":" from the caller's part, so the last ":" always
    // separates rule from key and no two (rule, key) pairs share a Redis key.
    // The "#" marker cannot come out of encodeURIComponent, so hashed keys cannot collide with escaped ones.
    const escaped = encodeURIComponent(key);
    const safe = escaped.length <= 128 ? escaped : `#${createHash("sha256").update(key).digest("base64url")}`;
    // The hash tag is the caller's key. One script reads all of a request's
    // keys, which Redis Cluster would only allow within one slot; the mesh
    // uses a single Redis (ranking's keys share one slot too).
    return `${this.prefix}rl:${rule.name}:{${safe}}`;
  }

  async check(rule: RateLimitRule, key: string): Promise<RateLimitDecision> {
    return (await this.checkAll([{ rule, key }]))[0]!;
  }

  async checkAll(requested: readonly RateLimitCheck[]): Promise<RateLimitDecision[]> {
    const checks = requested.map(
      ({ rule, key }): Check => ({
        rule,
        limit: Number.isFinite(rule.limit) ? Math.max(0, Math.floor(rule.limit)) : 0,
        windowMs: Number.isFinite(rule.windowMs) ? Math.max(1, Math.ceil(rule.windowMs)) : 1_000,
        redisKey: this.keyOf(rule, key),
        local: rule.failMode === "local",
      }),
    );
    if (checks.length === 0) return [];
    try {
      // During an outage one request at a time probes Redis, and only over a ready connection;
      // the rest are decided at once instead of each waiting timeoutMs. A command sent while
      // ioredis (re)connects would sit in its offline queue and be replayed later, counting a
      // request that was already decided locally.
      const status = (this.redis as { status?: string }).status ?? "ready";
      const usable = this.outage ? status === "ready" : status !== "reconnecting" && status !== "end";
      if (!usable) throw new Error(`redis connection is ${status}`);
      if (this.outage && this.probing) return this.degraded(checks);
      const probe = this.outage !== undefined;
      if (probe) this.probing = true;
      try {
        const decisions = await this.evaluate(checks);
        // Only a request sent during the outage proves recovery; a late answer to an older one does not.
        if (probe) this.recovered();
        return decisions;
      } finally {
        if (probe) this.probing = false;
      }
    } catch (err) {
      this.redisErrors?.inc();
      this.failed(err);
      const decisions = this.degraded(checks);
      if (err instanceof TimeoutError) this.countIfItLands(err.late, checks, decisions);
      return decisions;
    }
  }

  private async evaluate(checks: Check[]): Promise<RateLimitDecision[]> {
    const member = `${this.memberPrefix}:${(this.sequence++).toString(36)}`;
    const floors = checks.map((c) => (c.local ? this.local.view(c.redisKey, c.windowMs).count : 0));
    const args = [member, ...checks.flatMap((c, i) => [c.limit, c.windowMs, floors[i]!])];
    let timer: NodeJS.Timeout | undefined;
    for (const c of checks) if (c.local) this.inFlight.set(c.redisKey, (this.inFlight.get(c.redisKey) ?? 0) + 1);
    let reply: unknown;
    try {
      const command = (this.redis as unknown as WithScript)[COMMAND](checks.length, ...checks.map((c) => c.redisKey), ...args);
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new TimeoutError(`redis did not answer within ${this.timeoutMs}ms`, command)), this.timeoutMs);
      });
      // race() subscribes to the command, so its late rejection is handled, not unhandled.
      reply = await Promise.race([command, timeout]);
    } finally {
      clearTimeout(timer);
      for (const c of checks) {
        if (!c.local) continue;
        const left = this.inFlight.get(c.redisKey)! - 1;
        if (left > 0) this.inFlight.set(c.redisKey, left);
        else this.inFlight.delete(c.redisKey);
      }
    }
    if (!isReply(reply, checks.length)) throw new Error(`unexpected rate limit script reply: ${JSON.stringify(reply)}`);
    const allowedByAll = reply[0] === 1;
    const now = reply[1]!;
    return checks.map((c, i) => {
      const [allowed, count, oldest, newest] = reply.slice(2 + 4 * i, 6 + 4 * i) as [number, number, number, number];
      const shared: WindowView = { count, oldest, newest, now };
      if (!c.local) return decide(allowed === 1, c.limit, c.windowMs, shared, false);
      if (allowedByAll) this.local.record(c.redisKey, c.windowMs);
      // After an outage this replica's log can be fuller than Redis's (the floor that
      // refused the request): then its numbers are the ones that tell when to retry.
      const own = this.local.view(c.redisKey, c.windowMs);
      return decide(allowed === 1, c.limit, c.windowMs, own.count > count ? own : shared, false);
    });
  }

  /**
   * Without Redis, each rule decides by its fail mode; the request is recorded in the
   * local logs only if every rule allows it, as in Redis. A "local" rule also counts
   * this replica's checks still waiting for Redis: Redis may yet allow them.
   */
  private degraded(checks: Check[]): RateLimitDecision[] {
    if (this.outage) this.outage.degraded++;
    const views = checks.map((c) => {
      if (c.rule.failMode === "open") return { allowed: true };
      if (c.rule.failMode === "closed") return { allowed: false };
      const view = this.local.view(c.redisKey, c.windowMs);
      return { allowed: view.count + (this.inFlight.get(c.redisKey) ?? 0) < c.limit, view };
    });
    const allowedByAll = views.every((v) => v.allowed);
    return checks.map((c, i) => {
      const { allowed, view } = views[i]!;
      if (c.rule.failMode === "open") {
        return { allowed, limit: c.limit, remaining: Math.max(0, c.limit - 1), retryAfterMs: 0, resetMs: c.windowMs, degraded: true };
      }
      if (!view) return { allowed, limit: c.limit, remaining: 0, retryAfterMs: 1_000, resetMs: 1_000, degraded: true };
      if (allowedByAll) this.local.record(c.redisKey, c.windowMs);
      return decide(allowed, c.limit, c.windowMs, allowedByAll ? this.local.view(c.redisKey, c.windowMs) : view, true);
    });
  }

  /**
   * A check that timed out may still run in Redis and be recorded there. If the
   * fallback refused it, this replica's log would not hold it, so it is counted
   * when (if) Redis's answer arrives: the two views must agree that it was spent.
   */
  private countIfItLands(late: Promise<unknown>, checks: Check[], decisions: RateLimitDecision[]): void {
    if (decisions.every((d) => d.allowed) || !checks.some((c) => c.local)) return;
    late.then(
      (reply) => {
        if (!isReply(reply, checks.length) || reply[0] !== 1) return;
        for (const c of checks) if (c.local) this.local.record(c.redisKey, c.windowMs);
      },
      () => undefined, // already counted as a Redis failure when it timed out
    );
  }

  private failed(err: unknown): void {
    if (this.outage) return;
    this.outage = { since: Date.now(), degraded: 0 };
    const reason = err instanceof Error ? err.message : String(err);
    this.logger?.warn({ err: reason }, "rate limiter: redis unavailable, deciding by each rule's fail mode");
  }

  private recovered(): void {
    if (!this.outage) return;
    const { since, degraded } = this.outage;
    this.outage = undefined;
    // The local logs stay: they hold what this replica let through during the outage,
    // which Redis never saw; the floor keeps Redis from allowing it again.
    this.logger?.info({ outageMs: Date.now() - since, degradedDecisions: degraded }, "rate limiter: redis is back");
  }
}
