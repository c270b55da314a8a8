import { Code, ConnectError } from "@connectrpc/connect";
import { backoffDelay, DEFAULT_BACKOFF, type BackoffPolicy } from "./backoff.js";

// The one reconnect loop of the package: watchBoard, watchLive and
// watchStanding each say how to open their stream (with the positions they
// last received, so a reconnect resumes) and what to do with a message; how
// long to wait, what to retry and when to give up is decided here.

/** Where a live stream stands, for a status line. */
export type StreamState =
  /** Opening the stream; `attempt` counts the failures since the last message (0 at first). */
  | { readonly kind: "connecting"; readonly attempt: number }
  /** A message arrived on the open stream. */
  | { readonly kind: "live" }
  /** The stream failed or ended; the next attempt starts after `delayMs`. */
  | { readonly kind: "retrying"; readonly attempt: number; readonly delayMs: number; readonly error: ConnectError };

/** How a watch reconnects and stops: the options every watch function takes. */
export interface ReconnectOptions {
  onState?: (state: StreamState) => void;
  /** Stops watching: the returned promise resolves and no callback runs after it. */
  signal?: AbortSignal;
  backoff?: Partial<BackoffPolicy>;
  /**
   * Reconnect when nothing (not even a heartbeat) arrived for this long. The
   * server sends a heartbeat after 15 s of quiet, so silence past that means
   * a connection that died without telling anyone. Default 45 s; 0 turns it off.
   */
  idleTimeoutMs?: number;
  /**
   * Headers for every attempt, e.g. `{ authorization: "Bearer " + token }`
   * (standings need a token). A function is called again before each
   * reconnect, so a refreshed token is used from then on.
   */
  headers?: HeadersInit | (() => HeadersInit);
}

/** Opens one attempt's stream; `signal` ends it. */
export type OpenStream<M> = (call: { signal: AbortSignal; headers: HeadersInit | undefined }) => AsyncIterable<M>;

/**
 * Failures a retry cannot fix: the request or its credentials are wrong.
 * Everything else (the gateway restarting, a dropped connection, a stream cap
 * reached, the server ending the stream) is retried with backoff.
 */
const FINAL_CODES = new Set([Code.InvalidArgument, Code.NotFound, Code.OutOfRange, Code.PermissionDenied, Code.Unauthenticated, Code.Unimplemented]);

/** An exception thrown by the caller's own callback: a bug to surface, not a reason to reconnect. */
class CallbackFailure {
  constructor(readonly cause: unknown) {}
}

/**
 * Keeps a stream open until `options.signal` aborts: `open` is called for
 * every attempt, each message (heartbeats too: they prove the connection is
 * alive) goes to `onMessage`; after any retryable failure the next attempt
 * waits with exponential backoff and jitter, and a message resets the
 * backoff. Resolves when stopped; rejects with the ConnectError of a failure
 * a retry cannot fix, or with what `onMessage` threw.
 */
export async function keepWatching<M>(open: OpenStream<M>, onMessage: (message: M) => void, options: ReconnectOptions): Promise<void> {
  const { signal } = options;
  const policy = { ...DEFAULT_BACKOFF, ...options.backoff };
  const report = (state: StreamState) => {
    if (!signal?.aborted) options.onState?.(state);
  };
  let failures = 0;
  while (!signal?.aborted) {
    report({ kind: "connecting", attempt: failures });
    let live = false;
    const error = await watchOnce(open, options, (message) => {
      failures = 0;
      if (!live) report({ kind: "live" });
      live = true;
      onMessage(message);
    });
    if (signal?.aborted) return;
    if (FINAL_CODES.has(error.code)) throw error;
    const delayMs = backoffDelay(failures, policy);
    failures++;
    report({ kind: "retrying", attempt: failures, delayMs, error });
    await sleep(delayMs, signal);
  }
}

/** One stream, from open to its end: why it ended (when not stopped by the caller). */
async function watchOnce<M>(open: OpenStream<M>, options: ReconnectOptions, onMessage: (message: M) => void): Promise<ConnectError> {
  const idleTimeoutMs = options.idleTimeoutMs ?? 45_000;
  const attempt = new AbortController();
  const stop = () => attempt.abort();
  options.signal?.addEventListener("abort", stop);
  // A callback may have stopped the watch just before this attempt began.
  if (options.signal?.aborted) stop();
  let idleTimer: ReturnType<typeof setTimeout> | undefined;
  let idle = false;
  const armIdleTimer = () => {
    clearTimeout(idleTimer);
    if (idleTimeoutMs <= 0) return;
    idleTimer = setTimeout(() => {
      idle = true;
      attempt.abort();
    }, idleTimeoutMs);
  };
  try {
    armIdleTimer();
    const headers = callerHeaders(options);
    for await (const message of open({ signal: attempt.signal, headers })) {
      armIdleTimer();
      try {
        onMessage(message);
      } catch (err) {
        throw new CallbackFailure(err);
      }
    }
    return new ConnectError("the server ended the stream", Code.Unavailable);
  } catch (err) {
    if (err instanceof CallbackFailure) throw err.cause;
    if (idle) return new ConnectError(`no message for ${idleTimeoutMs} ms`, Code.DeadlineExceeded);
    return ConnectError.from(err);
  } finally {
    clearTimeout(idleTimer);
    options.signal?.removeEventListener("abort", stop);
  }
}

/** The caller's headers for this attempt; a throwing header function is the caller's bug, like a throwing callback. */
function callerHeaders(options: ReconnectOptions): HeadersInit | undefined {
  try {
    return typeof options.headers === "function" ? options.headers() : options.headers;
  } catch (err) {
    throw new CallbackFailure(err);
  }
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener("abort", done);
  });
}
