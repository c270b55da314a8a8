// bench:rebuild's second part: ten defined boards of varied rules, their
// entries in PostgreSQL, rebuilt into an empty Redis by ranking's rebuild
// (rebuildBoards, what ranking runs on a Redis without boards), beside raw
// pipelined ZADD of the same members into an empty Redis.
import { DEFAULT_RETENTION_MS } from "@scoreboard/platform/periods";
import type { Db } from "@scoreboard/platform/db";
import { SeasonSchedule } from "@scoreboard/platform/seasons";
import type { Redis } from "ioredis";
import { sql } from "kysely";
import type { RedisBoards } from "../services/ranking/src/boards.js";
import { entriesKey } from "../services/ranking/src/defined-boards/redis-store.js";
import { rebuildBoards } from "../services/ranking/src/rebuild.js";

interface BenchBoard {
  id: string;
  order: "desc" | "asc";
  operator: "incr" | "decr" | "best" | "set";
  tieRule: "first" | "subscore";
  schedule: string;
  timeZone: string;
  retained: number;
  /** A JSON object each entry carries, or null for none. */
  metadata: string | null;
}

// The rules a racing game, a puzzle game, a live event and the like ask for:
// both orders, every operator, both tie rules, boards that never reset and
// boards on named and cron schedules in other time zones.
const BOARDS: BenchBoard[] = [
  { id: "bench-lap", order: "asc", operator: "best", tieRule: "first", schedule: "weekly", timeZone: "UTC", retained: 4, metadata: '{"car":"rx-7"}' },
  { id: "bench-puzzle", order: "desc", operator: "best", tieRule: "first", schedule: "none", timeZone: "UTC", retained: 0, metadata: null },
  { id: "bench-event", order: "desc", operator: "incr", tieRule: "first", schedule: "0 20 * * 0", timeZone: "Europe/Berlin", retained: 2, metadata: null },
  { id: "bench-golf", order: "asc", operator: "set", tieRule: "subscore", schedule: "daily", timeZone: "UTC", retained: 7, metadata: null },
  {
    id: "bench-speedrun",
    order: "asc",
    operator: "best",
    tieRule: "subscore",
    schedule: "monthly",
    timeZone: "UTC",
    retained: 3,
    metadata: '{"route":"any%"}',
  },
  { id: "bench-kills", order: "desc", operator: "incr", tieRule: "subscore", schedule: "daily", timeZone: "America/New_York", retained: 1, metadata: null },
  { id: "bench-rating", order: "desc", operator: "set", tieRule: "first", schedule: "none", timeZone: "UTC", retained: 0, metadata: null },
  { id: "bench-debt", order: "asc", operator: "decr", tieRule: "first", schedule: "none", timeZone: "UTC", retained: 0, metadata: null },
  {
    id: "bench-level7",
    order: "desc",
    operator: "best",
    tieRule: "subscore",
    schedule: "weekly",
    timeZone: "Asia/Tokyo",
    retained: 0,
    metadata: '{"stars":3}',
  },
  { id: "bench-streak", order: "desc", operator: "set", tieRule: "subscore", schedule: "0 0 1 */3 *", timeZone: "UTC", retained: 1, metadata: null },
];

// Raw ZADD's command size: as many members per command as ranking's load
// puts in one script call (redis-store.ts's APPLY_CHUNK).
const RAW_CHUNK = 1_000;

/**
 * Seeds `total` entries spread evenly across the ten boards, each in its
 * current season at `now`, over users u1.. (users 1..`users` must exist).
 */
async function seedBoards(db: Db, total: number, users: number, now: Date): Promise<void> {
  const perBoard = Math.floor(total / BOARDS.length);
  for (const [i, b] of BOARDS.entries()) {
    // As a migration-created database holds them: rows of board_definitions.
    await sql`INSERT INTO board_definitions (board_id, title, sort_order, operator, reset_schedule, time_zone, tie_rule, retained_seasons, metadata_max_bytes)
      VALUES (${b.id}, ${`Bench ${b.id}`}, ${b.order}, ${b.operator}, ${b.schedule}, ${b.timeZone}, ${b.tieRule}, ${b.retained}, 256)`.execute(db);
    const season = new SeasonSchedule(b.schedule, b.timeZone).seasonAt(now);
    // Each board its own slice of users (wrapping round), scores with many
    // ties (so tie keys decide), reached within the season.
    await sql`INSERT INTO board_entries (board_id, season, user_id, score, subscore, metadata, reached_at, version)
      SELECT ${b.id}, ${season.id}, 'u' || (((g + ${i * perBoard}) % ${users}) + 1), (g::bigint * 7919) % 50021, (g * 31) % 977,
             ${b.metadata}::jsonb, greatest(${season.startsAt}::timestamptz, ${now}::timestamptz - make_interval(secs => (g % 86400) / 10.0)), 1 + g % 5
      FROM generate_series(1, ${perBoard}) g`.execute(db);
  }
}

