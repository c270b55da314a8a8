import type { Db } from "@scoreboard/platform/db";
import { memberOf, type RedisBoards, type RepairState, type ScoreState } from "./boards.js";
import { livePeriodBoards } from "./rebuild.js";
import { sweepBoard, type Placement } from "./reconcile-orphans.js";
import type { Drift, ReconcileOptions } from "./reconcile.js";

const BATCH = 2_000;

/**
 * Reconciles every period board still within its retention: each user's
 * total there, then what PostgreSQL does not have. Returns the boards.
 */
export async function reconcilePeriodBoards(db: Db, boards: RedisBoards, options: ReconcileOptions, repaired: Drift[]): Promise<string[]> {
  const live = livePeriodBoards(boards.retention);
  for (const board of live) {
    for (let after = ""; ; ) {
      const totals = await readPeriodTotals(db, board, { after });
      if (totals.length === 0) break;
      await options.afterRead?.("postgres", board);
      repaired.push(...(await reconcileBatch(db, boards, board, totals, options)));
      after = totals[totals.length - 1]!.userId;
    }
    await sweepBoard(boards, board, periodPlacement(db, board), repaired);
  }
  return live;
}

// As a rebuild reads them: a period total carries the user's current
// version, read in the same statement. A period board's stored version is
// the last grant that counted there, so it may be lower than that (not
// drift), but never higher unless an event applied after this read, or
// Redis holds a version PostgreSQL never made.
async function readPeriodTotals(db: Db, board: string, page: { after: string } | { userIds: string[] }): Promise<ScoreState[]> {
  let query = db
    .selectFrom("period_scores")
    .innerJoin("scores", "scores.user_id", "period_scores.user_id")
    .select(["period_scores.user_id", "period_scores.score", "period_scores.reached_at", "scores.version"])
    .where("period_scores.board", "=", board)
    .orderBy("period_scores.user_id");
  if ("after" in page) query = query.where("period_scores.user_id", ">", page.after).limit(BATCH);
  else if (page.userIds.length === 0) return [];
  else query = query.where("period_scores.user_id", "in", page.userIds);
  return (await query.execute()).map((r) => ({
    userId: r.user_id,
    username: "",
    score: Number(r.score),
    version: Number(r.version),
    reachedAtMs: r.reached_at.getTime(),
  }));
}

async function reconcileBatch(db: Db, boards: RedisBoards, board: string, totals: ScoreState[], options: ReconcileOptions): Promise<Drift[]> {
  const userIds = totals.map((t) => t.userId);
  const stored = await boards.storedOf(board, userIds);
  const scores = await boards.scoresOfMembers(
    board,
    stored.map((s) => s?.member),
  );
  await options.afterRead?.("redis", board);
  const seen = new Map(userIds.map((userId, i) => [userId, { stored: stored[i], score: scores[i] ?? null }]));
  const repairs: RepairState[] = [];
  const ahead: string[] = [];
  for (const total of totals) {
    const { stored: entry, score } = seen.get(total.userId)!;
    if (entry && entry.version > total.version) ahead.push(total.userId);
    else if (!entry || entry.member !== memberOf(total.userId, total.reachedAtMs) || score !== total.score) repairs.push(total);
  }
  // Only a read after Redis's tells an event applied since from garbage.
  for (const fresh of await readPeriodTotals(db, board, { userIds: ahead })) {
    const { stored: entry, score } = seen.get(fresh.userId)!;
    if (entry!.version > fresh.version) repairs.push({ ...fresh, replaces: entry!.version });
    else if (entry!.member !== memberOf(fresh.userId, fresh.reachedAtMs) || score !== fresh.score) repairs.push(fresh);
  }
  const changed = new Set(await boards.repairPeriod(board, repairs));
  return repairs.filter((r) => changed.has(r.userId)).map((r) => ({ userId: r.userId, board, redis: seen.get(r.userId)!.score, postgres: r.score }));
}

/** Users with a total on the board belong on it; PostgreSQL places no one elsewhere. */
function periodPlacement(db: Db, board: string): Placement {
  return async (userIds) => {
    const rows = await db
      .selectFrom("period_scores")
      .innerJoin("scores", "scores.user_id", "period_scores.user_id")
      .select("period_scores.user_id")
      .where("period_scores.board", "=", board)
      .where("period_scores.user_id", "in", userIds)
      .execute();
    return new Map(rows.map((r) => [r.user_id, true]));
  };
}
