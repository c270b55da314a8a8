import { sql } from "kysely";
import type { Redis } from "ioredis";
import type { Db } from "@scoreboard/platform/db";
import { DEFAULT_BOARD } from "@scoreboard/platform/board-params";
import type { Logger } from "@scoreboard/platform/logger";
import type { Tally } from "@scoreboard/platform/metrics";
import { parsePeriodBoard } from "@scoreboard/platform/periods";
import type { Boards, PeriodTotal, RankedEntry, ScoreState } from "./boards.js";
import { RedisRanks, type ManyRanks } from "./ranks.js";

/**
 * The global board read straight from PostgreSQL, the source of truth, in
 * the same order as Redis: score descending, then who reached it first (to
 * the millisecond), then user id descending in byte order.
 */
export class PostgresStandings {
  constructor(private readonly db: Db) {}

  async page(board: string, offset: number, limit: number): Promise<RankedEntry[]> {
    if (parsePeriodBoard(board)) return this.periodPage(board, offset, limit);
    const region = regionOf(board);
    if (region === undefined) return [];
    const { rows } = await sql<{ user_id: string; username: string; score: number }>`
      SELECT s.user_id, u.username, s.score
      FROM scores s JOIN users u ON u.user_id = s.user_id
      WHERE ${region === null ? sql`true` : sql`u.region = ${region}`}
      ORDER BY s.score DESC, date_trunc('milliseconds', s.updated_at) ASC, s.user_id COLLATE "C" DESC
      OFFSET ${offset} LIMIT ${limit}`.execute(this.db);
    return rows.map((r, i) => ({ rank: offset + i + 1, userId: r.user_id, username: r.username, score: Number(r.score) }));
  }

  async rankOf(board: string, userId: string): Promise<RankedEntry | undefined> {
    if (parsePeriodBoard(board)) return this.periodRankOf(board, userId);
    const region = regionOf(board);
    if (region === undefined) return undefined;
    const { rows } = await sql<{ username: string; score: number; above: number }>`
      SELECT u.username, s.score,
        (SELECT count(*) FROM scores o JOIN users ou ON ou.user_id = o.user_id
          WHERE ${region === null ? sql`true` : sql`ou.region = ${region}`} AND (o.score > s.score
             OR (o.score = s.score AND date_trunc('milliseconds', o.updated_at) < date_trunc('milliseconds', s.updated_at))
             OR (o.score = s.score AND date_trunc('milliseconds', o.updated_at) = date_trunc('milliseconds', s.updated_at)
                 AND o.user_id COLLATE "C" > s.user_id COLLATE "C")))::int AS above
      FROM scores s JOIN users u ON u.user_id = s.user_id
      WHERE s.user_id = ${userId} AND ${region === null ? sql`true` : sql`u.region = ${region}`}`.execute(this.db);
    const row = rows[0];
    return row ? { rank: Number(row.above) + 1, userId, username: row.username, score: Number(row.score) } : undefined;
  }

  /**
   * Many users' entries: each user's rank query for a few users, one ranked
   * pass over the board for many (each query counts the entries above its
   * user: a whole-board pass is cheaper once users are more than a handful).
   */
  async ranksOf(board: string, userIds: string[]): Promise<(RankedEntry | undefined)[]> {
    if (userIds.length <= RANK_QUERIES_UP_TO) return Promise.all(userIds.map((userId) => this.rankOf(board, userId)));
    const period = parsePeriodBoard(board) !== undefined;
    const region = regionOf(board);
    if (!period && region === undefined) return userIds.map(() => undefined);
    const ranked = period
      ? sql`SELECT p.user_id, u.username, p.score,
            row_number() OVER (ORDER BY p.score DESC, date_trunc('milliseconds', p.reached_at) ASC, p.user_id COLLATE "C" DESC) AS rank
          FROM period_scores p JOIN users u ON u.user_id = p.user_id WHERE p.board = ${board}`
      : sql`SELECT s.user_id, u.username, s.score,
            row_number() OVER (ORDER BY s.score DESC, date_trunc('milliseconds', s.updated_at) ASC, s.user_id COLLATE "C" DESC) AS rank
          FROM scores s JOIN users u ON u.user_id = s.user_id WHERE ${region === null ? sql`true` : sql`u.region = ${region}`}`;
    const { rows } = await sql<{ user_id: string; username: string; score: number; rank: number }>`
      SELECT * FROM (${ranked}) r WHERE r.user_id = ANY(${userIds})`.execute(this.db);
    const byUser = new Map(rows.map((r) => [r.user_id, { rank: Number(r.rank), userId: r.user_id, username: r.username, score: Number(r.score) }]));
    return userIds.map((userId) => byUser.get(userId));
  }

