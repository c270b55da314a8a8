// Compares PostgreSQL with Redis (every user's total on the global and their
// region's board, every live period board), repairs drift and prints what it
// repaired: npm run reconcile [-- --rebuild]
import { existsSync } from "node:fs";
import { EnvReader } from "@scoreboard/platform/config";
import { createDb } from "@scoreboard/platform/db";
import { createLogger } from "@scoreboard/platform/logger";
import { createRedis } from "@scoreboard/platform/redis";
import { RedisBoards } from "../services/ranking/src/boards.js";
import { readPeriodRetention } from "../services/ranking/src/config.js";
import { rebuildBoards } from "../services/ranking/src/rebuild.js";
import { reconcile } from "../services/ranking/src/reconcile.js";

if (existsSync(".env.local")) process.loadEnvFile(".env.local");

const env = new EnvReader();
const databaseUrl = env.url("DATABASE_URL", undefined, ["postgres:", "postgresql:"]);
const redisUrl = env.url("REDIS_URL", "redis://127.0.0.1:6379", ["redis:", "rediss:"]);
// Ranking's retention, so both see the same boards as live.
const retention = readPeriodRetention(env);
env.done();
const db = createDb(databaseUrl, 2);
const redis = createRedis(redisUrl, createLogger("reconcile", "warn"));
const boards = new RedisBoards(redis, retention);

try {
  if (process.argv.includes("--rebuild")) {
    const rebuilt = await rebuildBoards(db, boards, redis, retention);
    console.log(`rebuilt ${rebuilt.users} users from PostgreSQL in ${rebuilt.ms} ms`);
  }
  const result = await reconcile(db, boards);
  for (const drift of result.repaired) {
    console.log(`repaired ${drift.userId} on ${drift.board}: redis ${drift.redis ?? "missing"} -> postgres ${drift.postgres ?? "removed"}`);
  }
  console.log(`checked ${result.checked} users on ${result.boards.length} boards, repaired ${result.repaired.length}`);
} catch (err) {
  console.error(err instanceof Error ? err.message : err);
  process.exitCode = 1;
} finally {
  redis.disconnect();
  await db.destroy();
}
