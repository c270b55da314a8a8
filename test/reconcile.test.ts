// Reconciliation on a real PostgreSQL and Redis: it repairs the global, region
// and live period boards, removes what PostgreSQL does not have, overwrites a
// version PostgreSQL never made, and never rolls back a newer version that an
// event stored after its read.
import { afterAll, beforeAll, beforeEach, expect, inject, it } from "vitest";
import { Redis } from "ioredis";
import { sql } from "kysely";
import type { Db } from "@scoreboard/platform/db";
import { periodAt } from "@scoreboard/platform/periods";
import { RedisBoards, USERS, boardKey, memberOf, type ScoreState } from "../services/ranking/src/boards.js";
import { rebuildBoards } from "../services/ranking/src/rebuild.js";
import { reconcile, type Drift, type ReconcileOptions } from "../services/ranking/src/reconcile.js";
import { freshMigratedDb } from "./harness/database.js";
import { startRedis, type RedisInstance } from "./harness/infra.js";

let redisServer: RedisInstance;
let redis: Redis;
let boards: RedisBoards;
let db: Db;
const DAY = 86_400_000;
const today = () => periodAt("daily", Date.now()).board;

beforeAll(async () => {
  // Its own Redis: every test starts from an empty one.
  redisServer = await startRedis();
  redis = new Redis(redisServer.url);
  boards = new RedisBoards(redis);
  ({ db } = await freshMigratedDb(inject("infra").databaseUrl));
});
afterAll(async () => {
  redis?.disconnect();
  await db?.destroy();
  await redisServer?.stop();
});
beforeEach(async () => {
  await redis.flushall();
  await sql`TRUNCATE users, scores, ledger, period_scores, outbox, audit_log CASCADE`.execute(db);
});

/** Grants `delta` points in PostgreSQL as score does; returns the ledger row's id. */
async function grant(userId: string, delta: number, region: string | null = null): Promise<number> {
  const grants = [{ userId, username: userId, requireRegistration: false, actionId: null, delta, source: "test", region }];
  const { rows } = await sql<{ outcome: string; ledger_id: string }>`
    SELECT * FROM sb_grant_batch(${JSON.stringify(grants)}::jsonb, 'scoreboard.score.changed')`.execute(db);
  expect(rows[0]?.outcome).toBe("granted");
  return Number(rows[0]!.ledger_id);
}

/** Applies a grant's event to Redis as the consumer does. */
async function deliver(ledgerId: number): Promise<void> {
  const row = await db
    .selectFrom("ledger")
    .innerJoin("users", "users.user_id", "ledger.user_id")
    .select(["ledger.user_id", "users.username", "users.region", "ledger.new_score", "ledger.version", "ledger.created_at", "ledger.period_scores"])
    .where("ledger.id", "=", ledgerId)
    .executeTakeFirstOrThrow();
  const state: ScoreState = {
    userId: row.user_id,
    username: row.username,
    score: Number(row.new_score),
    version: Number(row.version),
    reachedAtMs: row.created_at.getTime(),
  };
  await boards.apply(state, row.region ? ["global", `region:${row.region}`] : ["global"]);
  await boards.applyPeriods(
    state,
    Object.entries(row.period_scores ?? {}).map(([board, score]) => ({ board, score: Number(score) })),
  );
}

/** A user's member as PostgreSQL implies it: on the all-time boards, or on a period board. */
async function member(userId: string, periodBoard?: string): Promise<string> {
  const at = periodBoard
    ? (await db.selectFrom("period_scores").select("reached_at as at").where("board", "=", periodBoard).where("user_id", "=", userId).executeTakeFirstOrThrow())
        .at
    : (await db.selectFrom("scores").select("updated_at as at").where("user_id", "=", userId).executeTakeFirstOrThrow()).at;
  return memberOf(userId, at.getTime());
}
/** A board as [member, score] pairs, lowest first. */
async function entries(board: string): Promise<[string, number][]> {
  const flat = await redis.zrange(boardKey(board), 0, -1, "WITHSCORES");
  const pairs: [string, number][] = [];
  for (let i = 0; i < flat.length; i += 2) pairs.push([flat[i]!, Number(flat[i + 1])]);
  return pairs;
}
const sorted = (drifts: Drift[]) =>
  [...drifts].sort((a, b) => a.board.localeCompare(b.board) || a.userId.localeCompare(b.userId) || (a.redis ?? -1) - (b.redis ?? -1));
