import type { Redis } from "ioredis";
import type { Logger } from "@scoreboard/platform/logger";
import type { Tally } from "@scoreboard/platform/metrics";
import type { Position, RankedDefinedEntry } from "./entries.js";
import { loadSeason } from "./load.js";
import type { BoardRules, DefinedBoardSource } from "./postgres-store.js";
import { NOT_LOADED, type EntryPage, type NotLoaded, type RedisDefinedBoards } from "./redis-store.js";
import type { ReadableSeason } from "./seasons.js";

/**
 * Defined boards' reads: from Redis while it is ready and holds the season,
 * from PostgreSQL otherwise, as ResilientBoards does for the seed boards. A
 * season Redis does not hold (never loaded, expired early after its
 * retention grew, lost) is answered from PostgreSQL and loaded in the
 * background, once per season at a time; reads move to Redis when it is
 * marked loaded.
 */
export class DefinedBoardReads {
  private degraded = false;
  private readonly loading = new Map<string, Promise<void>>();

  constructor(
    private readonly store: RedisDefinedBoards,
    private readonly redis: Pick<Redis, "status">,
    private readonly source: DefinedBoardSource,
    private readonly logger: Logger,
    private readonly errors: { redis?: Tally; postgres?: Tally } = {},
  ) {}

  page(board: BoardRules, season: ReadableSeason, after: Position | undefined, limit: number): Promise<EntryPage> {
    return this.read(
      board,
      season,
      () => this.store.page(board, season.id, after, limit),
      () => this.source.page(board, season.id, after, limit),
    );
  }

  around(board: BoardRules, season: ReadableSeason, userId: string, around: number): Promise<{ entry?: RankedDefinedEntry; page: EntryPage }> {
    return this.read(
      board,
      season,
      () => this.store.around(board, season.id, userId, around),
      () => this.source.around(board, season.id, userId, around),
    );
  }

  entriesOf(board: BoardRules, season: ReadableSeason, userIds: string[]): Promise<EntryPage> {
    return this.read(
      board,
      season,
      () => this.store.entriesOf(board, season.id, userIds),
      () => this.source.entriesOf(board, season.id, userIds),
    );
  }

  /** Resolves once no season load this replica started is running (tests, shutdown). */
  async settled(): Promise<void> {
    await Promise.all(this.loading.values());
  }

  private async read<T>(board: BoardRules, season: ReadableSeason, fromRedis: () => Promise<T | NotLoaded>, fromPostgres: () => Promise<T>): Promise<T> {
    if (this.redis.status === "ready") {
      let value: T | NotLoaded | undefined;
      try {
        value = await fromRedis();
      } catch (err) {
        this.logger.warn({ err: (err as Error).message }, "Redis read of a defined board failed, answering from PostgreSQL");
      }
      if (value !== undefined) {
        if (this.degraded) this.logger.info("defined boards' reads are back on Redis");
        this.degraded = false;
        if (value !== NOT_LOADED) return value;
        this.load(board, season);
        return this.fromPostgres(fromPostgres);
      }
    }
    if (!this.degraded) this.logger.warn("Redis unavailable: defined boards' reads answer from PostgreSQL");
    this.degraded = true;
    this.errors.redis?.inc();
    return this.fromPostgres(fromPostgres);
  }

  private async fromPostgres<T>(read: () => Promise<T>): Promise<T> {
    try {
      return await read();
    } catch (err) {
      this.errors.postgres?.inc();
      throw err;
    }
  }

  private load(board: BoardRules, season: ReadableSeason): void {
    const key = `${board.boardId}:${season.id}`;
    if (this.loading.has(key)) return;
    const started = Date.now();
    const loading = loadSeason(this.source, this.store, board, season.id, season.expiresAt)
      .then(
        (entries) =>
          this.logger.info({ board: board.boardId, season: season.id, entries, ms: Date.now() - started }, "season loaded into Redis from PostgreSQL"),
        (err: unknown) =>
          this.logger.warn(
            { board: board.boardId, season: season.id, err: (err as Error).message },
            "loading a season into Redis failed; the next read tries again",
          ),
      )
      .finally(() => this.loading.delete(key));
    this.loading.set(key, loading);
  }
}
