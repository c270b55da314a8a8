// The ranking read model on a real Redis: the version check makes applying an
// event idempotent and order-proof.
import { afterAll, beforeAll, beforeEach, expect, inject, it } from "vitest";
import { Redis } from "ioredis";
import { RedisBoards } from "../services/ranking/src/boards.js";

let redis: Redis;
let boards: RedisBoards;

beforeAll(() => {
  redis = new Redis(inject("infra").redisUrl);
  boards = new RedisBoards(redis);
});
beforeEach(async () => {
  await redis.flushall();
});
afterAll(() => {
  redis.disconnect();
});

const state = (userId: string, score: number, version: number, reachedAtMs = 1_700_000_000_000 + version) => ({
  userId,
  username: userId.toUpperCase(),
  score,
  version,
  reachedAtMs,
});

it("applies a redelivered event once and never moves a score back", async () => {
  expect(await boards.apply(state("ann", 10, 1), ["global"])).toBe(true);
  expect(await boards.apply(state("ann", 25, 2), ["global"])).toBe(true);
  // Redelivery of version 2 and a late version 1 change nothing.
  expect(await boards.apply(state("ann", 25, 2), ["global"])).toBe(false);
  expect(await boards.apply(state("ann", 10, 1), ["global"])).toBe(false);
  expect(await boards.rankOf("global", "ann")).toEqual({ rank: 1, userId: "ann", username: "ANN", score: 25 });
});

it("reaches the same board whatever order the events arrive in", async () => {
  const events = Array.from({ length: 20 }, (_, i) => state("bo", (i + 1) * 5, i + 1));
  const shuffled = [...events].sort(() => Math.random() - 0.5);
  for (const event of [...shuffled, ...shuffled]) await boards.apply(event, ["global"]);
  expect((await boards.rankOf("global", "bo"))?.score).toBe(100);
});

it("pages and ranks highest first with 1-based ranks", async () => {
  for (const [user, score] of [
    ["a", 5],
    ["b", 50],
    ["c", 20],
    ["d", 40],
  ] as const) {
    await boards.apply(state(user, score, 1), ["global"]);
  }
  expect((await boards.page("global", 0, 2)).map((e) => [e.rank, e.userId, e.score])).toEqual([
    [1, "b", 50],
    [2, "d", 40],
  ]);
  expect((await boards.page("global", 2, 10)).map((e) => [e.rank, e.userId])).toEqual([
    [3, "c"],
    [4, "a"],
  ]);
  expect(await boards.page("global", 10, 10)).toEqual([]);
  expect(await boards.rankOf("global", "nobody")).toBeUndefined();
});

it("answers GetRank with the neighbourhood around a user", async () => {
  const { createRankingService } = await import("../services/ranking/src/service.js");
  const { createClient, createRouterTransport } = await import("@connectrpc/connect");
  const { RankingService } = await import("@scoreboard/gen/scoreboard/v1/ranking_pb");
  for (let i = 1; i <= 9; i++) await boards.apply(state(`n${i}`, i * 10, 1), ["global"]);
  const client = createClient(
    RankingService,
    createRouterTransport((r) => r.service(RankingService, createRankingService(boards))),
  );
  const mid = await client.getRank({ userId: "n5", around: 2 });
  expect(mid.entry?.rank).toBe(5n);
  expect(mid.neighbourhood.map((e) => [Number(e.rank), e.userId])).toEqual([
    [3, "n7"],
    [4, "n6"],
    [5, "n5"],
    [6, "n4"],
    [7, "n3"],
  ]);
  const top = await client.getRank({ userId: "n9", around: 3 });
  expect(top.neighbourhood.map((e) => e.userId)).toEqual(["n9", "n8", "n7", "n6"]);
  const bottom = await client.getRank({ userId: "n1", around: 2 });
  expect(bottom.neighbourhood.map((e) => e.userId)).toEqual(["n3", "n2", "n1"]);
  expect((await client.getRank({ userId: "n1" })).neighbourhood).toEqual([]);
  await expect(client.getRank({ userId: "n1", around: 51 })).rejects.toThrow(/around must be/);
});

it("ranks equal scores by who reached them first", async () => {
  await boards.apply(state("late", 50, 1, 2_000), ["global"]);
  await boards.apply(state("early", 50, 1, 1_000), ["global"]);
  await boards.apply(state("top", 60, 1, 3_000), ["global"]);
  expect((await boards.page("global", 0, 3)).map((e) => [e.rank, e.userId])).toEqual([
    [1, "top"],
    [2, "early"],
    [3, "late"],
  ]);
  expect((await boards.rankOf("global", "late"))?.rank).toBe(3);
  // "early" moves on to 60 later than "top" reached it: it ranks below "top".
  await boards.apply(state("early", 60, 2, 4_000), ["global"]);
  expect((await boards.page("global", 0, 3)).map((e) => e.userId)).toEqual(["top", "early", "late"]);
  expect(await redis.zcard("{sb}:board:global")).toBe(3);
});

it("applies a chunk with the same user twice by version, not by position", async () => {
  const changed = await boards.applyMany([state("dup", 30, 3), state("dup", 20, 2), state("other", 5, 1)], ["global"]);
  expect(changed).toBe(2);
  expect((await boards.rankOf("global", "dup"))?.score).toBe(30);
  expect(await redis.zcard("{sb}:board:global")).toBe(2);
  expect(await boards.applyMany([state("dup", 20, 2)], ["global"])).toBe(0);
});
