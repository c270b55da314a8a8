// Time-windowed boards: a grant counts on the UTC day, ISO week and month it
// was made in; "daily", "weekly" and "monthly" read the current period;
// boards are keyed by period and expire from Redis after their retention, are
// rebuilt from PostgreSQL, and are answered from PostgreSQL while Redis is down.
import { afterAll, beforeAll, expect, inject, it } from "vitest";
import { Redis } from "ioredis";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { PushService } from "@scoreboard/gen/scoreboard/v1/push_pb";
import { periodAt, periodBoardsAt } from "@scoreboard/platform/periods";
import { REBUILT_MARKER } from "../services/ranking/src/rebuild.js";
import { startRedis, type RedisInstance } from "./harness/infra.js";
import { eventually, startMesh, type Mesh } from "./harness/mesh.js";

let redis: RedisInstance;
let mesh: Mesh;

beforeAll(async () => {
  // Its own Redis, so this file can take it away without touching the others.
  redis = await startRedis();
  mesh = await startMesh({ ...inject("infra"), redisUrl: redis.url });
  await mesh.sql("INSERT INTO actions (action_id, points) VALUES ('a', 10), ('b', 20), ('c', 30)");
});
afterAll(async () => {
  await mesh?.stop();
  await redis?.stop();
});

async function grant(userId: string, actionId: string) {
  const res = await mesh.submitAction(userId, actionId);
  expect(res.status).toBe(200);
}

async function rpc(method: string, body: object): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`${mesh.urls.gateway}/scoreboard.v1.RankingService/${method}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

async function board(name: string): Promise<[string, number][]> {
  const { status, body } = await rpc("GetLeaderboard", { board: name, limit: 100 });
  if (status !== 200) throw new Error(`GetLeaderboard ${name}: ${status} ${JSON.stringify(body)}`);
  return ((body.entries ?? []) as { userId: string; score: string }[]).map((e) => [e.userId, Number(e.score)]);
}

const current = () => ({
  daily: periodAt("daily", Date.now()).board,
  weekly: periodAt("weekly", Date.now()).board,
  monthly: periodAt("monthly", Date.now()).board,
});

it("counts a grant on today's, this week's and this month's board beside the all-time one", async () => {
  await grant("pa", "a");
  await grant("pb", "c");
  await grant("pa", "b");
  await eventually(async () => ((await board("daily"))[0]?.[1] === 30 && (await board("daily")).length === 2 ? true : undefined));
  // Ties on a period board rank who reached the total first: pb (30) before pa (10 + 20).
  const expected = [
    ["pb", 30],
    ["pa", 30],
  ];
  for (const name of ["daily", "weekly", "monthly", ...Object.values(current())]) expect(await board(name)).toEqual(expected);
  expect(await board("global")).toEqual(expected);
  const { body } = await rpc("GetRank", { board: "weekly", userId: "pa" });
  expect(body).toMatchObject({ entry: { rank: "2", userId: "pa", score: "30" } });
});

it("keeps past grants on their own periods, named as PostgreSQL names them", async () => {
  // Backdated ledger rows (the trigger counts any ledger insert) at the edges of ISO weeks and years.
  const instants = ["2026-12-31T23:30:00Z", "2027-01-03T12:00:00Z", "2027-01-04T00:00:00Z", "2024-12-30T08:00:00Z"];
  await mesh.sql("INSERT INTO users (user_id, username) VALUES ('past', 'past') ON CONFLICT DO NOTHING");
  for (const [i, instant] of instants.entries()) {
    const [inserted] = await mesh.sql<{ id: string }>(
      "INSERT INTO ledger (user_id, kind, points, created_at) VALUES ('past', 'increment', $1, $2) RETURNING id",
      [i + 1, instant],
    );
    const [row] = await mesh.sql<{ period_scores: Record<string, number> }>("SELECT period_scores FROM ledger WHERE id = $1", [inserted!.id]);
    expect(Object.keys(row!.period_scores).sort()).toEqual(periodBoardsAt(Date.parse(instant)).sort());
  }
  // 2026-12-31 and 2027-01-03 share ISO week 2026-w53: 1 + 2.
  const [week] = await mesh.sql<{ score: string }>("SELECT score FROM period_scores WHERE board = 'weekly:2026-w53' AND user_id = 'past'");
  expect(Number(week!.score)).toBe(3);
  // Long past their retention: refused rather than answered empty.
  const old = await rpc("GetLeaderboard", { board: "daily:2024-12-30" });
  expect(old.status).toBe(400);
  expect(JSON.stringify(old.body)).toContain("retention");
  expect((await rpc("GetLeaderboard", { board: "weekly:2026-53" })).status).toBe(400);
});

it("expires period boards from Redis after their retention, with nothing to reset", async () => {
  const client = new Redis(redis.url);
  try {
    const now = Date.now();
    const ttl = await client.pexpiretime(`{sb}:board:${current().daily}`);
    const dayEnd = periodAt("daily", now).endMs;
    expect(ttl).toBe(dayEnd + 7 * 86_400_000);
    expect(await client.pexpiretime(`{sb}:pusers:${current().monthly}`)).toBe(periodAt("monthly", now).endMs + 366 * 86_400_000);
    expect(await client.pexpiretime("{sb}:board:global")).toBe(-1);
  } finally {
    client.disconnect();
  }
});

it('tells watchers of "daily" when today\'s board changes', async () => {
  const push = createClient(PushService, createConnectTransport({ baseUrl: mesh.urls.gateway, httpVersion: "1.1" }));
  const abort = new AbortController();
  const seen: [string, number][][] = [];
  const watching = (async () => {
    for await (const update of push.watchLeaderboard({ board: "daily", limit: 10 }, { signal: abort.signal })) {
      if (update.heartbeat) continue;
      seen.push(update.entries.map((e) => [e.userId, Number(e.score)]));
    }
  })().catch(() => undefined);
  try {
    await eventually(async () => (seen.length > 0 ? true : undefined));
    await grant("pc", "c");
    await grant("pc", "a");
    await eventually(async () => (seen.at(-1)?.[0]?.[0] === "pc" ? true : undefined), 10_000, "the daily watcher to see pc lead");
    expect(seen.at(-1)?.[0]).toEqual(["pc", 40]);
  } finally {
    abort.abort();
    await watching;
  }
});

it("answers period boards from PostgreSQL while Redis is down, and rebuilds them when it is back empty", async () => {
  const before = await board("daily");
  await redis.kill("SIGKILL");
  expect(await board("daily")).toEqual(before);
  expect(await board(current().weekly)).toEqual(before);
  expect((await rpc("GetRank", { board: "monthly", userId: "pb" })).body).toMatchObject({ entry: { rank: "2", score: "30" } });

  // Back without its data (no persistence survives a SIGKILL here): ranking rebuilds every live period board.
  await redis.restart();
  const client = new Redis(redis.url);
  try {
    await client.flushall();
    await mesh.kill("ranking");
    await mesh.start("ranking");
    await eventually(async () => ((await client.exists(REBUILT_MARKER)) === 1 ? true : undefined), 20_000, "the rebuild");
    expect(await client.zcard(`{sb}:board:${current().daily}`)).toBe(before.length);
  } finally {
    client.disconnect();
  }
  expect(await board("daily")).toEqual(before);
  expect(await board("monthly")).toEqual(before);
});
