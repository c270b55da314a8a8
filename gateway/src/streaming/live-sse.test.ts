import { EventEmitter } from "node:events";
import { positionToken } from "@scoreboard/platform/stream-position";
import { describe, expect, it } from "vitest";
import type { Request, Response } from "../http.js";
import { bearerFor, fakeLiveDeps, standingState, topUpdate } from "./live-fakes.js";
import { createLiveSseRoutes } from "./live-sse.js";

/** A response that takes `room` writes (unbounded by default), then is full until `drain`. */
class FakeResponse extends EventEmitter {
  status = 0;
  headers: Record<string, string> = {};
  readonly chunks: string[] = [];
  body = "";
  headersSent = false;
  constructor(private room = Number.POSITIVE_INFINITY) {
    super();
  }
  writeHead(status: number, headers: Record<string, string>) {
    this.status = status;
    this.headers = headers;
    this.headersSent = true;
    return this;
  }
  write(chunk: string | Buffer) {
    this.chunks.push(String(chunk));
    this.room -= 1;
    return this.room > 0;
  }
  end(text?: string) {
    this.body = text ?? "";
  }
  drain(room = Number.POSITIVE_INFINITY) {
    this.room = room;
    this.emit("drain");
  }
  /** The SSE events written, parsed. */
  get events(): { event?: string; id?: string; data?: unknown; comment?: string }[] {
    return this.chunks
      .join("")
      .split("\n\n")
      .filter((frame) => frame !== "")
      .map((frame) => {
        const field = (name: string) => new RegExp(`^${name}: (.*)$`, "m").exec(frame)?.[1];
        const data = field("data");
        return { event: field("event"), id: field("id"), data: data === undefined ? undefined : JSON.parse(data), comment: field("") };
      });
  }
}

function request(url: string, headers: Record<string, string> = {}): Request {
  return { url, headers, httpVersionMajor: 1 } as unknown as Request;
}

async function open(url: string, headers: Record<string, string> = {}, res = new FakeResponse(), heartbeatMs = 60_000) {
  const fakes = fakeLiveDeps(0, heartbeatMs);
  const shutdown = new AbortController();
  const routes = createLiveSseRoutes(fakes.deps, () => shutdown.signal);
  const boardId = /^\/api\/boards\/([^/]+)\/standing/.exec(url)?.[1];
  await (boardId
    ? routes.standing(request(url, headers), res as unknown as Response, { boardId })
    : routes.live(request(url, headers), res as unknown as Response, {}));
  return { ...fakes, res, shutdown };
}

const THREE = "/api/live?subscribe=top:global/3&subscribe=top:laps&subscribe=standing:laps/1";

