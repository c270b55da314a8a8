// Ranking's reconciliation as a one-shot job: compares PostgreSQL with Redis
// (every user's total on the global and their region's board, every live
// period board), repairs drift and reports what it repaired. `scoreboard
// reconcile [--rebuild]` runs it, by hand and as the chart's CronJob (`node
// scoreboard.mjs reconcile` in ranking's image). With NATS_URL set (the
// CronJob sets it), the repaired boards are announced to push as ranking
// announces its own changes, so open streams show the repair at once.
// PostgreSQL or Redis still starting or restarting is waited for, up to
// DATASTORE_WAIT_S (60 s) each; past that it throws DatastoreUnavailable
// naming the store, and the next run repairs.
import { readNatsUrl, type EnvReader } from "@scoreboard/platform/config";
import { createDb } from "@scoreboard/platform/db";
import { isTransientStoreError } from "@scoreboard/platform/errors";
import type { Logger } from "@scoreboard/platform/logger";
import { connectNats } from "@scoreboard/platform/nats";
import { readPeriodRetention } from "@scoreboard/platform/periods";
import { postgresCheck } from "@scoreboard/platform/probes";
import { createRedis } from "@scoreboard/platform/redis";
import { readJobWaitMs, waitForDatastore } from "@scoreboard/platform/startup";
import { BoardChangeAnnouncer } from "./announcer.js";
import { RedisBoards } from "./boards.js";
import { BoardEpochs, NO_DEFINED_BOARDS } from "./epochs.js";
import { BoardMoveAnnouncer } from "./move-announcer.js";
import { rebuildBoards, rebuiltSeedBoards, type RebuildResult } from "./rebuild.js";
import { reconcile, type ReconcileResult } from "./reconcile.js";

export interface ReconcileJobReport extends ReconcileResult {
  /** With `rebuild`: what was loaded from PostgreSQL before comparing. */
  rebuilt?: RebuildResult;
  /** Whether push heard about the repaired boards, in a sentence; absent when nothing was repaired. */
  announcement?: string;
}

/** Reconciles DATABASE_URL's totals into REDIS_URL's boards, first reloading them all with `rebuild`. */
export async function runReconcileJob(env: EnvReader, logger: Logger, options: { rebuild: boolean }): Promise<ReconcileJobReport> {
  const databaseUrl = env.url("DATABASE_URL", undefined, ["postgres:", "postgresql:"]);
  const redisUrl = env.url("REDIS_URL", "redis://127.0.0.1:6379", ["redis:", "rediss:"]);
  // The service's retention, so the job sees the same boards as live.
  const retention = readPeriodRetention(env);
  const natsUrl = readNatsUrl(env, "");
  const maxWaitMs = readJobWaitMs(env);
  env.done();
  const db = createDb(databaseUrl, 2, logger);
  const redis = createRedis(redisUrl, logger);
  const boards = new RedisBoards(redis, retention);
  try {
    await waitForDatastore("PostgreSQL", postgresCheck(db), logger, { maxWaitMs, retryable: isTransientStoreError });
    await waitForDatastore("Redis", () => redis.ping(), logger, { maxWaitMs });
    const rebuilt = options.rebuild ? await rebuildBoards(db, boards, redis, retention) : undefined;
    const result = await reconcile(db, boards);
    const repairedBoards = [...new Set(result.repaired.map((drift) => drift.board))];
    // In the boards' epoch (push and the gateway drop a state of an older one).
    const epochs = new BoardEpochs(redis, NO_DEFINED_BOARDS);
    // A rebuild is a new generation: every board's epoch changed (defined
    // boards' streams see it at their next change or push's refresh).
    const changed = rebuilt ? { boards: await rebuiltSeedBoards(boards, retention), why: "rebuilt" } : { boards: repairedBoards, why: "repaired" };
    const announcement = changed.boards.length > 0 ? await announce(natsUrl, boards, epochs, changed, logger) : undefined;
    return { ...result, rebuilt, announcement };
  } finally {
    redis.disconnect();
    await db.destroy();
  }
}

/**
 * Tells push the repaired (or rebuilt) boards changed (BoardChanged with their top, and
 * BoardMoved: any standing may have moved). Best effort: the repairs are made
 * either way, and push re-reads its boards every few seconds by itself.
 */
async function announce(
  natsUrl: string,
  boards: RedisBoards,
  epochs: BoardEpochs,
  changed: { boards: string[]; why: string },
  logger: Logger,
): Promise<string> {
  const later = "open streams show the repairs at push's next refresh";
  if (!natsUrl) return `NATS_URL is not set: ${later}`;
  let nats: Awaited<ReturnType<typeof connectNats>> | undefined;
  try {
    nats = await connectNats(natsUrl, "reconcile", logger, { oneShot: true });
    const announcer = new BoardChangeAnnouncer(nats, boards, logger, undefined, epochs);
    const moves = new BoardMoveAnnouncer(nats, {}, epochs, logger); // seed boards only: no season to check
    announcer.repaired(changed.boards);
    moves.everything(changed.boards);
    await Promise.all([announcer.stop(), moves.stop()]); // publish what is pending
    await nats.flush();
    return `announced ${changed.boards.length} ${changed.why} board(s) to push`;
  } catch (err) {
    return `could not announce the repairs (${err instanceof Error ? err.message : err}): ${later}`;
  } finally {
    await nats?.close();
  }
}
