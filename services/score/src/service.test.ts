import { beforeEach, describe, expect, it } from "vitest";
import { Code, ConnectError, createClient, createRouterTransport } from "@connectrpc/connect";
import { ScoreService } from "@scoreboard/gen/scoreboard/v1/score_pb";
import { Scopes, TokenVerifier, mintToken } from "@scoreboard/platform/auth";
import type { AuthConfig } from "@scoreboard/platform/config";
import { createLogger } from "@scoreboard/platform/logger";
import type { AuditEntry, GrantOutcome, Grantee, Ledger, WriteContext } from "./ledger.js";
import { createScoreService } from "./service.js";

const auth: AuthConfig = { jwtSecret: "score-service-test-secret-0123456789", issuer: "scoreboard", audience: "scoreboard-api" };

/** Answers every grant with `outcome` (or throws `failure`) and records what it was asked. */
class FakeLedger implements Ledger {
  readonly calls: Array<{ grantee: Grantee; actionId: string }> = [];
  readonly increments: Array<{ ctx: WriteContext; delta: number }> = [];
  readonly audits: AuditEntry[] = [];
  /** The write context of every grant and increment, in order. */
  readonly contexts: WriteContext[] = [];
  outcome: GrantOutcome = { kind: "unknown_action" };
  failure: unknown;
  apiKey = "";

  async grantAction(ctx: WriteContext, actionId: string): Promise<GrantOutcome> {
    this.calls.push({ grantee: ctx.grantee, actionId });
    this.contexts.push(ctx);
    if (this.failure !== undefined) throw this.failure;
    return this.outcome;
  }

  async addScore(ctx: WriteContext, delta: number): Promise<GrantOutcome> {
    this.increments.push({ ctx, delta });
    this.contexts.push(ctx);
    if (this.failure !== undefined) throw this.failure;
    return this.outcome;
  }

  async apiKeyMatches(_userId: string, apiKey: string): Promise<boolean> {
    return this.apiKey !== "" && apiKey === this.apiKey;
  }

  async audit(entry: AuditEntry): Promise<void> {
    this.audits.push(entry);
  }
}

let ledger: FakeLedger;
let granted: number;
let client: ReturnType<typeof createClient<typeof ScoreService>>;

beforeEach(() => {
  ledger = new FakeLedger();
  granted = 0;
  const service = createScoreService({
    ledger,
    verifier: new TokenVerifier(auth),
    logger: createLogger("score-test", "silent"),
    maxIncrement: 5,
    requireRegistration: false,
    onGranted: () => {
      granted += 1;
    },
  });
  client = createClient(
    ScoreService,
    createRouterTransport((router) => router.service(ScoreService, service)),
  );
});

async function bearer(userId = "alice", options: Parameters<typeof mintToken>[2] = {}) {
  return { authorization: `Bearer ${await mintToken(auth, userId, options)}` };
}

async function failure(call: Promise<unknown>): Promise<ConnectError> {
  const err = await call.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ConnectError);
  return err as ConnectError;
}

describe("SubmitAction", () => {
  it("grants an action to the caller and tells the outbox relay once", async () => {
    ledger.outcome = {
      kind: "granted",
      grant: { ledgerId: 7, requestId: "req-1", userId: "alice", actionId: "daily-login", points: 25, newScore: 125, version: 4, replayed: false },
    };
    const res = await client.submitAction({ actionId: "daily-login" }, { headers: await bearer("alice", { name: "Alice" }) });
    expect(res).toMatchObject({ userId: "alice", actionId: "daily-login", points: 25n, newScore: 125n, requestId: "req-1" });
    expect(ledger.calls).toEqual([{ grantee: { userId: "alice", username: "Alice" }, actionId: "daily-login" }]);
    expect(granted).toBe(1);
  });

  it("takes the grantee from the token, never from the request", async () => {
    ledger.outcome = {
      kind: "granted",
      grant: { ledgerId: 1, requestId: "r", userId: "bob", actionId: "a", points: 1, newScore: 1, version: 1, replayed: false },
    };
    await client.submitAction({ actionId: "a" }, { headers: await bearer("bob") });
    expect(ledger.calls[0]?.grantee).toEqual({ userId: "bob", username: "bob" });
  });

  it("answers ALREADY_EXISTS for an action granted before", async () => {
    ledger.outcome = { kind: "already_granted" };
    const err = await failure(client.submitAction({ actionId: "daily-login" }, { headers: await bearer() }));
    expect(err.code).toBe(Code.AlreadyExists);
    expect(err.rawMessage).toContain("daily-login");
    expect(granted).toBe(0);
  });

  it("answers NOT_FOUND for an action not in the catalog", async () => {
    ledger.outcome = { kind: "unknown_action" };
    const err = await failure(client.submitAction({ actionId: "no-such-action" }, { headers: await bearer() }));
    expect(err.code).toBe(Code.NotFound);
    expect(granted).toBe(0);
  });

  it.each([
    ["empty", ""],
    ["65 characters", "a".repeat(65)],
    ["a control character", "daily\u0000login"],
    ["a leading space", " daily-login"],
  ])("rejects an action id that is %s as INVALID_ARGUMENT without calling the ledger", async (_name, actionId) => {
    const err = await failure(client.submitAction({ actionId }, { headers: await bearer() }));
    expect(err.code).toBe(Code.InvalidArgument);
    expect(ledger.calls).toEqual([]);
  });

  it("accepts an action id of exactly 64 characters", async () => {
    ledger.outcome = { kind: "unknown_action" };
    const err = await failure(client.submitAction({ actionId: "a".repeat(64) }, { headers: await bearer() }));
    expect(err.code).toBe(Code.NotFound);
    expect(ledger.calls).toHaveLength(1);
  });
});