describe("GET /api/live (SSE)", () => {
  it("carries two boards' tops and the caller's standing, each frame with the positions sent so far as its id", async () => {
    const { res, feeds, standings } = await open(THREE, { authorization: await bearerFor("alice") });
    expect(res.status).toBe(200);
    expect(res.headers["content-type"]).toBe("text/event-stream; charset=utf-8");
    expect(res.chunks[0]).toMatch(/^retry: 2000\n/);
    expect(feeds.subscriptions.map(({ board, limit }) => [board, limit])).toEqual([
      ["global", 3],
      ["laps", 10],
    ]);
    expect(standings.subscriptions.map(({ board, userId, around }) => [board, userId, around])).toEqual([["laps", "alice", 1]]);

    const global = topUpdate({ bob: 30, amy: 20 }, 1);
    const laps = topUpdate({ cat: 7 }, 2, "0.20261207T0000Z");
    const alice = standingState("alice", 4, 12, 3, "0.20261207T0000Z");
    feeds.publish("global", global);
    feeds.publish("laps", laps);
    standings.publish("laps", "alice", alice);

    const [connected, ...events] = res.events;
    expect(connected).toMatchObject({ event: "connected", data: { subscriptions: ["top:global", "top:laps", "standing:laps"] } });
    const g = `top:global@${positionToken(global.position!)}`;
    const l = `top:laps@${positionToken(laps.position!)}`;
    const s = `standing:laps@${positionToken(alice.position)}`;
    expect(events.map(({ event, id }) => [event, id])).toEqual([
      ["top", g],
      ["top", `${g} ${l}`],
      ["standing", `${g} ${l} ${s}`],
    ]);
    expect(events[0]!.data).toEqual({
      subscription: "top:global",
      board: "global",
      kind: "top",
      epoch: "0.all",
      version: global.position!.version.toString(),
      asOf: "2026-12-06T12:00:00.001Z",
      entries: [
        { rank: 1, userId: "bob", username: "bob", score: 30 },
        { rank: 2, userId: "amy", username: "amy", score: 20 },
      ],
    });
    expect(events[2]!.data).toEqual({
      subscription: "standing:laps",
      board: "laps",
      kind: "standing",
      epoch: "0.20261207T0000Z",
      version: alice.position.version.toString(),
      asOf: "2026-12-06T12:00:00.003Z",
      entry: { rank: 4, userId: "alice", username: "alice", score: 12 },
      neighbourhood: [
        { rank: 3, userId: "above", username: "above", score: 22 },
        { rank: 4, userId: "alice", username: "alice", score: 12 },
      ],
    });
    res.emit("close");
    expect(feeds.subscriptions).toHaveLength(0);
    expect(standings.subscriptions).toHaveLength(0);
  });

  it("resumes each subscription from Last-Event-ID, and the ids keep the positions it came with", async () => {
    const global = topUpdate({ bob: 30 }, 1);
    const alice = standingState("alice", 4, 12, 3);
    const lastEventId = `top:global@${positionToken(global.position!)} standing:laps@${positionToken(alice.position)} top:laps@junk`;
    const { res, feeds, standings } = await open(`${THREE}&resume=top:global@0.all~1`, {
      authorization: await bearerFor("alice"),
      "last-event-id": lastEventId,
    });
    expect(feeds.subscriptions.map((s) => s.resume)).toEqual([global.position, undefined]);
    expect(standings.subscriptions.map((s) => s.resume)).toEqual([alice.position]);
    const laps = topUpdate({ cat: 7 }, 2);
    feeds.publish("laps", laps);
    expect(res.events[1]!.id).toBe(
      `top:global@${positionToken(global.position!)} standing:laps@${positionToken(alice.position)} top:laps@${positionToken(laps.position!)}`,
    );
    res.emit("close");
  });

  it("gives a client that stops reading the latest state of each subscription when it drains", async () => {
    // Room for the connected event and one frame, then full.
    const { res, feeds, standings } = await open(THREE, { authorization: await bearerFor("alice") }, new FakeResponse(2));
    feeds.publish("global", topUpdate({ bob: 1 }, 1));
    for (let i = 2; i <= 500; i++) {
      feeds.publish("laps", topUpdate({ cat: i }, i));
      standings.publish("laps", "alice", standingState("alice", 4, i, i));
      feeds.publish("global", topUpdate({ bob: i }, i));
    }
    expect(res.events).toHaveLength(2);
    res.drain();
    const after = res.events.slice(2);
    // One frame per subscription, the newest, in the order they first waited.
    expect(after.map((e) => (e.data as { subscription: string }).subscription)).toEqual(["top:laps", "standing:laps", "top:global"]);
    expect(after.map((e) => JSON.stringify(e.data))).toEqual([
      expect.stringContaining('"score":500'),
      expect.stringContaining('"entry":{"rank":4,"userId":"alice","username":"alice","score":500}'),
      expect.stringContaining('"score":500'),
    ]);
    res.emit("close");
  });

  it("sends heartbeat comments while nothing changes", async () => {
    const { res } = await open("/api/live?subscribe=top:global", {}, new FakeResponse(), 20);
    await new Promise((resolve) => setTimeout(resolve, 70));
    expect(res.chunks.slice(1)).toContain(": heartbeat\n\n");
    res.emit("close");
  });

  it("refuses a standing without a token with 401, and a bad query with 400, as JSON", async () => {
    const standing = await open(THREE);
    expect(standing.res.status).toBe(401);
    expect(JSON.parse(standing.res.body)).toEqual({ success: false, code: "unauthenticated", message: "missing bearer token" });
    expect(standing.feeds.subscriptions).toHaveLength(0);

    const bad = await open("/api/live?subscribe=top:global/0x10");
    expect(bad.res.status).toBe(400);
    expect(JSON.parse(bad.res.body)).toEqual({ success: false, code: "invalid_argument", message: "subscribe=top:global/0x10: limit must be an integer" });

    // Tops alone need no token (reads are public here).
    const tops = await open("/api/live?subscribe=top:global&subscribe=top:laps");
    expect(tops.res.status).toBe(200);
    tops.res.emit("close");
  });
});

describe("GET /api/boards/{id}/standing (SSE)", () => {
  it("streams the caller's standing on the board with ?around=, resumable", async () => {
    const first = standingState("alice", 2, 50, 1);
    const { res, standings } = await open("/api/boards/laps/standing?around=2", {
      authorization: await bearerFor("alice"),
      "last-event-id": `standing:laps@${positionToken(first.position)}`,
    });
    expect(standings.subscriptions.map(({ board, userId, around, resume }) => [board, userId, around, resume])).toEqual([["laps", "alice", 2, first.position]]);
    const next = standingState("alice", 1, 60, 2);
    standings.publish("laps", "alice", next);
    expect(res.events).toMatchObject([
      { event: "connected", data: { subscriptions: ["standing:laps"] } },
      { event: "standing", id: `standing:laps@${positionToken(next.position)}`, data: { subscription: "standing:laps", entry: { rank: 1, score: 60 } } },
    ]);
    res.emit("close");
    expect((await open("/api/boards/laps/standing")).res.status).toBe(401);
    expect((await open("/api/boards/laps/standing?around=11", { authorization: await bearerFor("alice") })).res.status).toBe(400);
  });
});
