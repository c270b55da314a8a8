// Ranking as deployed answers BoardReadService (issue 12): ready with
// migration 011, a season Redis never held answered from PostgreSQL and
// loaded, then read from Redis; and a submission to score reaches ranking's
// read model through the outbox and JetStream.
import { afterAll, beforeAll, expect, inject, it } from "vitest";
import { Code, type ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { BoardAdminService, BoardReadService, BoardScoreService, SortOrder, TieRule } from "@scoreboard/gen/scoreboard/v1/boards_pb";
import { Scopes } from "@scoreboard/platform/auth";
import { SeasonSchedule } from "@scoreboard/platform/seasons";
import { eventually, startMesh, type Mesh } from "./harness/mesh.js";

let mesh: Mesh;
beforeAll(async () => {
  mesh = await startMesh(inject("infra"));
  // Ranking is serving before its first rebuild of an empty Redis ends; rows
  // inserted meanwhile would be loaded by the rebuild, not by the read below.
  await eventually(
    async () => (mesh.logs.ranking.some((l) => l.includes("boards rebuilt from PostgreSQL")) ? true : undefined),
    20_000,
    "ranking's first rebuild",
  );
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

it("shows a submission made to score, ranked by the board's rules, once its event is applied", async () => {
  const as = async (userId: string, scopes: string[]) => ({ headers: { authorization: `Bearer ${await mesh.token(userId, { scopes })}` } });
  const transport = createConnectTransport({ baseUrl: mesh.urls.score, httpVersion: "1.1" });
  const admin = createClient(BoardAdminService, transport);
  const boards = createClient(BoardScoreService, transport);
  await admin.createBoard(
    {
      board: {
        boardId: "golf",
        title: "Golf",
        sortOrder: SortOrder.ASCENDING,
        tieRule: TieRule.SUBSCORE,
        operator: 3, // best
        resetSchedule: "none",
        metadataMaxBytes: 100,
      },
    },
    await as("admin", [Scopes.adminScore]),
  );
  // A first read loads the (empty) season, so what follows can only reach Redis as events.
  const rpc = createClient(BoardReadService, createConnectTransport({ baseUrl: mesh.urls.ranking, httpVersion: "1.1" }));
  // (A board created within the last second may not be known to ranking yet.)
  const empty = await eventually(() => rpc.getBoardPage({ boardId: "golf" }).catch(() => undefined), 5_000, "ranking knowing the new board");
  expect(empty.entries).toEqual([]);
  await eventually(async () => (mesh.logs.ranking.some((l) => l.includes("season loaded into Redis") && l.includes('"golf"')) ? true : undefined));
  const submit = async (userId: string, score: number, subscore: number) =>
    boards.submitScore(
      { boardId: "golf", score: BigInt(score), subscore: BigInt(subscore), metadata: '{"course":"links"}' },
      await as(userId, [Scopes.updateScore]),
    );
  await submit("gina", 72, 3);
  await submit("hal", 70, 0);
  await submit("ivy", 72, 1);
  await submit("hal", 75, 0); // worse on a "best" board: changes nothing
  const page = await eventually(async () => {
    const p = await rpc.getBoardPage({ boardId: "golf" });
    return p.entries.length === 3 ? p : undefined;
  });
  expect(page.season).toMatchObject({ id: "all", current: true });
  expect(page.entries.map((e) => [e.userId, e.score, e.subscore, e.metadata])).toEqual([
    ["hal", 70n, 0n, '{"course": "links"}'],
    ["ivy", 72n, 1n, '{"course": "links"}'],
    ["gina", 72n, 3n, '{"course": "links"}'],
  ]);
});
