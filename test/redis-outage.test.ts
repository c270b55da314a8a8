// Reads survive a Redis outage by answering from PostgreSQL; boards are
// rebuilt from PostgreSQL when Redis comes back empty; reconciliation repairs
// drift and says what it repaired.
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, expect, inject, it } from "vitest";
import { Redis } from "ioredis";
import { RedisBoards, USERS } from "../services/ranking/src/boards.js";
import { REBUILT_MARKER } from "../services/ranking/src/rebuild.js";
import { startRedis, type RedisInstance } from "./harness/infra.js";
import { eventually, startMesh, type Mesh } from "./harness/mesh.js";

const root = fileURLToPath(new URL("../", import.meta.url));
let redis: RedisInstance;
let mesh: Mesh;

beforeAll(async () => {
  // Its own Redis, so this file can take it away without touching the others.
  redis = await startRedis();
  mesh = await startMesh({ ...inject("infra"), redisUrl: redis.url });
  await mesh.sql("INSERT INTO actions (action_id, points) VALUES ('a', 10), ('b', 20), ('c', 30), ('d', 40)");
});
afterAll(async () => {
  await mesh?.stop();
  await redis?.stop();
});

async function grant(userId: string, actionId: string) {
  const res = await mesh.submitAction(userId, actionId);
  expect(res.status).toBe(200);
}
const board = async (path = "/leaderboard?limit=100") => (await (await fetch(`${mesh.urls.gateway}${path}`)).json()) as { playerId: string; score: number }[];
const rank = async (userId: string) =>
  (await (
    await fetch(`${mesh.urls.gateway}/scoreboard.v1.RankingService/GetRank`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ userId }),
    })
  ).json()) as { entry?: { rank: string; score: string } };
/** A user's score on the global board, through the user → member index. */
async function scoreInRedis(client: Redis, userId: string): Promise<number | null> {
  return (await new RedisBoards(client).scoresOf("global", [userId]))[0] ?? null;
}
/** A user's sorted-set member: the tie key kept in their USERS field, then the user id. */
async function memberIn(client: Redis, userId: string): Promise<string> {
  const stored = await client.hget(USERS, userId);
  return `${stored!.split("|")[1]}|${userId}`;
}

const postgresBoard = async () =>
  (
    await mesh.sql<{ playerId: string; score: number }>(
      `SELECT user_id AS "playerId", score::int FROM scores ORDER BY score DESC, date_trunc('milliseconds', updated_at), user_id COLLATE "C" DESC`,
    )
  ).map((r) => ({ playerId: r.playerId, score: r.score }));

it("answers reads from PostgreSQL while Redis is down, then agrees again when it is back", async () => {
  await grant("ua", "a");
  await grant("ub", "b");
  await grant("uc", "c");
  await grant("ud", "a"); // ties with ua, who got there first: ranks below ua in both stores
  const before = await eventually(async () => ((await board()).length === 4 ? board() : undefined));
  expect(before).toEqual(await postgresBoard());
  const rankBefore = await rank("ub");

  await redis.kill("SIGKILL");
  expect(await board()).toEqual(before);
  expect(await rank("ub")).toEqual(rankBefore);
  expect(await rank("ua")).toMatchObject({ entry: { rank: "3" } });
  expect(await rank("ud")).toMatchObject({ entry: { rank: "4" } });
  // Writes go on (rate limits fall back per replica) and show in reads: at
  // once over RPC (PostgreSQL), and in REST reads once push re-reads ranking.
  await grant("ue", "d");
  expect(await rank("ue")).toMatchObject({ entry: { rank: "1", score: "40" } });
  await eventually(async () => ((await board())[0]?.playerId === "ue" ? true : undefined), 15_000, "REST reads to show ue");

  await redis.restart();
  const client = new Redis(redis.url);
  try {
    await eventually(async () => ((await scoreInRedis(client, "ue")) === 40 ? true : undefined), 30_000, "the event made during the outage to reach Redis");
  } finally {
    client.disconnect();
  }
  expect(await board()).toEqual(await postgresBoard());
});

it("catches up a Redis that comes back with its data but without its last writes", async () => {
  const lines = (text: string, from = 0) => mesh.logs.ranking.slice(from).filter((line) => line.includes(text)).length;
  // The last test's restart started a catch-up too: let it finish first.
  await eventually(
    async () => (lines("reconciliation done") >= lines("Redis restarted with its data") ? true : undefined),
    20_000,
    "the previous catch-up to finish",
  );
  const client = new Redis(redis.url);
  try {
    // From here on Redis keeps uf's grant only in memory, as appendfsync
    // everysec does for up to a second before a crash.
    await client.config("SET", "appendonly", "no");
    await grant("uf", "c");
    await eventually(async () => ((await scoreInRedis(client, "uf")) === 30 ? true : undefined), 10_000, "uf applied");
  } finally {
    client.disconnect();
  }
  const killedAt = mesh.logs.ranking.length;
  await redis.kill("SIGKILL");
  await redis.restart(); // from the AOF, which has no uf
  const after = new Redis(redis.url);
  try {
    // Acked by ranking, lost by Redis, and no event will come again: only the catch-up brings it back.
    await eventually(async () => ((await scoreInRedis(after, "uf")) === 30 ? true : undefined), 30_000, "uf caught up");
  } finally {
    after.disconnect();
  }
  expect(lines("Redis restarted with its data", killedAt)).toBe(1); // one replica caught up, once
  await eventually(async () => (lines("reconciliation done", killedAt) === 1 ? true : undefined), 10_000, "the catch-up to finish");
  expect(await board()).toEqual(await postgresBoard());
});

it("rebuilds the boards from PostgreSQL when ranking finds Redis empty", async () => {
  const client = new Redis(redis.url);
  await client.flushall();
  client.disconnect();
  await mesh.kill("ranking");
  await mesh.start("ranking");
  const rebuilt = await eventually(async () => ((await board()).length === 6 ? board() : undefined), 20_000, "the rebuild");
  expect(rebuilt).toEqual(await postgresBoard());
  const fromRedis = new Redis(redis.url);
  // The marker is set once the whole rebuild is in.
  await eventually(async () => ((await fromRedis.exists(REBUILT_MARKER)) === 1 ? true : undefined));
  fromRedis.disconnect();
});

it("repairs drift with npm run reconcile and prints what it repaired", async () => {
  const client = new Redis(redis.url);
  await client.zadd("{sb}:board:global", 999, await memberIn(client, "ua")); // wrong score
  await client.zrem("{sb}:board:global", await memberIn(client, "ub")); // missing
  // Unknown to PostgreSQL.
  await new RedisBoards(client).applyMany([{ userId: "ghost", username: "ghost", score: 5, version: 1, reachedAtMs: Date.now() }], ["global"]);
  const env = { ...process.env, DATABASE_URL: mesh.databaseUrl, REDIS_URL: redis.url };
  const { stdout } = await promisify(execFile)(process.execPath, ["--import", "tsx", "cli/main.ts", "reconcile"], { cwd: root, env });
  expect(stdout, stdout).toContain("repaired ua on global: redis 999 -> postgres 10");
  expect(stdout, stdout).toContain("repaired ub on global: redis missing -> postgres 20");
  expect(stdout, stdout).toContain("repaired ghost on global: redis 5 -> postgres removed");
  // The global board and every live daily, weekly and monthly board (how many depends on the date).
  expect(stdout, stdout).toMatch(/^checked 6 users on \d+ boards, repaired 3$/m);
  expect(await board()).toEqual(await postgresBoard());
  client.disconnect();
});
