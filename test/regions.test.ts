// Regional boards (seed 000): a grant counts on the global board and on the
// user's region board, the region coming from the token or the profile.
import { afterAll, beforeAll, expect, inject, it } from "vitest";
import { Redis } from "ioredis";
import { eventually, startMesh, type Mesh } from "./harness/mesh.js";

let mesh: Mesh;

beforeAll(async () => {
  mesh = await startMesh(inject("infra"));
  await mesh.sql("INSERT INTO actions (action_id, points) VALUES ('a', 10), ('b', 20), ('c', 30)");
});
afterAll(async () => {
  await mesh?.stop();
});

async function grant(userId: string, actionId: string, region?: string) {
  const res = await mesh.submitAction(userId, actionId, { region });
  expect(res.status).toBe(200);
}

async function board(name: string): Promise<[string, number][]> {
  const res = await fetch(`${mesh.urls.gateway}/scoreboard.v1.RankingService/GetLeaderboard`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ board: name, limit: 10 }),
  });
  const body = (await res.json()) as { entries?: { userId: string; score: string }[] };
  return (body.entries ?? []).map((e) => [e.userId, Number(e.score)]);
}

it("counts a grant on the global board and on the region board from the token", async () => {
  await grant("eu-1", "a", "eu");
  await grant("us-1", "c", "us");
  await grant("none", "b");
  await eventually(async () => ((await board("global")).length === 3 ? true : undefined));
  expect(await board("global")).toEqual([
    ["us-1", 30],
    ["none", 20],
    ["eu-1", 10],
  ]);
  expect(await board("region:eu")).toEqual([["eu-1", 10]]);
  expect(await board("region:us")).toEqual([["us-1", 30]]);
});

it("keeps counting on the profile's region when a later token carries none", async () => {
  await grant("eu-1", "b");
  await eventually(async () => ((await board("region:eu"))[0]?.[1] === 30 ? true : undefined));
  const [profile] = await mesh.sql<{ region: string }>("SELECT region FROM users WHERE user_id = 'eu-1'");
  expect(profile?.region).toBe("eu");
});

it("moves the profile's region only with a grant, never with a refused one", async () => {
  const res = await mesh.submitAction("eu-1", "a", { region: "apac" }); // granted to eu-1 already
  expect(await res.json()).toMatchObject({ success: false, code: "already_exists" }); // seed 004 answers it with 400
  const [profile] = await mesh.sql<{ region: string }>("SELECT region FROM users WHERE user_id = 'eu-1'");
  expect(profile?.region).toBe("eu");
});

it("rebuilds region boards from PostgreSQL too", async () => {
  const redis = new Redis(inject("infra").redisUrl);
  await redis.flushall();
  redis.disconnect();
  await mesh.kill("ranking");
  await mesh.start("ranking");
  await eventually(async () => ((await board("region:eu")).length === 1 ? true : undefined), 20_000);
  expect(await board("region:eu")).toEqual([["eu-1", 30]]);
  expect(await board("region:us")).toEqual([["us-1", 30]]);
});

it("moves a user to their new region's board when their token names another region", async () => {
  const redis = new Redis(inject("infra").redisUrl);
  try {
    await grant("eu-1", "c", "us"); // 30 + 30
    await eventually(async () => ((await board("region:us"))[0]?.[0] === "eu-1" ? true : undefined), 10_000, "eu-1 on region:us");
    expect(await board("region:us")).toEqual([
      ["eu-1", 60],
      ["us-1", 30],
    ]);
    // Gone from the old region's board, at once and not only after a reconciliation.
    expect(await board("region:eu")).toEqual([]);
    expect(await redis.zcard("{sb}:board:region:eu")).toBe(0);
    expect((await board("global")).find(([user]) => user === "eu-1")).toEqual(["eu-1", 60]);
    // And a user whose events carry no region any more leaves region boards too.
    await mesh.sql("UPDATE users SET region = NULL WHERE user_id = 'us-1'");
    await grant("us-1", "a");
    await eventually(async () => ((await board("region:us")).length === 1 ? true : undefined), 10_000, "us-1 off region:us");
    expect(await board("region:us")).toEqual([["eu-1", 60]]);
  } finally {
    redis.disconnect();
  }
});
