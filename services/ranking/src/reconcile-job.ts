// Ranking's reconciliation as a one-shot job: compares PostgreSQL with Redis
// (every user's total on the global and their region's board, every live
// period board), repairs drift and prints what it repaired. Run by
// `npm run reconcile [-- --rebuild]` and by the chart's CronJob (bundled as
// reconcile.mjs in ranking's image). With NATS_URL set (the CronJob sets it),
// the repaired boards are announced to push as ranking announces its own
// changes, so open streams show the repair at once. PostgreSQL or Redis still
// starting or restarting is waited for, up to DATASTORE_WAIT_S (60 s) each;
// past that the job exits 1 naming the store, and the next run repairs.
import { existsSync } from "node:fs";
import { EnvReader } from "@scoreboard/platform/config";
import { createDb } from "@scoreboard/platform/db";
import { isTransientStoreError } from "@scoreboard/platform/errors";
import { postgresCheck } from "@scoreboard/platform/probes";
import { readJobWaitMs, waitForDatastore } from "@scoreboard/platform/startup";
import { createLogger } from "@scoreboard/platform/logger";
import { connectNats } from "@scoreboard/platform/nats";
import { createRedis } from "@scoreboard/platform/redis";
import { BoardChangeAnnouncer } from "./announcer.js";
import { RedisBoards } from "./boards.js";
import { readPeriodRetention } from "@scoreboard/platform/periods";
import { rebuildBoards } from "./rebuild.js";
import { reconcile } from "./reconcile.js";

if (existsSync(".env.local")) process.loadEnvFile(".env.local");

const env = new EnvReader();
const databaseUrl = env.url("DATABASE_URL", undefined, ["postgres:", "postgresql:"]);
const redisUrl = env.url("REDIS_URL", "redis://127.0.0.1:6379", ["redis:", "rediss:"]);
// The service's retention, so the job sees the same boards as live.
const retention = readPeriodRetention(env);
const natsUrl = env.url("NATS_URL", "", ["nats:", "tls:"]);
const maxWaitMs = readJobWaitMs(env);
env.done();
const logger = createLogger("reconcile", "warn");
const db = createDb(databaseUrl, 2);
const redis = createRedis(redisUrl, logger);
const boards = new RedisBoards(redis, retention);

/**
 * Tells push the repaired boards changed. Best effort: the repairs are made
 * either way, and push re-reads its boards every few seconds by itself.
 */
async function announce(repairedBoards: string[]): Promise<string> {
  const later = "open streams show the repairs at push's next refresh";
  if (!natsUrl) return `NATS_URL is not set: ${later}`;
  let nats: Awaited<ReturnType<typeof connectNats>> | undefined;
  try {
    nats = await connectNats(natsUrl, "reconcile", logger, { oneShot: true });
    const announcer = new BoardChangeAnnouncer(nats, boards, logger);
    announcer.repaired(repairedBoards);
    await announcer.stop(); // publishes what is pending
    await nats.flush();
    return `announced ${repairedBoards.length} repaired board(s) to push`;
  } catch (err) {
    return `could not announce the repairs (${err instanceof Error ? err.message : err}): ${later}`;
  } finally {
    await nats?.close();
  }
}

try {
  await waitForDatastore("PostgreSQL", postgresCheck(db), logger, { maxWaitMs, retryable: isTransientStoreError });
  await waitForDatastore("Redis", () => redis.ping(), logger, { maxWaitMs });
  if (process.argv.includes("--rebuild")) {
    const rebuilt = await rebuildBoards(db, boards, redis, retention);
    console.log(`rebuilt ${rebuilt.users} users from PostgreSQL in ${rebuilt.ms} ms`);
  }
  const result = await reconcile(db, boards);
  for (const drift of result.repaired) {
    console.log(`repaired ${drift.userId} on ${drift.board}: redis ${drift.redis ?? "missing"} -> postgres ${drift.postgres ?? "removed"}`);
  }
  console.log(`checked ${result.checked} users on ${result.boards.length} boards, repaired ${result.repaired.length}`);
  const repairedBoards = [...new Set(result.repaired.map((drift) => drift.board))];
  if (repairedBoards.length > 0) console.log(await announce(repairedBoards));

} catch (err) {
  console.error(err instanceof Error ? err.message : err);
  process.exitCode = 1;
} finally {
  redis.disconnect();
  await db.destroy();
}
