import { EventEmitter } from "node:events";
import { describe, expect, it } from "vitest";
import { create } from "@bufbuild/protobuf";
import { LeaderboardEntrySchema } from "@scoreboard/gen/scoreboard/v1/leaderboard_pb";
import { LeaderboardUpdateSchema, type LeaderboardUpdate } from "@scoreboard/gen/scoreboard/v1/push_pb";
import type { LeaderboardFeeds } from "./leaderboard-feed.js";
import type { Request, Response } from "../http.js";
import { positionToken } from "@scoreboard/platform/stream-position";
import { fakeLiveDeps, topUpdate } from "./live-fakes.js";
import { StreamQuota } from "./stream-quota.js";
import { createSseRoutes, serveLeaderboardStream } from "./sse.js";

/** A response whose socket never drains: every write after the first is "blocked". */
class StuckResponse extends EventEmitter {
  readonly chunks: string[] = [];
  writeHead() {
    return this;
  }
  write(chunk: string | Buffer) {
    this.chunks.push(String(chunk));
    return this.chunks.length < 2; // the connected event fits, then the socket is full
  }
  end() {}
}

function update(score: number): LeaderboardUpdate {
  return create(LeaderboardUpdateSchema, {
    entries: [create(LeaderboardEntrySchema, { rank: 1n, userId: "u", username: "u", score: BigInt(score) })],
  });
}

describe("SSE with a client that stops reading", () => {
  it("keeps only the latest state for it, however many changes come, and sends it when it drains", () => {
    let listener: ((u: LeaderboardUpdate) => void) | undefined;
    const feeds = {
      subscribe: (_b: string, _l: number, l: (u: LeaderboardUpdate) => void) => {
        listener = l;
        return () => {};
      },
    } as unknown as LeaderboardFeeds;
    const res = new StuckResponse();
    const shutdown = new AbortController();
    serveLeaderboardStream({ httpVersionMajor: 1 } as Request, res as unknown as Response, feeds, {
      heartbeatMs: 60_000,
      shutdownSignal: shutdown.signal,
    });
    for (let i = 1; i <= 10_000; i++) listener!(update(i));
    // connected + the first update were written; the other 9,999 states were
    // not queued: the server holds one pending state for this client.
    expect(res.chunks).toHaveLength(2);
    res.emit("drain");
    expect(res.chunks).toHaveLength(3);
    expect(res.chunks[2]).toContain('"score":10000');
    res.emit("close");
    shutdown.abort();
  });
});

describe("board streams' ids and resume", () => {
  function routes() {
    const { deps, feeds } = fakeLiveDeps();
    const shutdown = new AbortController();
    const sse = createSseRoutes({ ...deps, streamQuota: new StreamQuota(0), heartbeatMs: 60_000, shutdownSignal: () => shutdown.signal });
    return { sse, feeds };
  }
  const frames = (res: StuckResponse) => res.chunks.join("").split("\n\n").filter(Boolean);

  it("seed 004's stream: its frames are the seed's (no id: line), and a resume point still holds back a current state", async () => {
    const { sse, feeds } = routes();
    const first = topUpdate({ bob: 3 }, 1, "9.all");
    const res = new StuckResponse();
    const req = {
      url: "/api/leaderboard/stream?resume=top:global@9.all~1",
      headers: { "last-event-id": `top:global@${positionToken(first.position!)}` },
      httpVersionMajor: 1,
    };
    await sse.leaderboard(req as unknown as Request, res as unknown as Response, {});
    expect(feeds.subscriptions.map((s) => [s.board, s.limit, s.resume])).toEqual([["global", 10, first.position]]);
    const next = topUpdate({ bob: 4 }, 2, "9.all");
    feeds.publish("global", next);
    expect(frames(res)[1]).toBe(`event: score:update\ndata: {"topUsers":[{"userId":"bob","score":4}],"timestamp":"2026-12-06T12:00:00.002Z"}`);
    res.emit("close");
  });

  it("a board's stream: each update has its id and epoch/version, and it resumes from ?resume=", async () => {
    const { sse, feeds } = routes();
    const first = topUpdate({ bob: 3 }, 1, "9.20261207T0000Z");
    const res = new StuckResponse();
    const req = {
      url: `/api/boards/laps/stream?limit=5&resume=${encodeURIComponent(`top:laps@${positionToken(first.position!)}`)}`,
      headers: {},
      httpVersionMajor: 1,
    };
    await sse.board(req as unknown as Request, res as unknown as Response, { boardId: "laps" });
    expect(feeds.subscriptions.map((s) => [s.board, s.limit, s.resume])).toEqual([["laps", 5, first.position]]);
    const next = topUpdate({ bob: 4 }, 2, "9.20261207T0000Z");
    feeds.publish("laps", next);
    const [event, data, id] = frames(res)[1]!.split("\n");
    expect([event, id]).toEqual(["event: board:update", `id: top:laps@${positionToken(next.position!)}`]);
    expect(JSON.parse(data!.slice("data: ".length))).toEqual({
      board: "laps",
      epoch: "9.20261207T0000Z",
      version: next.position!.version.toString(),
      entries: [{ rank: 1, userId: "bob", username: "bob", score: 4 }],
      asOf: "2026-12-06T12:00:00.002Z",
    });
    res.emit("close");
  });
});