/** Every board's members with their scores, as Redis holds them after the rebuild. */
async function membersOf(redis: Redis, now: Date): Promise<{ key: string; flat: string[] }[]> {
  return Promise.all(
    BOARDS.map(async (b) => {
      const season = new SeasonSchedule(b.schedule, b.timeZone).seasonAt(now);
      const withScores = await redis.zrange(entriesKey(b.id, season.id), 0, -1, "WITHSCORES");
      // ZADD wants score before member.
      const flat: string[] = [];
      for (let i = 0; i < withScores.length; i += 2) flat.push(withScores[i + 1]!, withScores[i]!);
      return { key: `{sb}:raw:${b.id}`, flat };
    }),
  );
}

/**
 * The baseline: the same (score, member) pairs, already in memory, written
 * as ZADD key score member ... of RAW_CHUNK members per command, every
 * command of all ten boards in one ioredis pipeline (written back to back,
 * one exec): no PostgreSQL read, no version check, no user hash, no marker.
 */
async function rawZadd(redis: Redis, boards: { key: string; flat: string[] }[]): Promise<number> {
  const pipeline = redis.pipeline();
  for (const { key, flat } of boards) {
    for (let i = 0; i < flat.length; i += RAW_CHUNK * 2) pipeline.zadd(key, ...flat.slice(i, i + RAW_CHUNK * 2));
  }
  const started = performance.now();
  const replies = (await pipeline.exec()) ?? [];
  const ms = performance.now() - started;
  const failed = replies.find(([err]) => err);
  if (failed) throw failed[0];
  return ms;
}

/** CPU seconds the Redis server has used (all its threads, not forked children). */
async function redisCpuS(redis: Redis): Promise<number> {
  const info = await redis.info("cpu");
  const field = (name: string) => Number(new RegExp(`^${name}:([\\d.]+)`, "m").exec(info)?.[1] ?? 0);
  return field("used_cpu_user") + field("used_cpu_sys");
}

const perSecond = (n: number, ms: number) => Math.round(n / (ms / 1000)).toLocaleString("en-US");

/**
 * Seeds the ten boards with `total` entries, drops the global board's
 * totals (so the rebuild below loads the defined boards alone), and times
 * rebuildBoards into an empty Redis, then raw ZADD of the same members.
 */
export async function benchDefinedBoards(db: Db, boards: RedisBoards, redis: Redis, total: number, users: number): Promise<void> {
  const now = new Date();
  const t = Date.now();
  await seedBoards(db, total, users, now);
  await sql`ANALYZE board_entries`.execute(db);
  console.log(`seeded ${total} entries across ${BOARDS.length} defined boards in PostgreSQL in ${Date.now() - t} ms`);

  // Ranking's whole rebuild, with nothing in the global or period boards:
  // its time is the defined boards' (every readable season of each).
  await sql`TRUNCATE scores`.execute(db);
  await redis.flushdb();
  let cpu = await redisCpuS(redis);
  const rebuilt = await rebuildBoards(db, boards, redis, DEFAULT_RETENTION_MS, now);
  const rebuildCpuS = (await redisCpuS(redis)) - cpu;
  const members = await membersOf(redis, now);
  const loaded = members.reduce((n, b) => n + b.flat.length / 2, 0);
  if (rebuilt.definedEntries !== total || loaded !== total)
    throw new Error(`rebuild loaded ${rebuilt.definedEntries} entries (${loaded} in Redis), not ${total}`);

  await redis.flushdb();
  cpu = await redisCpuS(redis);
  const rawMs = await rawZadd(redis, members);
  const rawCpuS = (await redisCpuS(redis)) - cpu;
  await redis.flushdb();

  console.log(`rebuildBoards, ten defined boards        ${total} entries in ${rebuilt.ms} ms (${perSecond(total, rebuilt.ms)} entries/s)`);
  console.log(`raw pipelined ZADD, same members         ${total} members in ${Math.round(rawMs)} ms (${perSecond(total, rawMs)} members/s)`);
  console.log(`  (baseline: ZADD of ${RAW_CHUNK} score/member pairs per command, all commands in one ioredis pipeline, pairs prebuilt in memory)`);
  console.log(`Redis server CPU                         rebuild ${rebuildCpuS.toFixed(1)} s, raw ZADD ${rawCpuS.toFixed(1)} s`);
  console.log(`ratio rebuild time / raw ZADD time       ${(rebuilt.ms / rawMs).toFixed(2)}× (throughput ours ÷ raw ${(rawMs / rebuilt.ms).toFixed(2)})`);
}