describe("SubmitAction authorization", () => {
  it("answers UNAUTHENTICATED without a token", async () => {
    const err = await failure(client.submitAction({ actionId: "daily-login" }));
    expect(err.code).toBe(Code.Unauthenticated);
    expect(ledger.calls).toEqual([]);
  });

  it("answers UNAUTHENTICATED for a token signed with another secret", async () => {
    const forged = await mintToken({ ...auth, jwtSecret: "another-secret-another-secret-0000" }, "alice");
    const err = await failure(client.submitAction({ actionId: "daily-login" }, { headers: { authorization: `Bearer ${forged}` } }));
    expect(err.code).toBe(Code.Unauthenticated);
    expect(ledger.calls).toEqual([]);
  });

  it("checks the token before the request: a bad action id without a token is UNAUTHENTICATED", async () => {
    expect((await failure(client.submitAction({ actionId: "" }))).code).toBe(Code.Unauthenticated);
  });

  it("answers PERMISSION_DENIED for a token without update:score, without calling the ledger", async () => {
    const headers = await bearer("alice", { scopes: [Scopes.readLeaderboard] });
    const err = await failure(client.submitAction({ actionId: "daily-login" }, { headers }));
    expect(err.code).toBe(Code.PermissionDenied);
    expect(err.rawMessage).toContain(Scopes.updateScore);
    expect(ledger.calls).toEqual([]);
  });
});

describe("SubmitAction store failures", () => {
  it("answers UNAVAILABLE when PostgreSQL refuses connections", async () => {
    ledger.failure = Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:5432"), { code: "ECONNREFUSED" });
    const err = await failure(client.submitAction({ actionId: "daily-login" }, { headers: await bearer() }));
    expect(err.code).toBe(Code.Unavailable);
    expect(err.rawMessage).toBe("score store is unavailable, retry shortly");
    expect(granted).toBe(0);
  });

  it("answers UNAVAILABLE when PostgreSQL is shutting down (57P01)", async () => {
    ledger.failure = Object.assign(new Error("terminating connection due to administrator command"), { code: "57P01" });
    expect((await failure(client.submitAction({ actionId: "a" }, { headers: await bearer() }))).code).toBe(Code.Unavailable);
  });

  it("answers INTERNAL for any other store error, without leaking it", async () => {
    ledger.failure = Object.assign(new Error('relation "ledger" does not exist'), { code: "42P01" });
    const err = await failure(client.submitAction({ actionId: "a" }, { headers: await bearer() }));
    expect(err.code).toBe(Code.Internal);
    expect(err.message).not.toContain("relation");
  });
});

describe("retry keys", () => {
  const granted1 = (): GrantOutcome => ({
    kind: "granted",
    grant: { ledgerId: 1, requestId: "r", userId: "alice", actionId: "a", points: 1, newScore: 1, version: 1, replayed: false },
  });
  const keyed = async (key: string) => ({ headers: { ...(await bearer()), "idempotency-key": key } });

  it("takes the Idempotency-Key header when the request has no idempotency_key, on both writes", async () => {
    ledger.outcome = granted1();
    await client.submitAction({ actionId: "a" }, await keyed("order-1"));
    await client.addScore({ delta: 1n }, await keyed("order-2"));
    await client.addScore({ delta: 1n, idempotencyKey: "order-3" }, await keyed("order-3"));
    await client.addScore({ delta: 1n, idempotencyKey: "order-4" }, { headers: await bearer() });
    await client.addScore({ delta: 1n }, { headers: await bearer() });
    expect(ledger.contexts.map((c) => c.idempotencyKey)).toEqual(["order-1", "order-2", "order-3", "order-4", undefined]);
  });

  it.each([
    ["a field and a header that differ", { idempotencyKey: "order-1" }, "order-2", /differ/],
    ["a header with a space", {}, "order 1", /Idempotency-Key must be 1\.\.64 visible ASCII/],
    ["a header of 65 characters", {}, "k".repeat(65), /Idempotency-Key must be/],
    ["an empty header", {}, "", /Idempotency-Key must be/],
    ["a field with a non-ASCII character", { idempotencyKey: "bestellung-ü" }, undefined, /idempotency_key must be 1\.\.64 visible ASCII/],
  ])("refuses %s as INVALID_ARGUMENT without calling the ledger", async (_name, fields, header, message) => {
    ledger.outcome = granted1();
    const options = header === undefined ? { headers: await bearer() } : await keyed(header);
    const action = await failure(client.submitAction({ actionId: "a", ...fields }, options));
    const add = await failure(client.addScore({ delta: 1n, ...fields }, options));
    for (const err of [action, add]) {
      expect(err.code).toBe(Code.InvalidArgument);
      expect(err.rawMessage).toMatch(message);
    }
    expect(ledger.contexts).toEqual([]);
  });
});
