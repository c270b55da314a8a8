import { Code, ConnectError } from "@connectrpc/connect";

/**
 * The one mapping from an RPC status to an HTTP status, shared by every REST
 * route of the gateway. It follows the Connect protocol's table, so REST and
 * Connect clients see the same status for the same failure.
 */
export function httpStatusOf(code: Code): number {
  switch (code) {
    case Code.InvalidArgument:
    case Code.FailedPrecondition:
    case Code.OutOfRange:
      return 400;
    case Code.Unauthenticated:
      return 401;
    case Code.PermissionDenied:
      return 403;
    case Code.NotFound:
      return 404;
    case Code.AlreadyExists:
    case Code.Aborted:
      return 409;
    case Code.ResourceExhausted:
      return 429;
    case Code.Canceled:
      return 499;
    case Code.Unimplemented:
      return 501;
    case Code.Unavailable:
      return 503;
    case Code.DeadlineExceeded:
      return 504;
    default:
      return 500;
  }
}

/** A short snake_case name of a code for JSON error bodies ("invalid_argument"). */
export function codeName(code: Code): string {
  return (Code[code] ?? "unknown").replace(/([a-z])([A-Z])/g, "$1_$2").toLowerCase();
}

// PostgreSQL connection failures (class 08, admin shutdown 57P01..57P03, too
// many connections) and socket errors mean "try again", not "bug"; start-up
// waits them out too (startup.ts).
const TRANSIENT_PG = /^(08|57P0[123]|53300)/;
const TRANSIENT_SOCKET = new Set(["ECONNREFUSED", "ECONNRESET", "ETIMEDOUT", "EPIPE", "ENOTFOUND", "EAI_AGAIN", "EHOSTUNREACH", "ENETUNREACH"]);

export function isTransientStoreError(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  const code = (err as { code?: unknown }).code;
  if (typeof code === "string" && (TRANSIENT_PG.test(code) || TRANSIENT_SOCKET.has(code))) return true;
  return /Connection terminated|connection timeout|timeout exceeded when trying to connect|Client has encountered a connection error|Connection is closed|max retries per request/i.test(
    err.message,
  );
}

/** Turns a store failure into UNAVAILABLE (retryable) and anything else unknown into INTERNAL. */
export function toConnectError(err: unknown, what: string): ConnectError {
  if (err instanceof ConnectError) return err;
  if (isTransientStoreError(err)) return new ConnectError(`${what} is unavailable, retry shortly`, Code.Unavailable);
  return new ConnectError(`${what} failed`, Code.Internal, undefined, undefined, err);
}
