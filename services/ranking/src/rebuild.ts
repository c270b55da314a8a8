import type { Redis } from "ioredis";
import { DEFAULT_BOARD } from "@scoreboard/platform/board-params";
import type { Db } from "@scoreboard/platform/db";
import type { Logger } from "@scoreboard/platform/logger";
import { DEFAULT_RETENTION_MS, PERIOD_KINDS, expiresAtMs, periodAt, type PeriodRetention } from "@scoreboard/platform/periods";
import { sql } from "kysely";
import { LEGACY_KEYS, type RedisBoards, type ScoreState } from "./boards.js";
import { rebuildDefinedBoards } from "./defined-boards/rebuild.js";

// Set after a complete rebuild; a Redis that lost its data loses this too.
// Versioned with the key layout, so a Redis built by an older layout is
// rebuilt (and its old keys removed) by a newer ranking.
export const REBUILT_MARKER = "{sb}:rebuilt-at:v2";
const BATCH = 10_000;

export interface RebuildResult {
  users: number;
  /** Rows loaded into daily, weekly and monthly boards still within their retention. */
  periodRows: number;
  /** Entries loaded into the readable seasons of defined boards. */
  definedEntries: number;
  ms: number;
}

interface TotalRow {
  user_id: string;
  username: string;
  region: string | null;
  score: string;
  version: string;
  updated_at: Date;
}

/**
 * Loads every user's total from PostgreSQL into the boards. Rows go through
 * the same versioned apply as events, so a rebuild racing live events never
 * moves a score back, and running it twice changes nothing.
 *
 * One cursor over one snapshot, not keyset pages: a million users come back
 * three times faster, and the next batch is fetched while Redis takes this one.
 */
export async function rebuildBoards(
  db: Db,
  boards: RedisBoards,
  redis: Redis,
  retention: PeriodRetention = DEFAULT_RETENTION_MS,
  /** The clock defined boards' seasons are computed with. */
  now = new Date(),
): Promise<RebuildResult> {
  const started = Date.now();
  await redis.unlink(...LEGACY_KEYS);
  const users = await db.transaction().execute(async (trx) => {
    await sql`DECLARE totals NO SCROLL CURSOR FOR
      SELECT s.user_id, u.username, u.region, s.score, s.version, s.updated_at
      FROM scores s JOIN users u ON u.user_id = s.user_id`.execute(trx);
    const fetch = async () => (await sql<TotalRow>`FETCH ${sql.raw(String(BATCH))} FROM totals`.execute(trx)).rows;
    let count = 0;
    let rows = await fetch();
    while (rows.length > 0) {
      const next = fetch();
      // Rows of one region share their boards: one bulk apply per region.
      const byRegion = new Map<string, ScoreState[]>();
      for (const r of rows) {
        const region = r.region ?? "";
        let group = byRegion.get(region);
        if (!group) {
          group = [];
          byRegion.set(region, group);
        }
        group.push({ userId: r.user_id, username: r.username, score: Number(r.score), version: Number(r.version), reachedAtMs: r.updated_at.getTime() });
      }
      await Promise.all([...byRegion].map(([region, group]) => boards.applyMany(group, region ? [DEFAULT_BOARD, `region:${region}`] : [DEFAULT_BOARD])));
      count += rows.length;
      rows = await next;
    }
    return count;
  });
  let periodRows = 0;
  for (const board of livePeriodBoards(retention)) periodRows += await rebuildPeriodBoard(db, boards, board);
  const definedEntries = await rebuildDefinedBoards(db, boards.defined, now);
  await redis.set(REBUILT_MARKER, new Date().toISOString());
  return { users, periodRows, definedEntries, ms: Date.now() - started };
}

/** The seed boards a rebuild loaded, by the names streams watch: global, every region's, the live period boards. */
export async function rebuiltSeedBoards(boards: RedisBoards, retention: PeriodRetention = DEFAULT_RETENTION_MS): Promise<string[]> {
  return [DEFAULT_BOARD, ...(await boards.boardsNamed("region:")), ...livePeriodBoards(retention)];
}

/**
 * The defined boards a rebuild loaded, by id. Read here rather than through
 * the definitions' cache: filling that at start would hide a board created
 * just after until its next reload.
 */
export async function rebuiltDefinedBoards(db: Db): Promise<string[]> {
  const rows = await db.selectFrom("board_definitions").select("board_id").where("builtin", "=", false).execute();
  return rows.map((r) => r.board_id);
}

/** Every period board whose retention has not run out, newest first. */
export function livePeriodBoards(retention: PeriodRetention, nowMs = Date.now()): string[] {
  const live: string[] = [];
  for (const kind of PERIOD_KINDS) {
    let period = periodAt(kind, nowMs);
    while (expiresAtMs(period, retention) > nowMs) {
      live.push(period.board);
      period = periodAt(kind, period.startMs - 1);
    }
  }
  return live;
}

