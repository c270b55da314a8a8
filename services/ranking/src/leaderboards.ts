import { Code, ConnectError } from "@connectrpc/connect";
import { isDefinedBoardName } from "@scoreboard/platform/board-params";
import { toConnectError } from "@scoreboard/platform/errors";
import type { Boards, RankedEntry } from "./boards.js";
import type { BoardRules, DefinedBoardSource } from "./defined-boards/postgres-store.js";
import type { DefinedBoardReads } from "./defined-boards/reads.js";
import type { ManyRanks } from "./ranks.js";
import { currentSeason, currentSeasonId } from "./defined-boards/seasons.js";

/**
 * How deep RankingService reads a defined board (offset + limit): its reads
 * are keyset pages, so an offset costs every entry above it. Deeper pages
 * are BoardReadService.GetBoardPage's, by cursor.
 */
export const DEFINED_BOARD_DEPTH = 1_000;

/** What ranking reads of defined boards by name: their definitions and their seasons' entries. */
export interface DefinedBoardLookup {
  definitions: Pick<DefinedBoardSource, "board">;
  reads: Pick<DefinedBoardReads, "page" | "around" | "entriesOf">;
  /** The clock seasons are computed with. */
  now?: () => Date;
}

/** A user's entry with the entries around it, in rank order. */
export interface RankAround {
  entry: RankedEntry;
  neighbourhood: RankedEntry[];
}

/**
 * The boards RankingService and the change announcements name, and where
 * each is read: the one place that says which board a name is. A defined
 * board is named by its id and means its current season (a stream of it
 * moves to the next season when that begins); every other name is a seed
 * board (global, region:<r>, a concrete period), read exactly as before
 * defined boards existed.
 */
export class Leaderboards {
  private readonly now: () => Date;

  constructor(
    /** With ManyRanks, standings without neighbours are one read (else one rank read per user). */
    private readonly seed: Boards & Partial<ManyRanks>,
    private readonly defined?: DefinedBoardLookup,
  ) {
    this.now = defined?.now ?? (() => new Date());
  }

  /** Entries `offset`.. of the board, in its order. */
  async page(name: string, offset: number, limit: number): Promise<RankedEntry[]> {
    const board = await this.definedBoard(name);
    if (!board) return this.seed.page(name, offset, limit);
    if (offset + limit > DEFINED_BOARD_DEPTH) {
      throw new ConnectError(
        `board "${name}" is a defined board: read its top ${DEFINED_BOARD_DEPTH} here (offset + limit), further pages with scoreboard.v1.BoardReadService.GetBoardPage's cursor`,
        Code.InvalidArgument,
      );
    }
    const page = await this.defined!.reads.page(board, currentSeason(board, this.now()), undefined, offset + limit);
    return page.entries.slice(offset);
  }

  /** A user's entry, and with `around` > 0 up to that many entries above and below it; undefined when the user has none. */
  async rankAround(name: string, userId: string, around: number): Promise<RankAround | undefined> {
    const board = await this.definedBoard(name);
    if (board) {
      const found = await this.defined!.reads.around(board, currentSeason(board, this.now()), userId, around);
      return found.entry && { entry: found.entry, neighbourhood: around === 0 ? [] : found.page.entries };
    }
    return this.seedRankAround(name, userId, around);
  }

  /**
   * Many users' standings at once, in the order asked (undefined for a user
   * without an entry). Entries are one read (a script call on Redis); with
   * neighbours, each user's page goes out together (ioredis' auto-pipelining
   * sends them in a few round trips).
   */
  async standings(name: string, userIds: string[], around: number): Promise<(RankAround | undefined)[]> {
    const board = await this.definedBoard(name);
    if (!board) return this.seedStandings(name, userIds, around);
    const season = currentSeason(board, this.now());
    if (around > 0) {
      return Promise.all(
        userIds.map(async (userId) => {
          const found = await this.defined!.reads.around(board, season, userId, around);
          return found.entry && { entry: found.entry, neighbourhood: found.page.entries };
        }),
      );
    }
    const { entries } = await this.defined!.reads.entriesOf(board, season, userIds);
    const byUser = new Map(entries.map((entry) => [entry.userId, entry]));
    return userIds.map((userId) => {
      const entry = byUser.get(userId);
      return entry && { entry, neighbourhood: [] };
    });
  }

  /** The season a defined board's name shows now; undefined for seed boards (and names no board has). */
  async currentSeasonOf(name: string): Promise<string | undefined> {
    const board = await this.definedBoard(name);
    return board && currentSeasonId(board, this.now());
  }

  /** Whether `season` is the season a defined board's name shows now (a change to another one changes no stream). */
  async showsSeason(boardId: string, season: string): Promise<boolean> {
    const board = await this.definedBoard(boardId);
    return board !== undefined && currentSeasonId(board, this.now()) === season;
  }

  private async seedStandings(name: string, userIds: string[], around: number): Promise<(RankAround | undefined)[]> {
    if (!this.seed.ranksOf) return Promise.all(userIds.map((userId) => this.seedRankAround(name, userId, around)));
    const entries = await this.seed.ranksOf(name, userIds);
    return Promise.all(entries.map((entry) => entry && this.seedNeighbourhood(name, entry, around)));
  }

  private async seedRankAround(name: string, userId: string, around: number): Promise<RankAround | undefined> {
    const entry = await this.seed.rankOf(name, userId);
    return entry && this.seedNeighbourhood(name, entry, around);
  }

  private async seedNeighbourhood(name: string, entry: RankedEntry, around: number): Promise<RankAround> {
    if (around === 0) return { entry, neighbourhood: [] };
    const first = Math.max(0, entry.rank - 1 - around);
    return { entry, neighbourhood: await this.seed.page(name, first, entry.rank - first + around) };
  }

  /** The defined board a name is, or undefined for a seed board (and names no board has). */
  private async definedBoard(name: string): Promise<BoardRules | undefined> {
    if (!this.defined || !isDefinedBoardName(name)) return undefined;
    const board = await this.defined.definitions.board(name).catch((err: unknown) => {
      throw toConnectError(err, "board definitions");
    });
    return board && !board.builtin ? board : undefined;
  }
}
