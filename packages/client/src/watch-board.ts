import type { Client } from "@connectrpc/connect";
import type { StreamPosition } from "@scoreboard/gen/scoreboard/v1/leaderboard_pb";
import type { LeaderboardUpdate, PushService } from "@scoreboard/gen/scoreboard/v1/push_pb";
import { keepWatching, type ReconnectOptions, type StreamState } from "./reconnect.js";

/** Where a live board stands, for a status line (every watch reports the same states). */
export type BoardState = StreamState;

export interface WatchBoardOptions extends ReconnectOptions {
  /** The board: "global" (the default), "region:eu", "daily", "weekly:2026-w47"… (README, "Boards"). */
  board?: string;
  /** How many top entries, 1..100 (default 10). */
  limit?: number;
  /**
   * Every new top N (heartbeats are not passed on). `update.position` is the
   * state's StreamPosition: keep it to resume a later watch with `resume`.
   */
  onBoard: (update: LeaderboardUpdate) => void;
  /** The position of the state already on screen (an earlier watch's last `update.position`): not sent again while current. */
  resume?: StreamPosition;
}

/**
 * Watches one board over PushService.WatchLeaderboard until `signal` aborts,
 * reconnecting after any retryable failure with exponential backoff and
 * jitter; a message resets the backoff. Every reconnect sends the last
 * position received as `resume`, so a board still current sends nothing
 * (what is on screen stays right) and a board that moved meanwhile sends its
 * latest state. Resolves when stopped; rejects with the ConnectError of a
 * failure a retry cannot fix (an unknown board, a limit out of range, a
 * refused token), or with what a callback threw.
 */
export function watchBoard(push: Client<typeof PushService>, options: WatchBoardOptions): Promise<void> {
  const board = options.board ?? "global";
  const limit = options.limit ?? 10;
  let resume = options.resume;
  return keepWatching(
    ({ signal, headers }) => push.watchLeaderboard({ board, limit, resume }, { signal, headers }),
    (update) => {
      if (update.heartbeat) return;
      // A position without an epoch (a server not tracking positions) cannot be compared: resume from scratch.
      resume = update.position?.epoch ? update.position : undefined;
      options.onBoard(update);
    },
    options,
  );
}
