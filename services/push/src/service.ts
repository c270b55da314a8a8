import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import type { LeaderboardEntry } from "@scoreboard/gen/scoreboard/v1/leaderboard_pb";
import type { PushService } from "@scoreboard/gen/scoreboard/v1/push_pb";
import { boardName, pageLimit } from "@scoreboard/platform/board-params";
import { latestStateStream } from "@scoreboard/platform/leaderboard-stream";
import type { OpenCount } from "@scoreboard/platform/metrics";
import type { BoardSnapshot, TopNFanout } from "./fanout.js";

/** openStreams counts the WatchLeaderboard streams open right now. */
export function createPushService(fanout: TopNFanout, heartbeatMs = 15_000, openStreams?: OpenCount): ServiceImpl<typeof PushService> {
  return {
    watchLeaderboard(req, ctx) {
      return watch(fanout, boardName(req.board), pageLimit(req.limit), ctx, heartbeatMs, openStreams);
    },
  };
}

/**
 * One stream: the current top N at once, then a message only when the top N
 * differs from what this client last got (latest state only, never a queue).
 */
function watch(fanout: TopNFanout, board: string, limit: number, ctx: HandlerContext, heartbeatMs: number, openStreams?: OpenCount) {
  let sentKey: string | undefined;
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
      const key = topKey(entries);
      if (key === sentKey) return undefined;
      sentKey = key;
      return { entries, asOf: snapshot.asOf };
    },
  });
}

function topKey(entries: LeaderboardEntry[]): string {
  return entries.map((e) => `${e.userId}\u0000${e.score}\u0000${e.username}`).join("\u0001");
}
