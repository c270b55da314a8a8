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

it("announces the boards a catch-up reconciliation repaired", async () => {
  expect((await mesh.submitAction("ann", "a", { region: "eu" })).status).toBe(200);
  const client = new Redis(redis.url);
  try {
    await eventually(async () => ((await client.hget(USERS, "ann")) ? true : undefined), 10_000, "ann applied");
    // Drift nobody announces: Redis says 999 on ann's region board.
    const member = `${(await client.hget(USERS, "ann"))!.split("|")[1]}|ann`;
    await client.zadd("{sb}:board:region:eu", 999, member);
  } finally {
    client.disconnect();
  }

  // A stream opened now is shown the drift (push loads the board from ranking).
  const abort = new AbortController();
  const updates: LeaderboardUpdate[] = [];
  const reading = (async () => {
    const stream = createClient(PushService, createConnectTransport({ baseUrl: mesh.urls.gateway, httpVersion: "1.1" }));
    for await (const update of stream.watchLeaderboard({ board: "region:eu", limit: 10 }, { signal: abort.signal })) updates.push(update);
  })().catch(() => undefined);
  const score = () => updates.findLast((u) => !u.heartbeat)?.entries.find((e) => e.userId === "ann")?.score;
  try {
    await eventually(async () => (score() === 999n ? true : undefined), 10_000, "the stream to show the drift");

    // Redis restarts with its data (and the drift): ranking catches up and
    // announces what it repaired.
    await redis.kill("SIGKILL");
    await redis.restart();
    await eventually(async () => (score() === 10n ? true : undefined), 20_000, "the repaired score on the stream");
  } finally {
    abort.abort();
    await reading;
  }
});

it("announces the boards npm run reconcile repaired, from its own process", async () => {
  // A board nobody watches yet, so the stream opened below loads the drift from ranking.
  expect((await mesh.submitAction("bob", "a", { region: "us" })).status).toBe(200);
  const client = new Redis(redis.url);
  try {
    await eventually(async () => ((await client.hget(USERS, "bob")) ? true : undefined), 10_000, "bob applied");
    const member = `${(await client.hget(USERS, "bob"))!.split("|")[1]}|bob`;
    await client.zadd("{sb}:board:region:us", 555, member); // drift nobody announces
  } finally {
    client.disconnect();
  }
  const abort = new AbortController();
  const updates: LeaderboardUpdate[] = [];
  const reading = (async () => {
    const stream = createClient(PushService, createConnectTransport({ baseUrl: mesh.urls.gateway, httpVersion: "1.1" }));
    for await (const update of stream.watchLeaderboard({ board: "region:us", limit: 10 }, { signal: abort.signal })) updates.push(update);
  })().catch(() => undefined);
  const score = () => updates.findLast((u) => !u.heartbeat)?.entries.find((e) => e.userId === "bob")?.score;
  try {
    await eventually(async () => (score() === 555n ? true : undefined), 10_000, "the stream to show the drift");
    const env = { ...process.env, DATABASE_URL: mesh.databaseUrl, REDIS_URL: redis.url, NATS_URL: inject("infra").natsUrl };
    const { stdout } = await promisify(execFile)(process.execPath, ["--import", "tsx", "scripts/reconcile.ts"], { cwd: root, env });
    expect(stdout, stdout).toContain("repaired bob on region:us: redis 555 -> postgres 10");
    expect(stdout, stdout).toContain("announced 1 repaired board(s) to push");
    await eventually(async () => (score() === 10n ? true : undefined), 10_000, "the repaired score on the stream");
  } finally {
    abort.abort();
    await reading;
  }
});
