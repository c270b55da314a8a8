import type { Redis } from "ioredis";
import { DEFAULT_BOARD } from "@scoreboard/platform/board-params";
import type { Db } from "@scoreboard/platform/db";
import type { RedisBoards } from "./boards.js";

export interface Drift {
  userId: string;
  redis: number | null;
  postgres: number | null;
}

export interface ReconcileResult {
  checked: number;
  repaired: Drift[];
}

const BATCH = 2_000;

/**
 * Compares every user's total in PostgreSQL with the global board in Redis
 * (seed 001's reconciliation job) and makes Redis say what PostgreSQL says:
 * missing or wrong scores are set, members PostgreSQL does not know are
 * removed. Returns what it repaired.
 */
export async function reconcile(db: Db, boards: RedisBoards): Promise<ReconcileResult> {
  const repaired: Drift[] = [];
  let checked = 0;
  let after = "";
  for (;;) {
    const rows = await db
      .selectFrom("scores")
      .innerJoin("users", "users.user_id", "scores.user_id")
      .select(["scores.user_id", "users.username", "scores.score", "scores.version", "scores.updated_at"])
      .where("scores.user_id", ">", after)
      .orderBy("scores.user_id")
      .limit(BATCH)
      .execute();
    if (rows.length === 0) break;
    const inRedis = await boards.scoresOf(DEFAULT_BOARD, rows.map((r) => r.user_id));
    const wrong = rows.filter((r, i) => inRedis[i] !== Number(r.score));
    if (wrong.length > 0) {
      await boards.overwrite(
        wrong.map((r) => ({
        userId: r.user_id,
        username: r.username,
        score: Number(r.score),
        version: Number(r.version),
        reachedAtMs: r.updated_at.getTime(),
      })),
        [DEFAULT_BOARD],
      );
      for (const r of wrong) repaired.push({ userId: r.user_id, redis: inRedis[rows.indexOf(r)] ?? null, postgres: Number(r.score) });
    }
    checked += rows.length;
    after = rows[rows.length - 1]!.user_id;
  }
  for await (const members of boards.members(DEFAULT_BOARD)) {
    const known = new Set(
      (await db.selectFrom("scores").select("user_id").where("user_id", "in", members).execute()).map((r) => r.user_id),
    );
    const unknown = members.filter((m) => !known.has(m));
    if (unknown.length === 0) continue;
    const scores = await boards.scoresOf(DEFAULT_BOARD, unknown);
    await boards.remove(DEFAULT_BOARD, unknown);
    unknown.forEach((userId, i) => repaired.push({ userId, redis: scores[i] ?? null, postgres: null }));
  }
  return { checked, repaired };
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
