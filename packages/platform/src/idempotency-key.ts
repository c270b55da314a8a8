// The retry key every write accepts, as a request field (`idempotency_key`) or
// an `Idempotency-Key` header on any protocol. The rule lives here only: the
// gateway's REST routes and the score service both call it.
import { Code, ConnectError } from "@connectrpc/connect";

/** Header name (HTTP/1.1, Connect and gRPC metadata alike). */
export const IDEMPOTENCY_KEY_HEADER = "idempotency-key";

// Visible ASCII only: the key must pass through HTTP headers and gRPC
// metadata unchanged, whichever way a client sends it.
const KEY = /^[\x21-\x7e]{1,64}$/;

/**
 * The retry key of one write: the request's field, else its header, else ""
 * (none). A present but invalid key, or a field and a header that differ, is
 * INVALID_ARGUMENT: guessing which one the client meant could grant twice.
 */
export function idempotencyKeyOf(field: string, header: string | null | undefined): string {
  if (header !== null && header !== undefined && !KEY.test(header)) {
    throw new ConnectError("Idempotency-Key must be 1..64 visible ASCII characters", Code.InvalidArgument);
  }
  if (field !== "" && !KEY.test(field)) {
    throw new ConnectError("idempotency_key must be 1..64 visible ASCII characters", Code.InvalidArgument);
  }
  if (field !== "" && header !== null && header !== undefined && field !== header) {
    throw new ConnectError("idempotency_key and the Idempotency-Key header differ; send one, or the same in both", Code.InvalidArgument);
  }
  return field || header || "";
}
