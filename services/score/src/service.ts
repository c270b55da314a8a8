import { Code, ConnectError, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import type { ScoreService } from "@scoreboard/gen/scoreboard/v1/score_pb";
import { Scopes, isValidId, type Principal, type TokenVerifier } from "@scoreboard/platform/auth";
import { toConnectError } from "@scoreboard/platform/errors";
import { IDEMPOTENCY_KEY_HEADER, idempotencyKeyOf } from "@scoreboard/platform/idempotency-key";
import type { Logger } from "@scoreboard/platform/logger";
import type { Tally } from "@scoreboard/platform/metrics";
import type { Grant, GrantOutcome, Ledger, WriteContext } from "./ledger.js";
import { WriterRefused, WriterUnchecked, authenticateWriter, sharedRefusal } from "./writer.js";

/** Verifies a signed action ticket; resolves with its one-time id. */
export interface TicketCheck {
  verify(ticket: string, expected: { userId: string; actionId: string }): Promise<{ jti: string }>;
}

export interface ScoreServiceDeps {
  ledger: Ledger;
  verifier: TokenVerifier;
  tickets?: TicketCheck;
  logger: Logger;
  /** Largest delta AddScore accepts without admin:score. */
  maxIncrement: number;
  requireRegistration: boolean;
  /** Told after every committed grant (the outbox relay publishes at once). */
  onGranted: () => void;
  /** Ledger outcomes by result, and ledger calls that failed. */
  metrics?: ScoreMetrics;
}

/** What the handlers count (prom-client counters fit). */
export interface ScoreMetrics {
  grants: { labels(result: GrantResult): Tally };
  postgresErrors: Tally;
}

/** "granted", "replayed", or the ledger's reason for refusing: a closed set. */
export type GrantResult = "granted" | "replayed" | Exclude<GrantOutcome["kind"], "granted">;

// Set by the gateway to say which REST dialect a write came through.
const SOURCE_HEADER = "sb-source";
const SOURCE = /^[a-z0-9:_-]{1,32}$/;

/** The API a write came through, for the ledger and audit trail: the gateway's header, else "rpc". */
export function writeSourceOf(ctx: HandlerContext): string {
  const source = ctx.requestHeader.get(SOURCE_HEADER) ?? "";
  return SOURCE.test(source) ? source : "rpc";
}

export function createScoreService(deps: ScoreServiceDeps): ServiceImpl<typeof ScoreService> {
  const refuse = async (operation: string, userId: string | null, error: ConnectError, detail: Record<string, unknown> = {}) => {
    await deps.ledger
      .audit({ userId, operation, outcome: "refused", reason: error.rawMessage, detail: { code: Code[error.code], ...detail } })
      .catch((err: unknown) => deps.logger.error({ err: (err as Error).message }, "audit write failed"));
    return error;
  };

  const storeFailed = (err: unknown): never => {
    deps.metrics?.postgresErrors.inc();
    return storeError(err);
  };
  // One counter child per result, made once: counting a grant allocates nothing.
  const grantCounts = new Map<GrantResult, Tally>();
  const countGrant = (result: GrantResult) => {
    if (!deps.metrics) return;
    let tally = grantCounts.get(result);
    if (!tally) {
      tally = deps.metrics.grants.labels(result);
      grantCounts.set(result, tally);
    }
    tally.inc();
  };

  /** Authenticates, checks the scope and the optional API key; audits a refusal. */
  const caller = async (operation: string, ctx: HandlerContext): Promise<Principal> => {
    try {
      return await authenticateWriter(deps.verifier, deps.ledger, ctx);
    } catch (err) {
      if (err instanceof WriterUnchecked) return storeFailed(err.cause);
      if (err instanceof WriterRefused) throw await refuse(operation, err.userId, err.error);
      throw err;
    }
  };

  const writeContext = (principal: Principal, userId: string, keyField: string, ctx: HandlerContext): WriteContext => {
    // The field or the Idempotency-Key header: every protocol's retries dedupe the same way.
    const idempotencyKey = idempotencyKeyOf(keyField, ctx.requestHeader.get(IDEMPOTENCY_KEY_HEADER));
    return {
      grantee: { userId, username: userId === principal.userId ? principal.username : userId },
      source: writeSourceOf(ctx),
      idempotencyKey: idempotencyKey || undefined,
      requireRegistration: deps.requireRegistration,
      // A token's region speaks for its own user only.
      region: userId === principal.userId ? principal.region : undefined,
    };
  };

  const settle = async (operation: string, userId: string, outcome: GrantOutcome, detail: Record<string, unknown>): Promise<Grant> => {
    countGrant(outcome.kind === "granted" && outcome.grant.replayed ? "replayed" : outcome.kind);
    if (outcome.kind === "granted") {
      if (!outcome.grant.replayed) deps.onGranted();
      // Debug, not info: at the shipped level a line per grant was a cost every
      // write paid; grants are recorded in the ledger and audit_log and counted
      // in sb_grants_total.
      deps.logger.debug(
        { operation, userId, ...detail, newScore: outcome.grant.newScore, requestId: outcome.grant.requestId, replayed: outcome.grant.replayed },
        "granted",
      );
      return outcome.grant;
    }
    // The ledger audited its own refusals in the same statement.
    throw refusalOf(outcome, detail);
  };

  return {
    async submitAction(req, ctx) {
      const principal = await caller("submit_action", ctx);
      if (!req.actionId) throw await refuse("submit_action", principal.userId, new ConnectError("action_id is required", Code.InvalidArgument));
      if (!isValidId(req.actionId)) {
        throw new ConnectError("action_id must be 1..64 characters without control characters", Code.InvalidArgument);
      }
      const write = writeContext(principal, principal.userId, req.idempotencyKey, ctx);
      let ticketJti: string | undefined;
      if (req.actionTicket) {
        if (!deps.tickets) throw new ConnectError("action tickets are not configured on this server", Code.FailedPrecondition);
        try {
          ({ jti: ticketJti } = await deps.tickets.verify(req.actionTicket, { userId: principal.userId, actionId: req.actionId }));
        } catch (err) {
          throw await refuse("submit_action", principal.userId, ConnectError.from(err), { actionId: req.actionId });
        }
      }
      const outcome = await deps.ledger.grantAction(write, req.actionId, ticketJti).catch(storeFailed);
      const grant = await settle("submit_action", principal.userId, outcome, { actionId: req.actionId });
      return {
        userId: grant.userId,
        actionId: req.actionId,
        points: BigInt(grant.points),
        newScore: BigInt(grant.newScore),
        requestId: grant.requestId,
        replayed: grant.replayed,
      };
    },

    async addScore(req, ctx) {
      const principal = await caller("add_score", ctx);
      const userId = req.userId || principal.userId;
      const isAdmin = principal.scopes.has(Scopes.adminScore);
      const deny = async (message: string, code = Code.PermissionDenied) =>
        refuse("add_score", principal.userId, new ConnectError(message, code), { userId, delta: String(req.delta) });
      if (!isValidId(userId)) throw await deny("user_id must be 1..64 characters without control characters", Code.InvalidArgument);
      if (userId !== principal.userId && !isAdmin) throw await deny("a token may only add to its own score");
      if (!isAdmin && !principal.roles.some((r) => r === "player" || r === "admin")) throw await deny('the role "player" is required');
      const delta = Number(req.delta);
      if (delta === 0) throw await deny("delta must not be 0", Code.InvalidArgument);
      if (delta < 0 && !isAdmin) throw await deny('a negative delta needs the scope "admin:score"');
      if (delta > deps.maxIncrement && !isAdmin) throw await deny(`delta must be 1..${deps.maxIncrement}`, Code.InvalidArgument);
      if (!Number.isSafeInteger(delta) || Math.abs(delta) > 1_000_000) throw await deny("delta is out of range", Code.InvalidArgument);

      const write = writeContext(principal, userId, req.idempotencyKey, ctx);
      const outcome = await deps.ledger.addScore(write, delta).catch(storeFailed);
      const grant = await settle("add_score", userId, outcome, { delta });
      return {
        userId,
        delta: BigInt(grant.points),
        newScore: BigInt(grant.newScore),
        requestId: grant.requestId,
        replayed: grant.replayed,
      };
    },
  };
}

function refusalOf(outcome: Exclude<GrantOutcome, { kind: "granted" }>, detail: Record<string, unknown>): ConnectError {
  const action = typeof detail.actionId === "string" ? `action "${detail.actionId}"` : "this action";
  switch (outcome.kind) {
    case "unknown_action":
      return new ConnectError(`${action} is not in the catalog`, Code.NotFound);
    case "already_granted":
      return new ConnectError(`${action} was already granted to this user`, Code.AlreadyExists);
    case "ticket_required":
      return new ConnectError(`${action} requires a signed action ticket`, Code.PermissionDenied);
    case "below_zero":
      return new ConnectError(`the total (${outcome.score}) may not go below zero`, Code.FailedPrecondition);
    default:
      return sharedRefusal(outcome);
  }
}

function storeError(err: unknown): never {
  throw toConnectError(err, "score store");
}
