import { Code, ConnectError, type CallOptions } from "@connectrpc/connect";
import type { TokenVerifier, Principal } from "@scoreboard/platform/auth";
import { IDEMPOTENCY_KEY_HEADER, idempotencyKeyOf as retryKeyOf } from "@scoreboard/platform/idempotency-key";
import type { Logger } from "@scoreboard/platform/logger";
import { rateLimitHeaders, type RateLimitDecision, type RateLimiter, type RateLimitRule } from "@scoreboard/platform/rate-limit";
import { HttpError, type Request } from "./http.js";

export interface WriteGuardOptions {
  verifier: TokenVerifier;
  limiter: RateLimiter;
  /** Limit per client IP shared by every write route (seed 004). */
  ipRule: RateLimitRule;
  /** How many proxies in front of us append to X-Forwarded-For (0: use the socket address). */
  trustedProxyHops: number;
  logger: Logger;
}

export interface AdmittedWrite {
  principal: Principal;
  /** Call options for the score service: credentials, dialect, retry key. */
  call: CallOptions;
  /** RateLimit-* headers to add to the answer. */
  headers: Record<string, string>;
}

/** Raised when a rate limit refuses a write; carries Retry-After and friends. */
export class RateLimitedError extends HttpError {
  constructor(
    readonly headers: Record<string, string>,
    scope: string,
  ) {
    super(429, `rate limit exceeded (${scope}); retry after ${headers["Retry-After"] ?? "a while"} s`, "resource_exhausted");
  }
}

/**
 * What every REST write goes through before the score service: the token is
 * verified here too (rate limits must key on a proven user, not on a claim an
 * attacker can write), then the per-IP and the route's per-user limits apply,
 * both in one Redis round trip. The score service verifies the token again and
 * decides the grant.
 */
export class WriteGuard {
  constructor(private readonly options: WriteGuardOptions) {}

  async admit(req: Request, source: string, userRule: RateLimitRule): Promise<AdmittedWrite> {
    const authorization = header(req, "authorization");
    const { principal, decision } = await this.admitToken(authorization, this.clientAddress(req), userRule, source);
    const headers: Record<string, string> = { authorization: authorization!, "sb-source": source };
    const apiKey = header(req, "x-api-key");
    if (apiKey !== undefined) headers["x-api-key"] = apiKey;
    return { principal, call: { headers, timeoutMs: 10_000 }, headers: rateLimitHeaders(decision) };
  }

  /** The client's address: the socket's, or X-Forwarded-For's behind TRUSTED_PROXY_HOPS proxies. */
  clientAddress(req: Request): string {
    return clientIp(req, this.options.trustedProxyHops);
  }

  /** The same rules for an RPC write: its token, its client address and the per-user rule. */
  admitUser(
    authorization: string | null | undefined,
    ip: string,
    rule: RateLimitRule,
    source: string,
  ): Promise<{ principal: Principal; decision: RateLimitDecision }> {
    return this.admitToken(authorization, ip, rule, source);
  }

  /**
   * Runs a token check of a read or a forwarded call (ReadGate, the catalog's
   * answer): a refused token spends its address's write quota here too, so
   * guessing tokens is rate limited on every path, not only on REST writes.
   */
  async throttlingRefusedTokens<T>(ip: string, check: () => Promise<T>): Promise<T> {
    try {
      return await check();
    } catch (err) {
      if (isRefusedToken(err)) await this.spendAddressQuota(ip, "token refused");
      throw err;
    }
  }

  private async admitToken(
    authorization: string | null | undefined,
    ip: string,
    userRule: RateLimitRule,
    source: string,
  ): Promise<{ principal: Principal; decision: RateLimitDecision }> {
    const { limiter, ipRule } = this.options;
    let principal: Principal;
    try {
      principal = await this.options.verifier.authenticate(authorization);
    } catch (err) {
      // A refused token still spends its address's quota: guessing tokens stays rate limited.
      await this.spendAddressQuota(ip, source);
      throw err;
    }
    // All or nothing: a request one rule refuses spends neither rule's quota.
    const [byIp, byUser] = (await limiter.checkAll([
      { rule: ipRule, key: ip },
      { rule: userRule, key: principal.userId },
    ])) as [RateLimitDecision, RateLimitDecision];
    if (!byIp.allowed) throw this.limited(byIp, "per client address", { ip, source });
    if (!byUser.allowed) throw this.limited(byUser, "per user", { userId: principal.userId, source });
    return { principal, decision: byUser };
  }

  /** Counts a refusal against the address; throws the 429 once the address is over its limit. */
  private async spendAddressQuota(ip: string, source: string): Promise<void> {
    const byIp = await this.options.limiter.check(this.options.ipRule, ip);
    if (!byIp.allowed) throw this.limited(byIp, "per client address", { ip, source });
  }

  private limited(decision: RateLimitDecision, scope: string, detail: Record<string, string>): RateLimitedError {
    // Logged, not audited in PostgreSQL: a flood must not become a write flood.
    this.options.logger.warn({ ...detail, scope, degraded: decision.degraded }, "write rate limited");
    return new RateLimitedError(rateLimitHeaders(decision), scope);
  }
}

/** The Idempotency-Key header (400 when malformed), or "" when absent. */
export function idempotencyKeyOf(req: Request): string {
  return retryKeyOf("", header(req, IDEMPOTENCY_KEY_HEADER));
}

export function clientIp(req: Request, trustedProxyHops: number): string {
  const socketAddress = req.socket?.remoteAddress ?? "unknown";
  if (trustedProxyHops <= 0) return socketAddress;
  const forwarded = (header(req, "x-forwarded-for") ?? "")
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);
  // The last `hops` entries were written by our own proxies; the one before is the client.
  return forwarded[forwarded.length - trustedProxyHops] ?? socketAddress;
}

function header(req: Request, name: string): string | undefined {
  const value = req.headers[name];
  return typeof value === "string" ? value : Array.isArray(value) ? value[0] : undefined;
}

/** A token that was missing, bad, expired or foreign (not a JWKS outage, which is ours). */
function isRefusedToken(err: unknown): boolean {
  return err instanceof ConnectError && err.code === Code.Unauthenticated;
}

export function isRateLimited(err: unknown): err is RateLimitedError {
  return err instanceof RateLimitedError;
}

/** A refusal as an RPC error: a rate limit becomes RESOURCE_EXHAUSTED carrying Retry-After and RateLimit-*. */
export function asRpcError(err: unknown): unknown {
  return isRateLimited(err) ? new ConnectError(err.message, Code.ResourceExhausted, err.headers) : err;
}