// A period row carries the user's current version (read in the same
// statement, so the pair is consistent): period totals only grow with the
// ledger, so an event older than that version is already in the total.
async function rebuildPeriodBoard(db: Db, boards: RedisBoards, board: string): Promise<number> {
  const fetchAfter = (after: string) =>
    db
      .selectFrom("period_scores")
      .innerJoin("scores", "scores.user_id", "period_scores.user_id")
      .innerJoin("users", "users.user_id", "period_scores.user_id")
      .select(["period_scores.user_id", "users.username", "period_scores.score", "period_scores.reached_at", "scores.version"])
      .where("period_scores.board", "=", board)
      .where("period_scores.user_id", ">", after)
      .orderBy("period_scores.user_id")
      .limit(BATCH)
      .execute();
  let count = 0;
  let rows = await fetchAfter("");
  while (rows.length > 0) {
    const next = fetchAfter(rows[rows.length - 1]!.user_id);
    await boards.applyPeriodMany(
      board,
      rows.map((r) => ({
        userId: r.user_id,
        username: r.username,
        score: Number(r.score),
        version: Number(r.version),
        reachedAtMs: r.reached_at.getTime(),
      })),
    );
    count += rows.length;
    rows = await next;
  }
  return count;
}

// The run id of the Redis server the boards were last checked on. A Redis
// that restarts from its AOF or snapshot, or a replica promoted by a
// failover, keeps our data but has a new run id, and may lack the writes of
// its last moments (appendfsync everysec loses up to a second; a replica
// lags) although ranking acked their events.
export const SERVER_MARKER = "{sb}:redis-run-id";

export interface KeepBuiltOptions {
  retention?: PeriodRetention;
  /** Told when a rebuild starts and ends (reads avoid the partial boards meanwhile). */
  onRebuilding?: (running: boolean) => void;
  /** Catches up a Redis that came back with its data (reconciliation, which never rolls back newer versions). */
  afterRestart?: () => Promise<unknown>;
  /** Told when a rebuild completed and reads are back on Redis (a new generation: epochs change). */
  afterRebuild?: () => void;
}

/**
 * Rebuilds at start when Redis has no trace of a rebuild (new, flushed or
 * restarted without persistence), and again whenever it comes back in that
 * state after an outage. When it comes back with its data but is another
 * server run than the one last seen, whatever it may have lost is caught up
 * with `afterRestart`, by one ranking replica.
 */
export function keepBoardsBuilt(db: Db, boards: RedisBoards, redis: Redis, logger: Logger, options: KeepBuiltOptions = {}): () => Promise<void> {
  const { retention = DEFAULT_RETENTION_MS, onRebuilding = () => {}, afterRestart, afterRebuild } = options;
  const checkOnce = async () => {
    try {
      if (await redis.exists(REBUILT_MARKER)) {
        // SET ... GET: of several replicas, only the first to see the new run catches up.
        const runId = await serverRunId(redis);
        const seen = await redis.set(SERVER_MARKER, runId, "GET");
        if (seen !== null && seen !== runId && afterRestart) {
          logger.warn({ was: seen, now: runId }, "Redis restarted with its data: catching up with PostgreSQL");
          try {
            await afterRestart();
          } catch (err) {
            await redis.set(SERVER_MARKER, seen).catch(() => undefined); // the next check tries again
            throw err;
          }
        }
        return;
      }
      logger.info("Redis has no boards: rebuilding from PostgreSQL");
      onRebuilding(true);
      try {
        const result = await rebuildBoards(db, boards, redis, retention);
        await redis.set(SERVER_MARKER, await serverRunId(redis));
        logger.info(result, "boards rebuilt from PostgreSQL");
      } finally {
        onRebuilding(false);
      }
      afterRebuild?.();
    } catch (err) {
      logger.warn({ err: (err as Error).message }, "board check failed; will retry when Redis is ready again");
    }
  };
  // One check at a time; Redis coming back again during one (it may have
  // restarted once more) means one more check after it, never a skipped one.
  let running: Promise<void> | undefined;
  let again = false;
  const check = (): Promise<void> => {
    if (running) {
      again = true;
      return running;
    }
    running = (async () => {
      do {
        again = false;
        await checkOnce();
      } while (again);
    })().finally(() => {
      running = undefined;
    });
    return running;
  };
  redis.on("ready", () => void check());
  return check;
}

async function serverRunId(redis: Redis): Promise<string> {
  const info = await redis.info("server");
  const runId = /^run_id:(\w+)/m.exec(info)?.[1];
  if (!runId) throw new Error("INFO server names no run_id");
  return runId;
}
