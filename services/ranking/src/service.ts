import { create } from "@bufbuild/protobuf";
import { timestampNow } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import { StandingSchema } from "@scoreboard/gen/scoreboard/v1/leaderboard_pb";
import type { RankingService } from "@scoreboard/gen/scoreboard/v1/ranking_pb";
import { isValidId } from "@scoreboard/platform/auth";
import { boardName, pageLimit } from "@scoreboard/platform/board-params";
import { toConnectError } from "@scoreboard/platform/errors";
import { DEFAULT_RETENTION_MS, resolveBoard, type PeriodRetention } from "@scoreboard/platform/periods";
import { toEntry, type Boards } from "./boards.js";
import { BoardEpochs, type EpochSource } from "./epochs.js";
import { Leaderboards } from "./leaderboards.js";

/** Neighbours above and below that GetRank may return. */
const MAX_AROUND = 50;
/** Users one GetStandings may ask for, and the neighbours it may return each side of each. */
const MAX_STANDINGS_USERS = 1_000;
const MAX_STANDINGS_AROUND = 10;

/**
 * `boards` alone serves the seed boards; Leaderboards adds defined boards,
 * named by their id (their current season). Without `epochs`, every epoch's
 * generation is 0 (no rebuild known).
 */
export function createRankingService(
  boards: Boards | Leaderboards,
  retention: PeriodRetention = DEFAULT_RETENTION_MS,
  epochs?: EpochSource,
): ServiceImpl<typeof RankingService> {
  const leaderboards = boards instanceof Leaderboards ? boards : new Leaderboards(boards);
  const epochSource = epochs ?? new BoardEpochs(undefined, leaderboards);
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
      const [entries, epoch] = await Promise.all([leaderboards.page(board, req.offset, limit), epochSource.epochOf(board)]).catch(fromStore);
      return { entries: entries.map(toEntry), asOf, epoch };
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

    async getStandings(req) {
      const board = boardOf(req.board);
      checkStandingsRequest(req.userIds, req.around);
      // Stamped before the reads, as GetLeaderboard's.
      const asOf = timestampNow();
      const [found, epoch] = await Promise.all([leaderboards.standings(board, req.userIds, req.around), epochSource.epochOf(board)]).catch(fromStore);
      const standings = req.userIds.map((userId, i) => {
        const standing = found[i];
        if (!standing) return { userId, standing: create(StandingSchema) };
        return { userId, standing: create(StandingSchema, { entry: toEntry(standing.entry), neighbourhood: standing.neighbourhood.map(toEntry) }) };
      });
      return { standings, epoch, asOf };
    },
  };
}

function checkStandingsRequest(userIds: string[], around: number): void {
  if (userIds.length === 0 || userIds.length > MAX_STANDINGS_USERS) {
    throw new ConnectError(`user_ids must name 1..${MAX_STANDINGS_USERS} users, got ${userIds.length}`, Code.InvalidArgument);
  }
  if (around < 0 || around > MAX_STANDINGS_AROUND) {
    throw new ConnectError(`around must be 0..${MAX_STANDINGS_AROUND}`, Code.InvalidArgument);
  }
  const seen = new Set<string>();
  for (const [i, userId] of userIds.entries()) {
    if (!isValidId(userId)) {
      throw new ConnectError(`user_ids[${i}] must be 1..64 characters without control characters`, Code.InvalidArgument);
    }
    if (seen.has(userId)) throw new ConnectError(`user_ids[${i}] "${userId}" is named twice: ask for each user once`, Code.InvalidArgument);
    seen.add(userId);
  }
}