/** Runs `land` once, when reconciliation has just read `store` for `board`. */
const onceAfter = (store: "postgres" | "redis", board: string, land: () => Promise<void>): ReconcileOptions => {
  let done = false;
  return {
    afterRead: async (read, on) => {
      if (done || read !== store || on !== board) return;
      done = true;
      await land();
    },
  };
};

it("repairs region boards and removes what PostgreSQL does not place there", async () => {
  await grant("alice", 10, "eu");
  await grant("bob", 20, "eu");
  await grant("carol", 30, "us");
  await rebuildBoards(db, boards, redis);
  const [alice, bob, carol] = [await member("alice"), await member("bob"), await member("carol")];
  await redis.zadd(boardKey("region:eu"), 999, alice); // wrong score
  await redis.zrem(boardKey("region:eu"), bob); // missing
  await redis.zadd(boardKey("region:eu"), 3, "0000000000001|alice"); // a stale second member of alice
  await redis.zadd(boardKey("region:eu"), 30, carol); // left behind: carol is in us
  await redis.zadd(boardKey("region:eu"), 5, "0000000000002|ghost"); // unknown to PostgreSQL
  await redis.zadd(boardKey("region:apac"), 7, alice); // a board only Redis has

  const result = await reconcile(db, boards);

  expect(sorted(result.repaired)).toEqual([
    { userId: "alice", board: "region:apac", redis: 7, postgres: null },
    { userId: "alice", board: "region:eu", redis: 3, postgres: null },
    { userId: "alice", board: "region:eu", redis: 999, postgres: 10 },
    { userId: "bob", board: "region:eu", redis: null, postgres: 20 },
    { userId: "carol", board: "region:eu", redis: 30, postgres: null },
    { userId: "ghost", board: "region:eu", redis: 5, postgres: null },
  ]);
  expect(result.checked).toBe(3);
  expect(result.boards).toEqual(expect.arrayContaining(["global", "region:apac", "region:eu", "region:us", today()]));
  expect(await entries("region:eu")).toEqual([
    [alice, 10],
    [bob, 20],
  ]);
  expect(await entries("region:us")).toEqual([[carol, 30]]);
  expect(await entries("region:apac")).toEqual([]);
  expect(await entries("global")).toEqual([
    [alice, 10],
    [bob, 20],
    [carol, 30],
  ]);
  expect((await reconcile(db, boards)).repaired).toEqual([]);
});

it("repairs the current daily board and removes entries PostgreSQL does not have on live period boards", async () => {
  await grant("alice", 10);
  await grant("bob", 20);
  await rebuildBoards(db, boards, redis);
  const daily = today();
  const yesterday = periodAt("daily", Date.now() - DAY).board;
  const [alice, bob] = [await member("alice", daily), await member("bob", daily)];
  await redis.zadd(boardKey(daily), 999, alice);
  await redis.zrem(boardKey(daily), bob);
  await boards.applyPeriodMany(daily, [{ userId: "ghost", username: "", score: 5, version: 1, reachedAtMs: Date.now() }]);
  // alice exists, but PostgreSQL has no total of hers yesterday.
  await boards.applyPeriodMany(yesterday, [{ userId: "alice", username: "", score: 4, version: 1, reachedAtMs: Date.now() - DAY }]);

  const result = await reconcile(db, boards);

  expect(sorted(result.repaired)).toEqual(
    sorted([
      { userId: "alice", board: daily, redis: 999, postgres: 10 },
      { userId: "bob", board: daily, redis: null, postgres: 20 },
      { userId: "ghost", board: daily, redis: 5, postgres: null },
      { userId: "alice", board: yesterday, redis: 4, postgres: null },
    ]),
  );
  expect(result.boards).toEqual(expect.arrayContaining([daily, yesterday, periodAt("weekly", Date.now()).board, periodAt("monthly", Date.now()).board]));
  expect(await entries(daily)).toEqual([
    [alice, 10],
    [bob, 20],
  ]);
  expect(await entries(yesterday)).toEqual([]);
  // Their fields on those boards went with the members, so no later event is taken for stale.
  expect(await redis.hexists(`{sb}:pusers:${daily}`, "ghost")).toBe(0);
  expect(await redis.hexists(`{sb}:pusers:${yesterday}`, "alice")).toBe(0);
  expect(await boards.rankOf(daily, "bob")).toEqual({ rank: 1, userId: "bob", username: "bob", score: 20 });
});

