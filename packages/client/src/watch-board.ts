import { Code, ConnectError, type Client } from "@connectrpc/connect";
import type { LeaderboardUpdate, PushService } from "@scoreboard/gen/scoreboard/v1/push_pb";
import { backoffDelay, DEFAULT_BACKOFF, type BackoffPolicy } from "./backoff.js";

/** Where a live board stands, for a status line. */
export type BoardState =
  /** Opening the stream; `attempt` counts the failures since the last message (0 at first). */
  | { readonly kind: "connecting"; readonly attempt: number }
  /** A message arrived on the open stream. */
  | { readonly kind: "live" }
  /** The stream failed or ended; the next attempt starts after `delayMs`. */
  | { readonly kind: "retrying"; readonly attempt: number; readonly delayMs: number; readonly error: ConnectError };

export interface WatchBoardOptions {
  /** The board: "global" (the default), "region:eu", "daily", "weekly:2026-w47"… (README, "Boards"). */
  board?: string;
  /** How many top entries, 1..100 (default 10). */
  limit?: number;
  /** Every new top N (heartbeats are not passed on). */
  onBoard: (update: LeaderboardUpdate) => void;
  onState?: (state: BoardState) => void;
  /** Stops watching: the returned promise resolves and no callback runs after it. */
  signal?: AbortSignal;
  backoff?: Partial<BackoffPolicy>;
  /**
   * Reconnect when nothing (not even a heartbeat) arrived for this long. The
   * server sends a heartbeat after 15 s of quiet, so silence past that means
   * a connection that died without telling anyone. Default 45 s; 0 turns it off.
   */
  idleTimeoutMs?: number;
}

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
 * Watches one board over PushService.WatchLeaderboard until `signal` aborts,
 * reconnecting after any retryable failure with exponential backoff and
 * jitter; a message resets the backoff. Resolves when stopped; rejects with
 * the ConnectError of a failure a retry cannot fix (an unknown board, a limit
 * out of range, a refused token), or with what a callback threw.
 */
export async function watchBoard(push: Client<typeof PushService>, options: WatchBoardOptions): Promise<void> {
  const { signal } = options;
  const policy = { ...DEFAULT_BACKOFF, ...options.backoff };
  const request = { board: options.board ?? "global", limit: options.limit ?? 10 };
  const report = (state: BoardState) => {
    if (!signal?.aborted) options.onState?.(state);
  };
  let failures = 0;
  while (!signal?.aborted) {
    report({ kind: "connecting", attempt: failures });
    let live = false;
    const error = await watchOnce(push, request, options, (update) => {
      failures = 0;
      if (!live) report({ kind: "live" });
      live = true;
      if (!update.heartbeat) options.onBoard(update);
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
async function watchOnce(
  push: Client<typeof PushService>,
  request: { board: string; limit: number },
  options: WatchBoardOptions,
  onMessage: (update: LeaderboardUpdate) => void,
): Promise<ConnectError> {
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
    for await (const update of push.watchLeaderboard(request, { signal: attempt.signal })) {
      armIdleTimer();
      try {
        onMessage(update);
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
