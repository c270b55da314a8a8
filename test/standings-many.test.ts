// GetStandings' reads of many users at once, on a real Redis and PostgreSQL:
// the same entries (rank, score, name) as one rank read per user, for the
// global, region and period boards, users without an entry left undefined.
import { Redis } from "ioredis";
import { afterAll, beforeAll, expect, inject, it } from "vitest";
import type { Db } from "@scoreboard/platform/db";
import { RedisBoards, type ScoreState } from "../services/ranking/src/boards.js";
import { RedisRanks } from "../services/ranking/src/ranks.js";
import { PostgresStandings } from "../services/ranking/src/standings.js";
import { freshMigratedDb } from "./harness/database.js";

let redis: Redis;
let db: Db;
const USERS = 40;
const region = (i: number) => (i % 3 === 0 ? "eu" : i % 3 === 1 ? "us" : null);
const BOARDS = ["global", "region:eu", "region:us", "daily:2026-12-06"];

beforeAll(async () => {
  // A Redis database of its own: other files flush database 0.
  redis = new Redis(`${inject("infra").redisUrl}/5`);
  await redis.flushdb();
  ({ db } = await freshMigratedDb(inject("infra").databaseUrl));
  const boards = new RedisBoards(redis);
  const at = Date.parse("2026-12-06T10:00:00Z");
  for (let i = 1; i <= USERS; i += 1) {
    // Scores with ties (equal scores rank who reached them first).
    const state: ScoreState = { userId: `u${i}`, username: i % 5 === 0 ? `u${i}` : `Name ${i}`, score: (i % 7) * 10, version: 1, reachedAtMs: at + i };
    const r = region(i);
    await boards.apply(state, r ? ["global", `region:${r}`] : ["global"]);
    if (i % 2 === 0) await boards.applyPeriodMany("daily:2026-12-06", [{ ...state, score: (i % 4) * 5 }]);
    await db.insertInto("users").values({ user_id: state.userId, username: state.username, region: r, api_key_hash: null }).execute();
    await db
      .insertInto("scores")
      .values({ user_id: state.userId, score: state.score, version: 1, updated_at: new Date(state.reachedAtMs) })
      .execute();
    if (i % 2 === 0) {
      await db
        .insertInto("period_scores")
        .values({ board: "daily:2026-12-06", user_id: state.userId, score: (i % 4) * 5, reached_at: new Date(state.reachedAtMs) })
        .execute();
    }
  }
});
afterAll(async () => {
  redis?.disconnect();
  await db?.destroy();
});

const asked = ["u7", "nobody", ...Array.from({ length: USERS }, (_, i) => `u${USERS - i}`)];

it.each(BOARDS)("Redis reads many users on %s as one rank read each would", async (board) => {
  const single = await Promise.all(asked.map((userId) => new RedisBoards(redis).rankOf(board, userId)));
  expect(await new RedisRanks(redis).ranksOf(board, asked)).toEqual(single);
  expect(single.filter(Boolean).length).toBeGreaterThan(5);
});

it.each(BOARDS)("PostgreSQL reads many users on %s as one rank query each would, and as Redis does", async (board) => {
  const standings = new PostgresStandings(db);
  const single = await Promise.all(asked.map((userId) => standings.rankOf(board, userId)));
  expect(await standings.ranksOf(board, asked)).toEqual(single);
  expect(single).toEqual(await new RedisRanks(redis).ranksOf(board, asked));
});
