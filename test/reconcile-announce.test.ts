// What a reconciliation repairs reaches open streams at once, whether ranking
// ran it or `npm run reconcile` did: here push never re-reads boards by
// itself, so only the announcement of the repaired board can correct what a
// stream was shown.
import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterAll, beforeAll, expect, inject, it } from "vitest";
import { Redis } from "ioredis";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { PushService, type LeaderboardUpdate } from "@scoreboard/gen/scoreboard/v1/push_pb";
import { USERS } from "../services/ranking/src/boards.js";
import { startRedis, type RedisInstance } from "./harness/infra.js";
import { eventually, startMesh, type Mesh } from "./harness/mesh.js";

const root = fileURLToPath(new URL("../", import.meta.url));
let redis: RedisInstance;
let mesh: Mesh;

beforeAll(async () => {
  redis = await startRedis(); // its own, to restart
  mesh = await startMesh({ ...inject("infra"), redisUrl: redis.url }, { PUSH_REFRESH_INTERVAL_MS: "600000" });
  await mesh.sql("INSERT INTO actions (action_id, points) VALUES ('a', 10)");
});
afterAll(async () => {
  await mesh?.stop();
  await redis?.stop();
});

/**
 * Grants `user` 10 points in `region`, then makes Redis say `drift` on that
 * region's board without telling anyone, and opens a stream on it (the board
 * is new to push, so push loads it, drift included, from ranking). Answers
 * the score the stream shows last, and a stop.
 */
async function driftedStream(user: string, region: string, drift: number) {
  expect((await mesh.submitAction(user, "a", { region })).status).toBe(200);
  const client = new Redis(redis.url);
  try {
    await eventually(async () => ((await client.hget(USERS, user)) ? true : undefined), 10_000, `${user} applied`);
    const member = `${(await client.hget(USERS, user))!.split("|")[1]}|${user}`;
    await client.zadd(`{sb}:board:region:${region}`, drift, member);
  } finally {
    client.disconnect();
  }
  const abort = new AbortController();
  const updates: LeaderboardUpdate[] = [];
  const reading = (async () => {
    const stream = createClient(PushService, createConnectTransport({ baseUrl: mesh.urls.gateway, httpVersion: "1.1" }));
    for await (const update of stream.watchLeaderboard({ board: `region:${region}`, limit: 10 }, { signal: abort.signal })) updates.push(update);
  })().catch(() => undefined);
  const score = () => updates.findLast((u) => !u.heartbeat)?.entries.find((e) => e.userId === user)?.score;
  await eventually(async () => (score() === BigInt(drift) ? true : undefined), 10_000, "the stream to show the drift");
  return {
    score,
    stop: async () => {
      abort.abort();
      await reading;
    },
  };
}

it("announces the boards a catch-up reconciliation repaired", async () => {
  const stream = await driftedStream("ann", "eu", 999);
  try {
    // Redis restarts with its data (and the drift): ranking catches up and
    // announces what it repaired.
    await redis.kill("SIGKILL");
    await redis.restart();
    await eventually(async () => (stream.score() === 10n ? true : undefined), 20_000, "the repaired score on the stream");
  } finally {
    await stream.stop();
  }
});

it("announces the boards npm run reconcile repaired, from its own process", async () => {
  const stream = await driftedStream("bob", "us", 555);
  try {
    const env = { ...process.env, DATABASE_URL: mesh.databaseUrl, REDIS_URL: redis.url, NATS_URL: inject("infra").natsUrl };
    const { stdout } = await promisify(execFile)(process.execPath, ["--import", "tsx", "cli/main.ts", "reconcile"], { cwd: root, env });
    expect(stdout, stdout).toContain("repaired bob on region:us: redis 555 -> postgres 10");
    expect(stdout, stdout).toContain("announced 1 repaired board(s) to push");
    await eventually(async () => (stream.score() === 10n ? true : undefined), 10_000, "the repaired score on the stream");
  } finally {
    await stream.stop();
  }
});
