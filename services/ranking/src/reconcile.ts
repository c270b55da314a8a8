import type { Redis } from "ioredis";
import { DEFAULT_BOARD } from "@scoreboard/platform/board-params";
import type { Db } from "@scoreboard/platform/db";
import { reconcileDefinedBoards, type DefinedReconcileResult } from "./defined-boards/reconcile.js";
import { memberOf, type RedisBoards, type RepairState, type ScoreState, type StoredUser } from "./boards.js";
import { sweepBoard, type Placement } from "./reconcile-orphans.js";
import { reconcilePeriodBoards } from "./reconcile-periods.js";

export interface Drift {
  userId: string;
  /** The board it was on: "global", "region:eu", "daily:2026-11-23". */
  board: string;
  redis: number | null;
  /** null: PostgreSQL does not have this entry on the board, so it was removed. */
  postgres: number | null;
}

export interface ReconcileResult {
  /** Users compared (every user with a total). */
  checked: number;
  /** The boards compared. */
  boards: string[];
  repaired: Drift[];
  /** Defined boards' readable seasons, compared and repaired the same way (apart: push has no streams of them to refresh yet). */
  definedBoards: DefinedReconcileResult;
}

export interface ReconcileOptions {
  /**
   * Test seam: runs after each batch's PostgreSQL read and after its Redis
   * read, so a test can land a grant in the gaps a repair must not undo.
   */
  afterRead?: (store: "postgres" | "redis", board: string) => Promise<void>;
  /** The clock defined boards' seasons are computed with. */
  now?: () => Date;
}

const BATCH = 2_000;

/**
 * Compares PostgreSQL with Redis (seed 001's reconciliation job) and makes
 * Redis say what PostgreSQL says: every user's total on the global board and
 * on their region's board, and every live period board; missing or wrong
 * entries are set, entries PostgreSQL does not have are removed. A repair
 * never rolls back a version an event stored after the read it came from
 * (RedisBoards.repair checks that atomically); only a version PostgreSQL
 * never made is overwritten. Returns what it repaired.
 */
export async function reconcile(db: Db, boards: RedisBoards, options: ReconcileOptions = {}): Promise<ReconcileResult> {
  const repaired: Drift[] = [];
  const checked = await reconcileTotals(db, boards, options, repaired);
  const regions = await regionBoards(db, boards);
  for (const board of [DEFAULT_BOARD, ...regions]) {
    const region = board === DEFAULT_BOARD ? undefined : board.slice("region:".length);
    await sweepBoard(boards, board, placedBy(db, region), repaired);
  }
  const periods = await reconcilePeriodBoards(db, boards, options, repaired);
  const definedBoards = await reconcileDefinedBoards(db, boards.defined, options.now?.());
  return { checked, boards: [DEFAULT_BOARD, ...regions, ...periods], repaired, definedBoards };
}

/** A user's total as PostgreSQL has it, and the boards it belongs on. */
interface Total {
  state: ScoreState;
  boards: string[];
}

async function readTotals(db: Db, page: { after: string } | { userIds: string[] }): Promise<Total[]> {
  let query = db
    .selectFrom("scores")
    .innerJoin("users", "users.user_id", "scores.user_id")
    .select(["scores.user_id", "users.username", "users.region", "scores.score", "scores.version", "scores.updated_at"])
    .orderBy("scores.user_id");
  if ("after" in page) query = query.where("scores.user_id", ">", page.after).limit(BATCH);
  else if (page.userIds.length === 0) return [];
  else query = query.where("scores.user_id", "in", page.userIds);
  return (await query.execute()).map((r) => ({
    state: { userId: r.user_id, username: r.username, score: Number(r.score), version: Number(r.version), reachedAtMs: r.updated_at.getTime() },
    boards: r.region ? [DEFAULT_BOARD, `region:${r.region}`] : [DEFAULT_BOARD],
  }));
}

async function reconcileTotals(db: Db, boards: RedisBoards, options: ReconcileOptions, repaired: Drift[]): Promise<number> {
  let checked = 0;
  let after = "";
  for (;;) {
    const totals = await readTotals(db, { after });
    if (totals.length === 0) return checked;
    await options.afterRead?.("postgres", DEFAULT_BOARD);
    repaired.push(...(await reconcileTotalsBatch(db, boards, totals, options)));
    checked += totals.length;
    after = totals[totals.length - 1]!.state.userId;
  }
}

/** What Redis holds for a batch of users: their USERS entries, and scores per board and user. */
interface Seen {
  stored: Map<string, StoredUser | undefined>;
  scores: Map<string, Map<string, number | null>>;
}

