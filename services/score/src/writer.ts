import { Code, ConnectError, type HandlerContext } from "@connectrpc/connect";
import { Scopes, requireScope, type Principal, type TokenVerifier } from "@scoreboard/platform/auth";

/**
 * Who a write acts for, the same for grants and board submissions: a valid
 * token with "update:score" and, when the request carries X-API-Key (seed
 * 001), that user's key. Throws the refusal with the user it concerns (null
 * before the token is known), for the caller to audit.
 */
export async function authenticateWriter(
  verifier: TokenVerifier,
  apiKeys: { apiKeyMatches(userId: string, apiKey: string): Promise<boolean> },
  ctx: HandlerContext,
): Promise<Principal> {
  let principal: Principal;
  try {
    principal = await verifier.authenticate(ctx.requestHeader.get("authorization"));
    requireScope(principal, Scopes.updateScore);
  } catch (err) {
    throw new WriterRefused(null, ConnectError.from(err));
  }
  const apiKey = ctx.requestHeader.get("x-api-key");
  if (apiKey !== null) {
    let matches: boolean;
    try {
      matches = await apiKeys.apiKeyMatches(principal.userId, apiKey);
    } catch (err) {
      throw new WriterUnchecked("X-API-Key could not be checked", { cause: err });
    }
    if (!matches) throw new WriterRefused(principal.userId, new ConnectError("X-API-Key does not match this user", Code.Unauthenticated));
  }
  return principal;
}

/** A write refused before the store: audit it, then answer `error`. */
export class WriterRefused extends Error {
  constructor(
    readonly userId: string | null,
    readonly error: ConnectError,
  ) {
    super(error.message);
  }
}

/** The API key could not be checked (the store failed): `cause` is the store's error. */
export class WriterUnchecked extends Error {}

/** The refusals grants and submissions share, decided by sb_scorer_refusal() and the ledger's keys. */
export type SharedRefusal = { kind: "ticket_used" } | { kind: "unregistered" } | { kind: "not_a_player"; role: string } | { kind: "idempotency_mismatch" };

export function sharedRefusal(refusal: SharedRefusal): ConnectError {
  switch (refusal.kind) {
    case "ticket_used":
      return new ConnectError("this action ticket was already used", Code.PermissionDenied);
    case "unregistered":
      return new ConnectError("user is not registered", Code.PermissionDenied);
    case "not_a_player":
      return new ConnectError(`the user's role "${refusal.role}" may not score`, Code.PermissionDenied);
    case "idempotency_mismatch":
      return new ConnectError("this idempotency key was used for a different request", Code.FailedPrecondition);
  }
}
