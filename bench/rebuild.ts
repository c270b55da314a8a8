// npm run bench:rebuild — rebuilds the global board of BENCH_USERS users
// (default 1,000,000) from PostgreSQL into an empty Redis, and reads GetRank
// p50/p99 on the result, beside a bare Redis ZREVRANK in the same run.
import { randomInt } from "node:crypto";
import { sql } from "kysely";
import { Redis } from "ioredis";
import { RedisBoards } from "../services/ranking/src/boards.js";
import { rebuildBoards } from "../services/ranking/src/rebuild.js";
import { freshMigratedDb } from "../test/harness/database.js";
import { startPostgres, startRedis, stopAll } from "../test/harness/infra.js";

const users = Number(process.env.BENCH_USERS ?? 1_000_000);
const pg = await startPostgres();
const redisServer = await startRedis();
const { db } = await freshMigratedDb(pg.url);
const redis = new Redis(redisServer.url);

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

try {
  let t = Date.now();
  await sql`INSERT INTO users (user_id, username) SELECT 'u' || g, 'User ' || g FROM generate_series(1, ${users}) g`.execute(db);
  await sql`INSERT INTO scores (user_id, score, version) SELECT 'u' || g, (g::bigint * 7919) % 100003, 1 FROM generate_series(1, ${users}) g`.execute(db);
  console.log(`seeded ${users} users in PostgreSQL in ${Date.now() - t} ms`);

  const boards = new RedisBoards(redis);
  const rebuilt = await rebuildBoards(db, boards, redis);
  console.log(`rebuilt ${rebuilt.users} users into Redis in ${rebuilt.ms} ms (${Math.round(rebuilt.users / (rebuilt.ms / 1000))} users/s)`);

  const ours: number[] = [];
  const bare: number[] = [];
  for (let i = 0; i < 2_000; i++) {
    const userId = `u${randomInt(1, users + 1)}`;
    t = performance.now();
    await boards.rankOf("global", userId);
    ours.push(performance.now() - t);
    t = performance.now();
    await redis.zrevrank("{sb}:board:global", userId);
    bare.push(performance.now() - t);
  }
  console.log(`rank lookup (zrevrank+zscore+hget)  p50 ${percentile(ours, 50).toFixed(3)} ms  p99 ${percentile(ours, 99).toFixed(3)} ms`);
  console.log(`bare ZREVRANK                      p50 ${percentile(bare, 50).toFixed(3)} ms  p99 ${percentile(bare, 99).toFixed(3)} ms`);
  console.log(`ratio ours / bare (p50)             ${(percentile(ours, 50) / percentile(bare, 50)).toFixed(2)}`);
} finally {
  redis.disconnect();
  await db.destroy();
  await stopAll();
}
