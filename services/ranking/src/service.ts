import { timestampNow } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import type { RankingService } from "@scoreboard/gen/scoreboard/v1/ranking_pb";
import { isValidId } from "@scoreboard/platform/auth";
import { boardName, pageLimit } from "@scoreboard/platform/board-params";
import { toConnectError } from "@scoreboard/platform/errors";
import { DEFAULT_RETENTION_MS, resolveBoard, type PeriodRetention } from "@scoreboard/platform/periods";
import { toEntry, type Boards } from "./boards.js";
import { Leaderboards } from "./leaderboards.js";

/** Neighbours above and below that GetRank may return. */
const MAX_AROUND = 50;

/** `boards` alone serves the seed boards; Leaderboards adds defined boards, named by their id (their current season). */
export function createRankingService(boards: Boards | Leaderboards, retention: PeriodRetention = DEFAULT_RETENTION_MS): ServiceImpl<typeof RankingService> {
  const leaderboards = boards instanceof Leaderboards ? boards : new Leaderboards(boards);
  // "daily", "weekly" and "monthly" mean the current UTC period's board.
  const boardOf = (requested: string) => resolveBoard(boardName(requested), retention);
  const fromStore = (err: unknown): never => {
    throw toConnectError(err, "leaderboard store");
  };
  return {
    async getLeaderboard(req) {
      const board = boardOf(req.board);
      const limit = pageLimit(req.limit);
      if (req.offset < 0) throw new ConnectError("offset must be 0 or more", Code.InvalidArgument);
      // Stamped before the read: the entries are at least this new, which is
      // what push compares when a refresh races a change announcement.
      const asOf = timestampNow();
      const entries = await leaderboards.page(board, req.offset, limit).catch(fromStore);
      return { entries: entries.map(toEntry), asOf };
    },

    async getRank(req) {
      const board = boardOf(req.board);
      if (req.around < 0 || req.around > MAX_AROUND) {
        throw new ConnectError(`around must be 0..${MAX_AROUND}`, Code.InvalidArgument);
      }
      if (!isValidId(req.userId)) {
        throw new ConnectError("user_id must be 1..64 characters without control characters", Code.InvalidArgument);
      }
      const found = await leaderboards.rankAround(board, req.userId, req.around).catch(fromStore);
      if (!found) throw new ConnectError(`user "${req.userId}" has no score on board "${board}"`, Code.NotFound);
      if (req.around === 0) return { entry: toEntry(found.entry) };
      return { entry: toEntry(found.entry), neighbourhood: found.neighbourhood.map(toEntry) };
    },
  };
}
