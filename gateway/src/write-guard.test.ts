import { describe, expect, it } from "vitest";
import { ConnectError, Code } from "@connectrpc/connect";
import { TokenVerifier, mintToken } from "@scoreboard/platform/auth";
import type { AuthConfig } from "@scoreboard/platform/config";
import { createLogger } from "@scoreboard/platform/logger";
import { rateLimitHeaders, type RateLimitCheck, type RateLimitDecision, type RateLimiter, type RateLimitRule } from "@scoreboard/platform/rate-limit";
import type { Request } from "./http.js";
import { RateLimitedError, WriteGuard } from "./write-guard.js";

const auth: AuthConfig = { jwtSecret: "write-guard-test-secret-0123456789ab", issuer: "scoreboard", audience: "scoreboard-api" };
const ipRule: RateLimitRule = { name: "writes-ip", limit: 600, windowMs: 60_000, failMode: "local" };
const userRule: RateLimitRule = { name: "actions-user", limit: 60, windowMs: 60_000, failMode: "local" };

const allowed = (limit: number, remaining: number): RateLimitDecision => ({
  allowed: true,
  limit,
  remaining,
  retryAfterMs: 0,
  resetMs: 60_000,
  degraded: false,
});
const denied = (limit: number, retryAfterMs: number): RateLimitDecision => ({
  allowed: false,
  limit,
  remaining: 0,
  retryAfterMs,
  resetMs: 60_000,
  degraded: false,
});

/** Answers each rule by name and records every call (one call = one Redis round trip). */
class FakeLimiter implements RateLimiter {
  readonly calls: Array<Array<[string, string]>> = [];
  constructor(private readonly answers: Record<string, RateLimitDecision>) {}

  async check(rule: RateLimitRule, key: string): Promise<RateLimitDecision> {
    return (await this.checkAll([{ rule, key }]))[0]!;
  }

  async checkAll(checks: readonly RateLimitCheck[]): Promise<RateLimitDecision[]> {
    this.calls.push(checks.map(({ rule, key }) => [rule.name, key]));
    return checks.map(({ rule }) => this.answers[rule.name]!);
  }
}

function guardWith(answers: Record<string, RateLimitDecision>) {
  const limiter = new FakeLimiter(answers);
  const guard = new WriteGuard({
    verifier: new TokenVerifier(auth),
    limiter,
    ipRule,
    trustedProxyHops: 0,
    logger: createLogger("write-guard-test", "silent"),
  });
  return { guard, limiter };
}

const request = (authorization?: string) => ({ headers: authorization ? { authorization } : {}, socket: { remoteAddress: "10.0.0.7" } }) as unknown as Request;

async function refusal(call: Promise<unknown>): Promise<unknown> {
  return call.then(
    () => expect.fail("expected the write to be refused"),
    (err: unknown) => err,
  );
}

describe("WriteGuard.admit", () => {
  it("verifies the token, then checks the address's and the user's limits in one call", async () => {
    const user = allowed(60, 59);
    const { guard, limiter } = guardWith({ "writes-ip": allowed(600, 599), "actions-user": user });
    const admitted = await guard.admit(request(`Bearer ${await mintToken(auth, "alice")}`), "rest:004", userRule);
    expect(limiter.calls).toEqual([
      [
        ["writes-ip", "10.0.0.7"],
        ["actions-user", "alice"],
      ],
    ]);
    expect(admitted.principal.userId).toBe("alice");
    expect(admitted.headers).toEqual(rateLimitHeaders(user)); // the route's own limit, as before
  });

  it("spends only the address's quota on a refused token, and answers 429 once that is used up", async () => {
    const { guard, limiter } = guardWith({ "writes-ip": allowed(600, 10) });
    const err = await refusal(guard.admit(request("Bearer not-a-token"), "rest:004", userRule));
    expect(ConnectError.from(err).code).toBe(Code.Unauthenticated);
    expect(limiter.calls).toEqual([[["writes-ip", "10.0.0.7"]]]);

    const flooded = guardWith({ "writes-ip": denied(600, 4_000) });
    const limited = await refusal(flooded.guard.admit(request(), "rest:004", userRule));
    expect(limited).toBeInstanceOf(RateLimitedError);
    expect((limited as RateLimitedError).headers).toEqual(rateLimitHeaders(denied(600, 4_000)));
  });

  it("answers 429 with the refusing rule's headers, the address's first", async () => {
    const token = `Bearer ${await mintToken(auth, "alice")}`;
    const byUser = guardWith({ "writes-ip": allowed(600, 599), "actions-user": denied(60, 2_000) });
    const userLimited = (await refusal(byUser.guard.admit(request(token), "rest:004", userRule))) as RateLimitedError;
    expect(userLimited.message).toContain("per user");
    expect(userLimited.headers).toEqual(rateLimitHeaders(denied(60, 2_000)));

    const both = guardWith({ "writes-ip": denied(600, 9_000), "actions-user": denied(60, 2_000) });
    const ipLimited = (await refusal(both.guard.admit(request(token), "rest:004", userRule))) as RateLimitedError;
    expect(ipLimited.message).toContain("per client address");
    expect(ipLimited.headers["Retry-After"]).toBe("9");
  });
});
