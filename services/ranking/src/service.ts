import { timestampNow } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import type { RankingService } from "@scoreboard/gen/scoreboard/v1/ranking_pb";
import { isValidId } from "@scoreboard/platform/auth";
import { boardName, pageLimit } from "@scoreboard/platform/board-params";
import { toConnectError } from "@scoreboard/platform/errors";
import { DEFAULT_RETENTION_MS, resolveBoard, type PeriodRetention } from "@scoreboard/platform/periods";
import { toEntry, type Boards } from "./boards.js";

/** Neighbours above and below that GetRank may return. */
const MAX_AROUND = 50;

export function createRankingService(boards: Boards, retention: PeriodRetention = DEFAULT_RETENTION_MS): ServiceImpl<typeof RankingService> {
  // "daily", "weekly" and "monthly" mean the current UTC period's board.
  const boardOf = (requested: string) => resolveBoard(boardName(requested), retention);
  return {
    async getLeaderboard(req) {
      const board = boardOf(req.board);
      const limit = pageLimit(req.limit);
      if (req.offset < 0) throw new ConnectError("offset must be 0 or more", Code.InvalidArgument);
      // Stamped before the read: the entries are at least this new, which is
      // what push compares when a refresh races a change announcement.
      const asOf = timestampNow();
      const entries = await boards.page(board, req.offset, limit).catch((err: unknown) => {
        throw toConnectError(err, "leaderboard store");
      });
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
      const entry = await boards.rankOf(board, req.userId).catch((err: unknown) => {
        throw toConnectError(err, "leaderboard store");
      });
      if (!entry) throw new ConnectError(`user "${req.userId}" has no score on board "${board}"`, Code.NotFound);
      if (req.around === 0) return { entry: toEntry(entry) };
      const first = Math.max(0, entry.rank - 1 - req.around);
      const neighbourhood = await boards.page(board, first, entry.rank - first + req.around).catch((err: unknown) => {
        throw toConnectError(err, "leaderboard store");
      });
      return { entry: toEntry(entry), neighbourhood: neighbourhood.map(toEntry) };
    },
  };
}
