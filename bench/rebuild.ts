// npm run bench:rebuild — rebuilds the global board of BENCH_USERS users
// (default 1,000,000) from PostgreSQL into an empty Redis, and reads GetRank
// p50/p99 on the result — at the Redis adapter and over gRPC (RankingService
// on a loopback grpc-js port, called with the grpc-js client the gateway
// uses) — beside a bare Redis ZREVRANK in the same run. Then rebuilds
// BENCH_BOARD_ENTRIES entries (default 1,000,000) across ten defined boards
// beside raw pipelined ZADD of the same members (rebuild-defined.ts).
import { randomInt } from "node:crypto";
import { createClient } from "@connectrpc/connect";
import { RankingService } from "@scoreboard/gen/scoreboard/v1/ranking_pb";
import { createServiceTransport } from "@scoreboard/platform/clients";
import { startGrpcServer, serve, type GrpcServer } from "@scoreboard/platform/grpc-server";
import { createRankingService } from "../services/ranking/src/service.js";
import { sql } from "kysely";
import { Redis } from "ioredis";
import { RedisBoards, USERS } from "../services/ranking/src/boards.js";
import { rebuildBoards } from "../services/ranking/src/rebuild.js";
import { benchDefinedBoards } from "./rebuild-defined.js";
import { freshMigratedDb } from "../test/harness/database.js";
import { startPostgres, startRedis, stopAll } from "../test/harness/infra.js";

const users = Number(process.env.BENCH_USERS ?? 1_000_000);
const boardEntries = Number(process.env.BENCH_BOARD_ENTRIES ?? 1_000_000);
const WARMUP_CALLS = 2_000;
const TIMED_CALLS = 5_000;
const pg = await startPostgres();
const redisServer = await startRedis();
const { db } = await freshMigratedDb(pg.url);
const redis = new Redis(redisServer.url);
let server: GrpcServer | undefined;

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

  // The same service ranking serves, on a loopback HTTP/2 port, called as
  // other services call it (gRPC).
  server = await startGrpcServer({
    host: "127.0.0.1",
    port: 0,
    services: [serve(RankingService, createRankingService(boards))],
    interceptors: [],
    shutdownSignal: new AbortController().signal,
    maxRequestBytes: 64 * 1024,
    maxConnectionAgeMs: 300_000,
    keepaliveTimeMs: 10_000,
  });
  const channel = createServiceTransport(`http://127.0.0.1:${server.port}`, [RankingService]);
  const client = createClient(RankingService, channel.transport);
  // Connect, and let the JIT compile both paths before timing: a running
  // ranking answers with warm code, not with its first calls'.
  for (let i = 0; i < WARMUP_CALLS; i++) {
    const userId = `u${randomInt(1, users + 1)}`;
    await client.getRank({ board: "global", userId });
    await boards.rankOf("global", userId);
  }

  const ours: number[] = [];
  const rpc: number[] = [];
  const bare: number[] = [];
  for (let i = 0; i < TIMED_CALLS; i++) {
    const userId = `u${randomInt(1, users + 1)}`;
    t = performance.now();
    await boards.rankOf("global", userId);
    ours.push(performance.now() - t);
    t = performance.now();
    await client.getRank({ board: "global", userId });
    rpc.push(performance.now() - t);
    // The bare call gets the member for free (read untimed): what Redis alone costs.
    const member = `${(await redis.hget(USERS, userId))!.split("|")[1]}|${userId}`;
    t = performance.now();
    await redis.zrevrank("{sb}:board:global", member);
    bare.push(performance.now() - t);
  }
  channel.close();
  const line = (label: string, v: number[]) =>
    console.log(`${label.padEnd(36)} p50 ${percentile(v, 50).toFixed(3)} ms  p99 ${percentile(v, 99).toFixed(3)} ms`);
  line("GetRank over gRPC (1M-user board)", rpc);
  line("rank lookup at the Redis adapter", ours);
  line("bare ZREVRANK", bare);
  console.log(`ratio GetRank RPC / bare (p50)       ${(percentile(rpc, 50) / percentile(bare, 50)).toFixed(2)}`);

  await benchDefinedBoards(db, boards, redis, boardEntries, users);
} finally {
  await server?.close(1_000);
  redis.disconnect();
  await db.destroy();
  await stopAll();
}