async function readRedis(boards: RedisBoards, totals: Total[]): Promise<Seen> {
  const userIds = totals.map((t) => t.state.userId);
  const stored = await boards.storedOf(DEFAULT_BOARD, userIds);
  const onBoard = new Map<string, number[]>();
  totals.forEach((t, i) => {
    for (const board of t.boards) {
      const indices = onBoard.get(board);
      if (indices) indices.push(i);
      else onBoard.set(board, [i]);
    }
  });
  const scores = new Map<string, Map<string, number | null>>();
  await Promise.all(
    [...onBoard].map(async ([board, indices]) => {
      const found = await boards.scoresOfMembers(
        board,
        indices.map((i) => stored[i]?.member),
      );
      scores.set(board, new Map(indices.map((i, k) => [userIds[i]!, found[k] ?? null])));
    }),
  );
  return { stored: new Map(userIds.map((userId, i) => [userId, stored[i]])), scores };
}

interface Repair {
  state: RepairState;
  boards: string[];
  /** The boards to report it on. */
  wrong: string[];
}

async function reconcileTotalsBatch(db: Db, boards: RedisBoards, totals: Total[], options: ReconcileOptions): Promise<Drift[]> {
  const seen = await readRedis(boards, totals);
  await options.afterRead?.("redis", DEFAULT_BOARD);
  const repairs: Repair[] = [];
  const consider = (total: Total, replaces?: number) => {
    const wrong = wrongBoards(total, seen, replaces !== undefined);
    if (wrong.length > 0) repairs.push({ state: { ...total.state, replaces }, boards: total.boards, wrong });
  };
  const ahead: string[] = [];
  for (const total of totals) {
    if ((seen.stored.get(total.state.userId)?.version ?? -1) > total.state.version) ahead.push(total.state.userId);
    else consider(total);
  }
  // Redis holds a newer version than we read: an event applied since, or a
  // version PostgreSQL never made. Only a read after Redis's tells which.
  for (const fresh of await readTotals(db, { userIds: ahead })) {
    const storedVersion = seen.stored.get(fresh.state.userId)!.version;
    consider(fresh, storedVersion > fresh.state.version ? storedVersion : undefined);
  }
  return applyRepairs(boards, repairs, seen);
}

/** The boards on which Redis does not say what PostgreSQL does about this user; [] when it agrees. */
function wrongBoards(total: Total, seen: Seen, garbage: boolean): string[] {
  const { userId, score, version, reachedAtMs } = total.state;
  const stored = seen.stored.get(userId);
  const entryRight = !garbage && stored?.version === version && stored.member === memberOf(userId, reachedAtMs);
  const wrongScore = total.boards.filter((board) => seen.scores.get(board)?.get(userId) !== score);
  return wrongScore.length > 0 || entryRight ? wrongScore : total.boards;
}

async function applyRepairs(boards: RedisBoards, repairs: Repair[], seen: Seen): Promise<Drift[]> {
  const byBoards = new Map<string, Repair[]>();
  for (const r of repairs) {
    const key = r.boards.join("\n");
    const group = byBoards.get(key);
    if (group) group.push(r);
    else byBoards.set(key, [r]);
  }
  const drifts: Drift[] = [];
  for (const group of byBoards.values()) {
    // All of a user's boards in one call: the script moves the member on each.
    const changed = new Set(
      await boards.repair(
        group.map((r) => r.state),
        group[0]!.boards,
      ),
    );
    for (const { state, wrong } of group.filter((r) => changed.has(r.state.userId))) {
      for (const board of wrong) {
        drifts.push({ userId: state.userId, board, redis: seen.scores.get(board)?.get(state.userId) ?? null, postgres: state.score });
      }
    }
  }
  return drifts;
}

/** Region boards PostgreSQL has users for, and those Redis has. */
async function regionBoards(db: Db, boards: RedisBoards): Promise<string[]> {
  const [rows, inRedis] = await Promise.all([
    db.selectFrom("users").select("region").distinct().where("region", "is not", null).execute(),
    boards.boardsNamed("region:"),
  ]);
  return [...new Set([...rows.map((r) => `region:${r.region}`), ...inRedis])].sort();
}

/** Users with a total belong on the global board, and on their region's (`region`). */
function placedBy(db: Db, region: string | undefined): Placement {
  return async (userIds) => {
    const rows = await db
      .selectFrom("scores")
      .innerJoin("users", "users.user_id", "scores.user_id")
      .select(["scores.user_id", "users.region"])
      .where("scores.user_id", "in", userIds)
      .execute();
    return new Map(rows.map((r) => [r.user_id, region === undefined || r.region === region]));
  };
}

/**
 * Runs reconciliation every `intervalMs` on one ranking replica at a time
 * (a Redis lock), as seed 001's daily job.
 */
export function scheduleReconciliation(
  run: () => Promise<ReconcileResult>,
  redis: Redis,
  intervalMs: number,
  log: (result: ReconcileResult | Error) => void,
): () => void {
  const timer = setInterval(async () => {
    const lock = await redis.set("{sb}:reconcile-lock", String(process.pid), "PX", Math.max(intervalMs / 2, 60_000), "NX").catch(() => null);
    if (lock !== "OK") return;
    try {
      log(await run());
    } catch (err) {
      log(err as Error);
    }
  }, intervalMs);
  timer.unref();
  return () => clearInterval(timer);
}
