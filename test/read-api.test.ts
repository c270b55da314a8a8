// Every seed's leaderboard read with its shape, ETag revalidation for short
// polling, and the optional read:leaderboard requirement.
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { Scopes } from "@scoreboard/platform/auth";
import { eventually, startMesh, type Mesh } from "./harness/mesh.js";

let mesh: Mesh;

async function grant(m: Mesh, userId: string, actionId: string, name?: string) {
  const res = await m.submitAction(userId, actionId, { name });
  expect(res.status).toBe(200);
}

const get = async (m: Mesh, path: string, headers: Record<string, string> = {}) => {
  const res = await fetch(`${m.urls.gateway}${path}`, { headers });
  return { status: res.status, headers: res.headers, body: res.status === 304 ? undefined : ((await res.json()) as unknown) };
};

describe("public reads", () => {
  beforeAll(async () => {
    mesh = await startMesh(inject("infra"));
    await mesh.sql("INSERT INTO actions (action_id, points) VALUES ('small', 5), ('big', 50), ('huge', 500)");
    await grant(mesh, "ann", "big", "Ann");
    await grant(mesh, "bo", "small", "Bo");
    await eventually(async () => ((await get(mesh, "/leaderboard")).body as unknown[]).length === 2 || undefined);
  });
  afterAll(async () => {
    await mesh?.stop();
  });

  it("seed 000: GET /api/scores/leaderboard", async () => {
    expect((await get(mesh, "/api/scores/leaderboard")).body).toEqual({
      leaderboard: [
        { rank: 1, userId: "ann", score: 50 },
        { rank: 2, userId: "bo", score: 5 },
      ],
    });
  });

  it("seed 001: GET /api/scores with usernames and a fresh cache_time", async () => {
    const { body } = (await get(mesh, "/api/scores")) as { body: { data: unknown[]; cache_time: string } };
    expect(body.data).toEqual([
      { userId: "ann", username: "Ann", rank: 1, score: 50 },
      { userId: "bo", username: "Bo", rank: 2, score: 5 },
    ]);
    expect(Date.now() - Date.parse(body.cache_time)).toBeLessThan(5_000);
  });

  it("seed 003: GET /leaderboard?limit=N", async () => {
    expect((await get(mesh, "/leaderboard")).body).toEqual([
      { playerId: "ann", score: 50 },
      { playerId: "bo", score: 5 },
    ]);
    expect((await get(mesh, "/leaderboard?limit=1")).body).toEqual([{ playerId: "ann", score: 50 }]);
    for (const bad of ["0", "101", "abc", "1.5", "-1"]) {
      expect((await get(mesh, `/leaderboard?limit=${bad}`)).status).toBe(400);
    }
  });

  it("answers 304 to If-None-Match until the board changes", async () => {
    for (const path of ["/api/leaderboard", "/api/scores/leaderboard", "/api/scores", "/leaderboard"]) {
      const first = await get(mesh, path);
      const etag = first.headers.get("etag")!;
      expect(etag).toMatch(/^W\/".+"$/);
      expect(first.headers.get("cache-control")).toBe("no-cache");
      expect((await get(mesh, path, { "if-none-match": etag })).status).toBe(304);
    }
    const before = (await get(mesh, "/api/leaderboard")).headers.get("etag")!;
    await grant(mesh, "cy", "huge");
    const after = await eventually(async () => {
      const res = await get(mesh, "/api/leaderboard", { "if-none-match": before });
      return res.status === 200 ? res : undefined;
    });
    expect(after.headers.get("etag")).not.toBe(before);
  });
});

describe("reads with READS_REQUIRE_SCOPE", () => {
  let locked: Mesh;
  beforeAll(async () => {
    locked = await startMesh(inject("infra"), { READS_REQUIRE_SCOPE: "true" });
  });
  afterAll(async () => {
    await locked?.stop();
  });

  it("needs a token with read:leaderboard", async () => {
    const reader = await locked.token("reader", { scopes: [Scopes.readLeaderboard] });
    const writerOnly = await locked.token("writer", { scopes: [Scopes.updateScore] });
    for (const path of ["/api/leaderboard", "/api/scores/leaderboard", "/api/scores", "/leaderboard", "/api/leaderboard/stream"]) {
      expect((await get(locked, path)).status).toBe(401);
      expect((await get(locked, path, { authorization: `Bearer ${writerOnly}` })).status).toBe(403);
    }
    const ok = await get(locked, "/api/leaderboard", { authorization: `Bearer ${reader}` });
    expect(ok.status).toBe(200);
    expect(ok.headers.get("cache-control")).toBe("private, no-cache");
    const abort = new AbortController();
    const stream = await fetch(`${locked.urls.gateway}/api/leaderboard/stream?access_token=${reader}`, { signal: abort.signal });
    expect(stream.status).toBe(200);
    abort.abort();
  });
});
