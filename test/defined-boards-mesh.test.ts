// Ranking as deployed answers BoardReadService (issue 12): ready with
// migration 011, a season Redis never held answered from PostgreSQL and
// loaded, then read from Redis.
import { afterAll, beforeAll, expect, inject, it } from "vitest";
import { Code, type ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { BoardReadService } from "@scoreboard/gen/scoreboard/v1/boards_pb";
import { SeasonSchedule } from "@scoreboard/platform/seasons";
import { eventually, startMesh, type Mesh } from "./harness/mesh.js";

let mesh: Mesh;
beforeAll(async () => {
  mesh = await startMesh(inject("infra"));
});
afterAll(async () => {
  await mesh?.stop();
});

it("serves a defined board's pages, ranks, friends and seasons", async () => {
  await mesh.sql(
    "INSERT INTO board_definitions (board_id, title, sort_order, operator, reset_schedule, tie_rule, retained_seasons) VALUES ('laps', 'Laps', 'asc', 'best', 'weekly', 'first', 2)",
  );
  const season = new SeasonSchedule("weekly").seasonAt(new Date()).id;
  for (const [i, user] of ["ann", "bob", "cy"].entries()) {
    await mesh.sql("INSERT INTO users (user_id, username) VALUES ($1, $1) ON CONFLICT DO NOTHING", [user]);
    await mesh.sql("INSERT INTO board_entries (board_id, season, user_id, score, reached_at, version) VALUES ('laps', $1, $2, $3, now(), 1)", [
      season,
      user,
      60_000 + (2 - i) * 1000,
    ]);
  }
  const rpc = createClient(BoardReadService, createConnectTransport({ baseUrl: mesh.urls.ranking, httpVersion: "1.1" }));
  const first = await rpc.getBoardPage({ boardId: "laps", limit: 2 });
  expect(first.entries.map((e) => [e.userId, Number(e.rank)])).toEqual([
    ["cy", 1],
    ["bob", 2],
  ]);
  expect(first.season).toMatchObject({ id: season, current: true });
  // Loaded into Redis after that read: PostgreSQL losing a row no longer shows.
  await eventually(async () => (mesh.logs.ranking.some((l) => l.includes("season loaded into Redis")) ? true : undefined));
  await mesh.sql("DELETE FROM board_entries WHERE user_id = 'ann'");
  const second = await rpc.getBoardPage({ boardId: "laps", limit: 2, cursor: first.nextCursor });
  expect(second.entries.map((e) => e.userId)).toEqual(["ann"]);
  expect(second.nextCursor).toBe("");
  expect((await rpc.getBoardRank({ boardId: "laps", userId: "bob", around: 1 })).neighbourhood.map((e) => e.userId)).toEqual(["cy", "bob", "ann"]);
  expect((await rpc.getBoardEntries({ boardId: "laps", userIds: ["ann", "zed"] })).entries.map((e) => e.userId)).toEqual(["ann"]);
  expect((await rpc.listSeasons({ boardId: "laps" })).seasons).toHaveLength(3);
  const err = await rpc.getBoardPage({ boardId: "global" }).catch((e: unknown) => e as ConnectError);
  expect((err as ConnectError).code).toBe(Code.FailedPrecondition);
});
