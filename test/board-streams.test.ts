// Live streams of a defined board on the real mesh: the board's id names it
// on WatchLeaderboard (Connect), SSE /api/boards/{id}/stream and the
// WebSocket /ws/boards/{id}; submissions move each stream through ranking's
// announcement and push's fan-out, in the board's order; an id no board has
// is refused on each, as an unknown seed board is.
import { createClient, Code, ConnectError } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { BoardAdminService, ScoreOperator, SortOrder } from "@scoreboard/gen/scoreboard/v1/boards_pb";
import { PushService, type LeaderboardUpdate } from "@scoreboard/gen/scoreboard/v1/push_pb";
import { RankingService } from "@scoreboard/gen/scoreboard/v1/ranking_pb";
import { Scopes } from "@scoreboard/platform/auth";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { eventually, startMesh, type Mesh } from "./harness/mesh.js";
import { openWebSocket, readSse } from "./harness/stream-clients.js";

let mesh: Mesh;

beforeAll(async () => {
  mesh = await startMesh(inject("infra"));
  const transport = createConnectTransport({ baseUrl: mesh.urls.gateway, httpVersion: "1.1" });
  const admin = await mesh.token("ops", { scopes: [Scopes.adminScore] });
  // Ascending: the lowest time ranks first, which the streams must show.
  await createClient(BoardAdminService, transport).createBoard(
    { board: { boardId: "sprint", title: "Sprint", sortOrder: SortOrder.ASCENDING, operator: ScoreOperator.BEST, resetSchedule: "weekly" } },
    { headers: { authorization: `Bearer ${admin}` } },
  );
});
afterAll(async () => {
  await mesh?.stop();
});

async function submit(userId: string, score: number): Promise<void> {
  const res = await fetch(`${mesh.urls.gateway}/api/boards/sprint/scores`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${await mesh.token(userId)}` },
    body: JSON.stringify({ score }),
  });
  expect(res.status, await res.clone().text()).toBe(200);
}

type Top = [string, number][];

function watchConnect(board: string) {
  const abort = new AbortController();
  const tops: Top[] = [];
  const push = createClient(PushService, createConnectTransport({ baseUrl: mesh.urls.gateway, httpVersion: "1.1" }));
  const done = (async () => {
    for await (const update of push.watchLeaderboard({ board, limit: 5 }, { signal: abort.signal })) {
      if (!update.heartbeat) tops.push(topOf(update));
    }
  })();
  return { tops, done, stop: () => abort.abort() };
}
const topOf = (update: Pick<LeaderboardUpdate, "entries">): Top => update.entries.map((e) => [e.userId, Number(e.score)]);

const watchSse = (path: string) => readSse(`${mesh.urls.gateway}${path}`);

const watchWebSocket = (path: string) => openWebSocket(mesh.urls.gateway.replace("http://", "ws://") + path);

const entriesTop = (entries: unknown): Top => (entries as { userId: string; score: number }[]).map((e) => [e.userId, e.score]);

describe("streams of a defined board", () => {
  it("show its current season's top at once and on every change, over Connect, SSE and WebSocket", async () => {
    await submit("amy", 61_000);
    const connect = watchConnect("sprint");
    const sse = watchSse("/api/boards/sprint/stream?limit=5");
    const socket = watchWebSocket("/ws/boards/sprint?limit=5");
    try {
      expect((await sse.opened).headers.get("content-type")).toMatch(/^text\/event-stream/);
      await socket.opened;
      // The first state: amy alone (once ranking applied her submission).
      const first: Top = [["amy", 61_000]];
      await eventually(async () => (connect.tops.some((t) => same(t, first)) ? true : undefined), 10_000, "Connect's first state");
      await eventually(async () => (sse.events.some((e) => e.event === "board:update" && same(entriesTop(e.data.entries), first)) ? true : undefined));
      await eventually(async () => (socket.messages.some((m) => same(entriesTop(m.entries), first)) ? true : undefined));
      expect(sse.events[0]).toEqual({ event: "connected", data: { board: "sprint" } });

      // Lower is better: ben's 59 s goes above amy, amy's slower run changes nothing, then she improves.
      await submit("ben", 59_000);
      await submit("amy", 70_000);
      await submit("amy", 58_500);
      const last: Top = [
        ["amy", 58_500],
        ["ben", 59_000],
      ];
      await eventually(async () => (same(connect.tops.at(-1), last) ? true : undefined), 10_000, "Connect's last state");
      await eventually(async () => (same(entriesTop(sse.events.at(-1)?.data.entries), last) ? true : undefined), 10_000, "SSE's last state");
      await eventually(async () => (same(entriesTop(socket.messages.at(-1)?.entries), last) ? true : undefined), 10_000, "WebSocket's last state");
      // A worse "best" never reached a stream as a state of its own.
      for (const top of connect.tops) expect(top.some(([user, score]) => user === "amy" && score === 70_000)).toBe(false);
      expect(socket.messages.at(-1)).toMatchObject({
        board: "sprint",
        entries: [
          { rank: 1, userId: "amy", username: "amy", score: 58_500 },
          { rank: 2, userId: "ben", score: 59_000 },
        ],
      });
      expect(Number.isNaN(Date.parse(String(socket.messages.at(-1)!.asOf)))).toBe(false);

      // RankingService reads the board by its id too: its current season, in its order.
      const ranking = createClient(RankingService, createConnectTransport({ baseUrl: mesh.urls.gateway, httpVersion: "1.1" }));
      expect(topOf(await ranking.getLeaderboard({ board: "sprint", limit: 5 }))).toEqual(last);
      const rank = await ranking.getRank({ board: "sprint", userId: "ben", around: 1 });
      expect([rank.entry?.rank, rank.neighbourhood.map((e) => e.userId)]).toEqual([2n, ["amy", "ben"]]);
    } finally {
      connect.stop();
      sse.stop();
      socket.ws.close();
      await Promise.all([connect.done.catch(() => undefined), sse.done]);
    }
  });

  it("refuses an id no board has on each: NOT_FOUND over Connect, 404 on SSE and WebSocket", async () => {
    const connect = watchConnect("no-such-board");
    const error = await connect.done.then(
      () => undefined,
      (err: unknown) => ConnectError.from(err),
    );
    expect(error?.code).toBe(Code.NotFound);
    expect(error?.rawMessage).toContain('unknown board "no-such-board"');

    const sse = watchSse("/api/boards/no-such-board/stream");
    const res = await sse.opened;
    expect(res.status).toBe(404);
    expect(await res.json()).toMatchObject({ success: false, code: "not_found" });

    await expect(watchWebSocket("/ws/boards/no-such-board").opened).rejects.toThrow(/HTTP 404 .*not_found/);
    // A malformed limit is the client's mistake, and says so.
    expect((await fetch(`${mesh.urls.gateway}/api/boards/sprint/stream?limit=500`)).status).toBe(400);
    await expect(watchWebSocket("/ws/boards/sprint?limit=0").opened).rejects.toThrow(/HTTP 400 .*limit must be an integer 1\.\.100/);
  });

  it("streams a seed board by name on the boards paths too", async () => {
    const socket = watchWebSocket("/ws/boards/global?limit=3");
    await socket.opened;
    await eventually(async () => (socket.messages.length > 0 ? true : undefined));
    expect(socket.messages[0]).toMatchObject({ board: "global", entries: [] });
    socket.ws.close();
    await expect(watchWebSocket("/ws/boards/region:mars").opened).rejects.toThrow(/HTTP 404/);
  });
});

function same(a: Top | undefined, b: Top): boolean {
  return a !== undefined && JSON.stringify(a) === JSON.stringify(b);
}
