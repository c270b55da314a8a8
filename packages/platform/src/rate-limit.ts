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
//             replicas x limit per window and starting from an empty window;
//             the default for writes for that reason.
import { createHash, randomBytes } from "node:crypto";
import type { Redis } from "ioredis";
import type { Logger } from "pino";
import type { EnvReader } from "./config.js";
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

export interface RateLimiter {
  check(rule: RateLimitRule, key: string): Promise<RateLimitDecision>;
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

// A sliding log: one sorted-set member per allowed request, scored by Redis
// server time so replicas with skewed clocks agree. Denied requests are not
// recorded, so hammering while limited cannot extend the ban.
const SLIDING_WINDOW_LUA = `
if redis.replicate_commands then redis.replicate_commands() end
local key = KEYS[1]
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
local count = redis.call('ZCARD', key)
local allowed = 0
if count < limit then
  redis.call('ZADD', key, now, ARGV[3])
  redis.call('PEXPIRE', key, window)
  count = count + 1
  allowed = 1
end
local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')[2] or now
local newest = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')[2] or now
return {allowed, count, tonumber(oldest), tonumber(newest), now}
`;
const COMMAND = "sbSlidingWindowRateLimit";

type ScriptReply = [allowed: number, count: number, oldest: number, newest: number, now: number];
interface WithScript {
  [COMMAND](key: string, limit: number, windowMs: number, member: string): Promise<unknown>;
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
export function readRateLimitRules<K extends string>(
  env: EnvReader,
  defaults: Record<K, RateLimitRule>,
): Record<K, RateLimitRule> {
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

function decide(allowed: boolean, limit: number, windowMs: number, log: ScriptReply, degraded: boolean): RateLimitDecision {
  const [, count, oldest, newest, now] = log;
  return {
    allowed,
    limit,
    remaining: Math.max(0, limit - count),
    retryAfterMs: allowed ? 0 : count > 0 ? Math.max(1, Math.ceil(oldest + windowMs - now)) : windowMs,
    resetMs: count > 0 ? Math.max(0, Math.ceil(newest + windowMs - now)) : 0,
    degraded,
  };
}

function isReply(value: unknown): value is ScriptReply {
  return Array.isArray(value) && value.length === 5 && value.every((v) => typeof v === "number");
}

/** The same sliding log in process memory, for the "local" fail mode. */
class LocalSlidingWindow {
  // Map order is recency order: every access re-inserts, so eviction drops the least recently used.
  private readonly logs = new Map<string, { times: number[]; windowMs: number }>();
  private nextSweep = 0;

  constructor(private readonly maxKeys: number, private readonly now: () => number) {}

  check(id: string, limit: number, windowMs: number): ScriptReply {
    const now = this.now();
    this.sweep(now);
    const entry = this.logs.get(id) ?? { times: [], windowMs };
    this.logs.delete(id);
    entry.windowMs = windowMs;
    const live = entry.times.findIndex((t) => t > now - windowMs);
    entry.times = live < 0 ? [] : entry.times.slice(live);
    const allowed = entry.times.length < limit;
    if (allowed) entry.times.push(now);
    if (entry.times.length > 0) this.logs.set(id, entry);
    while (this.logs.size > this.maxKeys) this.logs.delete(this.logs.keys().next().value!);
    const { times } = entry;
    return [allowed ? 1 : 0, times.length, times[0] ?? now, times[times.length - 1] ?? now, now];
  }

  clear(): void {
    this.logs.clear();
  }

  // A full pass at most once a second keeps a long outage from holding every key ever seen.
  private sweep(now: number): void {
    if (now < this.nextSweep) return;
    this.nextSweep = now + 1_000;
    for (const [id, { times, windowMs }] of this.logs) {
      if (times[times.length - 1]! <= now - windowMs) this.logs.delete(id);
    }
  }
}

class TimeoutError extends Error {}

export class RedisSlidingWindowLimiter implements RateLimiter {
  private readonly prefix: string;
  private readonly timeoutMs: number;
  private readonly logger: Pick<Logger, "warn" | "info"> | undefined;
  private readonly redisErrors: Tally | undefined;
  private readonly local: LocalSlidingWindow;
  // Members must be unique per request across replicas; a random id per limiter plus a counter is.
  private readonly memberPrefix = randomBytes(6).toString("base64url");
  private sequence = 0;
  private outage: { since: number; degraded: number } | undefined;
  private probing = false;

  constructor(private readonly redis: Redis, options: RedisSlidingWindowLimiterOptions = {}) {
    this.prefix = options.prefix ?? "sb:";
    this.timeoutMs = options.timeoutMs ?? 50;
    this.logger = options.logger;
    this.redisErrors = options.redisErrors;
    this.local = new LocalSlidingWindow(options.localMaxKeys ?? 100_000, options.now ?? (() => performance.now()));
    // EVALSHA, falling back to EVAL once after a SCRIPT FLUSH or a failover to a fresh server.
    redis.defineCommand(COMMAND, { numberOfKeys: 1, lua: SLIDING_WINDOW_LUA });
  }

  /** Redis key of a rule and caller key. */
  keyOf(rule: Pick<RateLimitRule, "name">, key: string): string {
    // Escaping removes every ":" from the caller's part, so the last ":" always
    // separates rule from key and no two (rule, key) pairs share a Redis key.
    // The "#" marker cannot come out of encodeURIComponent, so hashed keys cannot collide with escaped ones.
    const escaped = encodeURIComponent(key);
    const safe = escaped.length <= 128 ? escaped : `#${createHash("sha256").update(key).digest("base64url")}`;
    // The hash tag is the caller's key, so Redis Cluster spreads limits over
    // slots; the script touches one key, so it needs no shared slot.
    return `${this.prefix}rl:${rule.name}:{${safe}}`;
  }

  async check(rule: RateLimitRule, key: string): Promise<RateLimitDecision> {
    const limit = Number.isFinite(rule.limit) ? Math.max(0, Math.floor(rule.limit)) : 0;
    const windowMs = Number.isFinite(rule.windowMs) ? Math.max(1, Math.ceil(rule.windowMs)) : 1_000;
    const redisKey = this.keyOf(rule, key);
    try {
      // During an outage one request at a time probes Redis, and only over a ready connection;
      // the rest are decided at once instead of each waiting timeoutMs. A command sent while
      // ioredis (re)connects would sit in its offline queue and be replayed later, counting a
      // request that was already decided locally.
      const status = (this.redis as { status?: string }).status ?? "ready";
      const usable = this.outage ? status === "ready" : status !== "reconnecting" && status !== "end";
      if (!usable) throw new Error(`redis connection is ${status}`);
      if (this.outage && this.probing) return this.degraded(rule.failMode, redisKey, limit, windowMs);
      const probe = this.outage !== undefined;
      if (probe) this.probing = true;
      try {
        const reply = await this.evaluate(redisKey, limit, windowMs);
        // Only a request sent during the outage proves recovery; a late answer to an older one does not.
        if (probe) this.recovered();
        return decide(reply[0] === 1, limit, windowMs, reply, false);
      } finally {
        if (probe) this.probing = false;
      }
    } catch (err) {
      this.redisErrors?.inc();
      this.failed(err);
      return this.degraded(rule.failMode, redisKey, limit, windowMs);
    }
  }

  private async evaluate(redisKey: string, limit: number, windowMs: number): Promise<ScriptReply> {
    const member = `${this.memberPrefix}:${(this.sequence++).toString(36)}`;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new TimeoutError(`redis did not answer within ${this.timeoutMs}ms`)), this.timeoutMs);
    });
    try {
      const command = (this.redis as unknown as WithScript)[COMMAND](redisKey, limit, windowMs, member);
      // race() subscribes to the command, so its late rejection is handled, not unhandled.
      const reply = await Promise.race([command, timeout]);
      if (!isReply(reply)) throw new Error(`unexpected rate limit script reply: ${JSON.stringify(reply)}`);
      return reply;
    } finally {
      clearTimeout(timer);
    }
  }

  private degraded(failMode: FailMode, redisKey: string, limit: number, windowMs: number): RateLimitDecision {
    if (this.outage) this.outage.degraded++;
    switch (failMode) {
      case "open":
        return { allowed: true, limit, remaining: Math.max(0, limit - 1), retryAfterMs: 0, resetMs: windowMs, degraded: true };
      case "closed":
        return { allowed: false, limit, remaining: 0, retryAfterMs: 1_000, resetMs: 1_000, degraded: true };
      default: {
        const reply = this.local.check(redisKey, limit, windowMs);
        return decide(reply[0] === 1, limit, windowMs, reply, true);
      }
    }
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
    // The local windows only describe the outage; a later one starts afresh and memory is returned now.
    this.local.clear();
    this.logger?.info({ outageMs: Date.now() - since, degradedDecisions: degraded }, "rate limiter: redis is back");
  }
}