it("does not roll back a grant whose event reached Redis after the PostgreSQL read", async () => {
  await grant("alice", 10, "eu");
  await rebuildBoards(db, boards, redis);
  // Between reading PostgreSQL and reading Redis, a grant lands in both.
  const result = await reconcile(
    db,
    boards,
    onceAfter("postgres", "global", async () => deliver(await grant("alice", 20, "eu"))),
  );
  expect(result.repaired).toEqual([]);
  const alice = await member("alice");
  expect(await entries("global")).toEqual([[alice, 30]]);
  expect(await entries("region:eu")).toEqual([[alice, 30]]);
  expect(await entries(today())).toEqual([[await member("alice", today()), 30]]);
});

it("does not roll back a grant whose event reached Redis between its read and the repair", async () => {
  await grant("alice", 10, "eu");
  await rebuildBoards(db, boards, redis);
  const daily = today();
  await redis.zadd(boardKey("global"), 999, await member("alice"));
  // The global pass sees 999 and repairs from version 1, but version 2 lands first.
  const first = await reconcile(
    db,
    boards,
    onceAfter("redis", "global", async () => deliver(await grant("alice", 20, "eu"))),
  );
  expect(first.repaired).toEqual([]);
  expect(await entries("global")).toEqual([[await member("alice"), 30]]);
  expect(await entries("region:eu")).toEqual([[await member("alice"), 30]]);

  // The same on a period board.
  await redis.zadd(boardKey(daily), 999, await member("alice", daily));
  const second = await reconcile(
    db,
    boards,
    onceAfter("redis", daily, async () => deliver(await grant("alice", 5, "eu"))),
  );
  expect(second.repaired).toEqual([]);
  expect(await entries(daily)).toEqual([[await member("alice", daily), 35]]);
  expect(await entries("global")).toEqual([[await member("alice"), 35]]);
});

it("overwrites a version PostgreSQL never made, so the user's next event applies", async () => {
  await grant("alice", 10, "eu");
  await rebuildBoards(db, boards, redis);
  const daily = today();
  const garbage = { userId: "alice", username: "alice", score: 500, version: 7, reachedAtMs: Date.now() };
  await boards.apply(garbage, ["global", "region:eu"]);
  await boards.applyPeriodMany(daily, [garbage]);

  const result = await reconcile(db, boards);

  expect(sorted(result.repaired)).toEqual(
    sorted([
      { userId: "alice", board: "global", redis: 500, postgres: 10 },
      { userId: "alice", board: "region:eu", redis: 500, postgres: 10 },
      { userId: "alice", board: daily, redis: 500, postgres: 10 },
    ]),
  );
  expect(await redis.hget(USERS, "alice")).toBe(`1|${(await member("alice")).split("|")[0]}|alice`);
  expect(await entries("global")).toEqual([[await member("alice"), 10]]);
  expect(await entries("region:eu")).toEqual([[await member("alice"), 10]]);
  expect(await entries(daily)).toEqual([[await member("alice", daily), 10]]);
  await deliver(await grant("alice", 5, "eu")); // version 2: stale against the garbage, applies now
  expect(await entries("global")).toEqual([[await member("alice"), 15]]);
  expect(await entries(daily)).toEqual([[await member("alice", daily), 15]]);
});

it("repairs an equal version, never an older one, and overwrites only the version it names", async () => {
  const at = 1_700_000_000_000;
  await boards.apply({ userId: "dan", username: "dan", score: 40, version: 4, reachedAtMs: at }, ["global"]);
  await redis.zadd(boardKey("global"), 1, memberOf("dan", at));
  expect(await boards.repair([{ userId: "dan", username: "dan", score: 30, version: 3, reachedAtMs: at - 1 }], ["global"])).toEqual([]);
  expect(await boards.repair([{ userId: "dan", username: "dan", score: 30, version: 3, reachedAtMs: at - 1, replaces: 5 }], ["global"])).toEqual([]);
  expect(await entries("global")).toEqual([[memberOf("dan", at), 1]]);
  expect(await boards.repair([{ userId: "dan", username: "dan", score: 40, version: 4, reachedAtMs: at }], ["global"])).toEqual(["dan"]);
  expect(await entries("global")).toEqual([[memberOf("dan", at), 40]]);
  expect(await boards.repair([{ userId: "dan", username: "dan", score: 30, version: 3, reachedAtMs: at - 1, replaces: 4 }], ["global"])).toEqual(["dan"]);
  expect(await entries("global")).toEqual([[memberOf("dan", at - 1), 30]]);
  expect(await redis.hget(USERS, "dan")).toBe(`3|${memberOf("dan", at - 1).split("|")[0]}|dan`);
});