  private async periodPage(board: string, offset: number, limit: number): Promise<RankedEntry[]> {
    const { rows } = await sql<{ user_id: string; username: string; score: number }>`
      SELECT p.user_id, u.username, p.score
      FROM period_scores p JOIN users u ON u.user_id = p.user_id
      WHERE p.board = ${board}
      ORDER BY p.score DESC, date_trunc('milliseconds', p.reached_at) ASC, p.user_id COLLATE "C" DESC
      OFFSET ${offset} LIMIT ${limit}`.execute(this.db);
    return rows.map((r, i) => ({ rank: offset + i + 1, userId: r.user_id, username: r.username, score: Number(r.score) }));
  }

  private async periodRankOf(board: string, userId: string): Promise<RankedEntry | undefined> {
    const { rows } = await sql<{ username: string; score: number; above: number }>`
      SELECT u.username, p.score,
        (SELECT count(*) FROM period_scores o
          WHERE o.board = p.board AND (o.score > p.score
             OR (o.score = p.score AND date_trunc('milliseconds', o.reached_at) < date_trunc('milliseconds', p.reached_at))
             OR (o.score = p.score AND date_trunc('milliseconds', o.reached_at) = date_trunc('milliseconds', p.reached_at)
                 AND o.user_id COLLATE "C" > p.user_id COLLATE "C")))::int AS above
      FROM period_scores p JOIN users u ON u.user_id = p.user_id
      WHERE p.board = ${board} AND p.user_id = ${userId}`.execute(this.db);
    const row = rows[0];
    return row ? { rank: Number(row.above) + 1, userId, username: row.username, score: Number(row.score) } : undefined;
  }
}

/**
 * Reads from Redis while it is there and from PostgreSQL while it is not
 * (seeds 000 and 003), so a Redis outage slows reads down instead of failing
 * them. Writes (event applies) go to Redis only; they retry until it is back.
 */
export class ResilientBoards implements Boards, ManyRanks {
  private degraded = false;
  private rebuilding = false;
  /**
   * Made with the object, not at the first read: it defines a script on the
   * connection, and ioredis' auto-pipelining crashes the process when a
   * command is defined while a pipeline is being filled.
   */
  private readonly ranks: RedisRanks;

  constructor(
    private readonly redisBoards: Boards,
    private readonly redis: Redis,
    private readonly standings: PostgresStandings,
    private readonly logger: Logger,
    /** Reads Redis failed or could not take (answered from PostgreSQL), and fallback reads that failed too. */
    private readonly errors: { redis?: Tally; postgres?: Tally } = {},
  ) {
    this.ranks = new RedisRanks(redis);
  }

  apply(state: ScoreState, boards: string[]): Promise<boolean> {
    return this.redisBoards.apply(state, boards);
  }

  applyPeriods(state: ScoreState, periods: PeriodTotal[]): Promise<string[]> {
    return this.redisBoards.applyPeriods(state, periods);
  }

  page(board: string, offset: number, limit: number): Promise<RankedEntry[]> {
    return this.read(
      () => this.redisBoards.page(board, offset, limit),
      () => this.standings.page(board, offset, limit),
    );
  }

  rankOf(board: string, userId: string): Promise<RankedEntry | undefined> {
    return this.read(
      () => this.redisBoards.rankOf(board, userId),
      () => this.standings.rankOf(board, userId),
    );
  }

  ranksOf(board: string, userIds: string[]): Promise<(RankedEntry | undefined)[]> {
    return this.read(
      () => this.ranks.ranksOf(board, userIds),
      () => this.standings.ranksOf(board, userIds),
    );
  }

  /**
   * While this replica rebuilds Redis, its boards are partial: reads go to
   * PostgreSQL until the rebuild is complete.
   */
  setRebuilding(rebuilding: boolean): void {
    this.rebuilding = rebuilding;
  }

  private async read<T>(fromRedis: () => Promise<T>, fromPostgres: () => Promise<T>): Promise<T> {
    if (this.rebuilding) return fromPostgres();
    // Not connected: do not wait for ioredis' retries, answer from the source of truth.
    if (this.redis.status === "ready") {
      try {
        const value = await fromRedis();
        if (this.degraded) this.logger.info("reads are back on Redis");
        this.degraded = false;
        return value;
      } catch (err) {
        this.logger.warn({ err: (err as Error).message }, "Redis read failed, answering from PostgreSQL");
      }
    }
    if (!this.degraded) this.logger.warn("Redis unavailable: reads answer from PostgreSQL");
    this.degraded = true;
    this.errors.redis?.inc();
    try {
      return await fromPostgres();
    } catch (err) {
      this.errors.postgres?.inc();
      throw err;
    }
  }
}

/** Users up to which PostgresStandings.ranksOf asks for each user's rank on its own. */
const RANK_QUERIES_UP_TO = 8;

/** null for the global board, the region for "region:<r>", undefined for boards PostgreSQL cannot answer. */
function regionOf(board: string): string | null | undefined {
  if (board === DEFAULT_BOARD) return null;
  return board.startsWith("region:") ? board.slice("region:".length) : undefined;
}
