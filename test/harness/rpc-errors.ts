import { type Code, ConnectError } from "@connectrpc/connect";

/** The status an RPC failed with, or undefined when it succeeded. */
export function codeOf(call: Promise<unknown>): Promise<Code | undefined> {
  return call.then(
    () => undefined,
    (err: unknown) => ConnectError.from(err).code,
  );
}
