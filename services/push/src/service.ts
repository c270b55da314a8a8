import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import type { LeaderboardEntry, StreamPosition } from "@scoreboard/gen/scoreboard/v1/leaderboard_pb";
import type { PushService } from "@scoreboard/gen/scoreboard/v1/push_pb";
import { boardName, pageLimit } from "@scoreboard/platform/board-params";
import { latestStateStream } from "@scoreboard/platform/leaderboard-stream";
import type { OpenCount } from "@scoreboard/platform/metrics";
import { isNewerThanResume, positionOf } from "@scoreboard/platform/stream-position";
import { type BoardMovesRelay, boardMovesStream } from "./board-moves.js";
import type { BoardSnapshot, TopNFanout } from "./fanout.js";

export interface PushServiceOptions {
  /** A stream silent this long gets a heartbeat message. */
  heartbeatMs?: number;
  /** Counts the WatchLeaderboard streams open right now. */
  openStreams?: OpenCount;
  /** Counts the WatchBoardMoves streams open right now. */
  openMoveStreams?: OpenCount;
}

export function createPushService(fanout: TopNFanout, moves: BoardMovesRelay, options: PushServiceOptions = {}): ServiceImpl<typeof PushService> {
  const { heartbeatMs = 15_000, openStreams, openMoveStreams } = options;
  return {
    watchLeaderboard(req, ctx) {
      return watch(fanout, boardName(req.board), pageLimit(req.limit), req.resume, ctx, heartbeatMs, openStreams);
    },
    watchBoardMoves(req, ctx) {
      return boardMovesStream(moves, boardName(req.board), ctx.signal, openMoveStreams);
    },
  };
}

/**
 * One stream: the current top N at once, then a message only when the top N
 * or the epoch differs from what this client last got (latest state only,
 * never a queue). A client resuming from a position is sent nothing until a
 * state newer than that position.
 */
function watch(
  fanout: TopNFanout,
  board: string,
  limit: number,
  resume: StreamPosition | undefined,
  ctx: HandlerContext,
  heartbeatMs: number,
  openStreams?: OpenCount,
) {
  let sentKey: string | undefined;
  let resumed = false;
  return latestStateStream<BoardSnapshot>({
    subscribe: async (onChange) => {
      const unwatch = await fanout.watch(board, onChange);
      openStreams?.inc();
      return () => {
        openStreams?.dec();
        unwatch();
      };
    },
    signal: ctx.signal,
    heartbeatMs,
    render: (snapshot) => {
      const entries = snapshot.top.slice(0, limit);
      const key = `${snapshot.epoch}\u0002${topKey(entries)}`;
      if (key === sentKey) return undefined;
      const position = positionOf(snapshot.epoch, snapshot.asOf);
      // The client has this state or a newer one (from a replica ahead of us).
      if (!resumed && !isNewerThanResume(position, resume)) return undefined;
      resumed = true;
      sentKey = key;
      return { entries, asOf: snapshot.asOf, position };
    },
  });
}

function topKey(entries: LeaderboardEntry[]): string {
  return entries.map((e) => `${e.userId}\u0000${e.score}\u0000${e.username}`).join("\u0001");
}
