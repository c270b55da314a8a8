import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import { BoardEntrySchema, SeasonSchema, type BoardEntry, type BoardReadService, type Season } from "@scoreboard/gen/scoreboard/v1/boards_pb";
import { isValidId } from "@scoreboard/platform/auth";
import { pageLimit } from "@scoreboard/platform/board-params";
import { toConnectError } from "@scoreboard/platform/errors";
import { CursorError, decodeCursor, encodeCursor, positionOf, type Cursor, type RankedDefinedEntry } from "./entries.js";
import type { BoardRules, DefinedBoardSource } from "./postgres-store.js";
import type { DefinedBoardReads } from "./reads.js";
import { SeasonNotReadable, earlierScheduleSeason, readableSeason, readableSeasons, type ReadableSeason } from "./seasons.js";

/** Neighbours above and below that GetBoardRank may return. */
const MAX_AROUND = 50;
/** Users GetBoardEntries takes at once. */
const MAX_USER_IDS = 100;

export interface BoardReadServiceOptions {
  /** The clock seasons are computed with (tests cross a season boundary with it). */
  now?: () => Date;
}

export function createBoardReadService(
  definitions: Pick<DefinedBoardSource, "board" | "hasSeason">,
  reads: DefinedBoardReads,
  options: BoardReadServiceOptions = {},
): ServiceImpl<typeof BoardReadService> {
  const now = options.now ?? (() => new Date());

  const boardFor = async (boardId: string): Promise<BoardRules> => {
    if (boardId === "") throw new ConnectError("board_id is required", Code.InvalidArgument);
    // "region:eu", "daily:2026-11-23": the seed boards' names carry their builtin board's id.
    const base = boardId.split(":", 1)[0]!;
    const board = await definitions.board(base).catch((err: unknown) => {
      throw toConnectError(err, "board definitions");
    });
    if (board?.builtin) {
      throw new ConnectError(
        `board "${boardId}" is builtin: read it with scoreboard.v1.RankingService (GetLeaderboard, GetRank) or the seed endpoints`,
        Code.FailedPrecondition,
      );
    }
    if (!board || base !== boardId) throw new ConnectError(`board "${boardId}" does not exist`, Code.NotFound);
    return board;
  };

  const store = <T>(read: Promise<T>): Promise<T> =>
    read.catch((err: unknown) => {
      throw toConnectError(err, "leaderboard store");
    });

  const seasonOf = async (board: BoardRules, id: string): Promise<ReadableSeason> => {
    try {
      return readableSeason(board, id, now());
    } catch (err) {
      if (!(err instanceof SeasonNotReadable)) throw err;
      const earlier = err.reason === "not-of-schedule" ? earlierScheduleSeason(board, id, now()) : undefined;
      if (earlier && (await store(definitions.hasSeason(board.boardId, id)))) return earlier;
      throw new ConnectError(err.message, Code.NotFound);
    }
  };

  return {
    async getBoardPage(req) {
      const board = await boardFor(req.boardId);
      const limit = pageLimit(req.limit);
      let cursor: Cursor | undefined;
      if (req.cursor !== "") {
        try {
          cursor = decodeCursor(board, req.cursor);
        } catch (err) {
          if (err instanceof CursorError) throw new ConnectError(err.message, Code.InvalidArgument);
          throw err;
        }
        if (req.season !== "" && req.season !== cursor.season) {
          throw new ConnectError(`cursor belongs to season "${cursor.season}", not "${req.season}"`, Code.InvalidArgument);
        }
      }
      // A cursor keeps the walk in its season: pages of "the current season"
      // do not jump to the next one when it begins.
      const season = await seasonOf(board, cursor?.season ?? req.season);
      const page = await store(reads.page(board, season, cursor?.after, limit));
      const last = page.entries.at(-1);
      const more = page.entries.length === limit && last !== undefined && last.rank < page.total;
      return {
        entries: page.entries.map(toBoardEntry),
        nextCursor: more ? encodeCursor({ season: season.id, after: positionOf(board, last) }) : "",
        season: toSeason(season),
        total: BigInt(page.total),
      };
    },

    async getBoardRank(req) {
      const board = await boardFor(req.boardId);
      if (req.around < 0 || req.around > MAX_AROUND) throw new ConnectError(`around must be 0..${MAX_AROUND}`, Code.InvalidArgument);
      if (!isValidId(req.userId)) throw new ConnectError("user_id must be 1..64 characters without control characters", Code.InvalidArgument);
      const season = await seasonOf(board, req.season);
      const found = await store(reads.around(board, season, req.userId, req.around));
      if (!found.entry) {
        throw new ConnectError(`user "${req.userId}" has no entry on board "${board.boardId}" in season "${season.id}"`, Code.NotFound);
      }
      return {
        entry: toBoardEntry(found.entry),
        neighbourhood: req.around === 0 ? [] : found.page.entries.map(toBoardEntry),
        season: toSeason(season),
        total: BigInt(found.page.total),
      };
    },

    async getBoardEntries(req) {
      const board = await boardFor(req.boardId);
      if (req.userIds.length > MAX_USER_IDS) throw new ConnectError(`user_ids takes at most ${MAX_USER_IDS} ids`, Code.InvalidArgument);
      const bad = req.userIds.find((id) => !isValidId(id));
      if (bad !== undefined) throw new ConnectError(`user_ids: "${bad}" is not a user id (1..64 characters without control characters)`, Code.InvalidArgument);
      const season = await seasonOf(board, req.season);
      const page = await store(reads.entriesOf(board, season, [...new Set(req.userIds)]));
      return { entries: page.entries.map(toBoardEntry), season: toSeason(season) };
    },

    async listSeasons(req) {
      const board = await boardFor(req.boardId);
      return { seasons: readableSeasons(board, now()).map(toSeason) };
    },
  };
}

export function toBoardEntry(e: RankedDefinedEntry): BoardEntry {
  return create(BoardEntrySchema, {
    rank: BigInt(e.rank),
    userId: e.userId,
    username: e.username,
    score: BigInt(e.score),
    subscore: BigInt(e.subscore),
    metadata: e.metadata,
    reachedAt: timestampFromMs(e.reachedAtMs),
  });
}

export function toSeason(s: ReadableSeason): Season {
  return create(SeasonSchema, {
    id: s.id,
    startsAt: timestampFromMs(s.startsAt.getTime()),
    endsAt: s.endsAt ? timestampFromMs(s.endsAt.getTime()) : undefined,
    current: s.current,
  });
}
