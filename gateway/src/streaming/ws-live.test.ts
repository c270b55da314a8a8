import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { positionToken } from "@scoreboard/platform/stream-position";
import { createLogger } from "@scoreboard/platform/logger";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { WebSocket } from "ws";
import { openWebSocket } from "../../../test/harness/stream-clients.js";
import { EdgePolicy } from "../edge-policy.js";
import { bearerFor, fakeLiveDeps, standingState, topUpdate } from "./live-fakes.js";
import type { LiveDeps } from "./live.js";
import { createWebSocketUpgrade } from "./ws.js";

// The WebSocket dialects of live streams and the boards' resume, through a
// real socket: the upgrade handler on an HTTP server, fakes behind it.

let server: Server;
let base: string;
const fakes = fakeLiveDeps();
const { feeds, standings } = fakes;
const shutdown = new AbortController();

beforeAll(async () => {
  const deps: LiveDeps = fakes.deps;
  server = createServer();
  server.on(
    "upgrade",
    createWebSocketUpgrade({
      feeds: deps.feeds,
      verifier: deps.verifier,
      readGate: deps.readGate,
      shutdownSignal: () => shutdown.signal,
      logger: createLogger("ws-live-test", "silent"),
      heartbeatMs: 60_000,
      edge: new EdgePolicy([]),
      streamQuota: deps.streamQuota,
      guard: deps.guard,
      boards: deps.boards,
      live: deps,
    }),
  );
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  base = `ws://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  shutdown.abort();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

const connect = (path: string, protocols?: string[]) => openWebSocket(base + path, protocols);

async function until(probe: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !probe(); i++) await new Promise((resolve) => setTimeout(resolve, 5));
  expect(probe()).toBe(true);
}

async function closed(ws: WebSocket): Promise<void> {
  ws.close();
  await until(() => feeds.subscriptions.length === 0 && standings.subscriptions.length === 0);
}

describe("/ws/live", () => {
  it("carries two boards' tops and the caller's standing (token as the subprotocol pair), each message live-json's", async () => {
    const socket = connect("/ws/live?subscribe=top:global/3&subscribe=top:laps&subscribe=standing:laps/1", ["bearer", (await bearerFor("alice")).slice(7)]);
    await socket.opened;
    expect(socket.ws.protocol).toBe("bearer");
    expect(feeds.subscriptions.map(({ board, limit }) => [board, limit])).toEqual([
      ["global", 3],
      ["laps", 10],
    ]);
    feeds.publish("global", topUpdate({ bob: 30 }, 1));
    feeds.publish("laps", topUpdate({ cat: 7 }, 2));
    const alice = standingState("alice", 4, 12, 3);
    standings.publish("laps", "alice", alice);
    await until(() => socket.messages.length === 3);
    expect(socket.messages).toMatchObject([
      { subscription: "top:global", board: "global", kind: "top", epoch: "0.all", entries: [{ rank: 1, userId: "bob", score: 30 }] },
      { subscription: "top:laps", board: "laps", kind: "top", entries: [{ userId: "cat", score: 7 }] },
      { subscription: "standing:laps", kind: "standing", version: alice.position.version.toString(), entry: { rank: 4, userId: "alice", score: 12 } },
    ]);
    await closed(socket.ws);
  });

  it("resumes each subscription from ?resume=", async () => {
    const global = topUpdate({ bob: 30 }, 1);
    const resume = encodeURIComponent(`top:global@${positionToken(global.position!)} top:laps@nonsense`);
    const socket = connect(`/ws/live?subscribe=top:global&subscribe=top:laps&resume=${resume}`);
    await socket.opened;
    expect(feeds.subscriptions.map((s) => s.resume)).toEqual([global.position, undefined]);
    await closed(socket.ws);
  });

  it("refuses a standing without a token (401) and a bad query (400) before the handshake", async () => {
    await expect(connect("/ws/live?subscribe=top:global&subscribe=standing:laps").opened).rejects.toThrow(
      /HTTP 401 \{"success":false,"code":"unauthenticated","message":"missing bearer token"\}/,
    );
    await expect(connect("/ws/live?subscribe=top:global&subscribe=top:global").opened).rejects.toThrow(/HTTP 400 .*used twice/);
    await expect(connect("/ws/live").opened).rejects.toThrow(/HTTP 400 .*name what to watch/);
    expect(feeds.subscriptions).toHaveLength(0);
  });
});

describe("/ws/boards/{id}/standing and /ws/boards/{id}", () => {
  it("streams the caller's standing with ?around= (token as ?access_token=)", async () => {
    const token = (await bearerFor("alice")).slice(7);
    const socket = connect(`/ws/boards/laps/standing?around=2&access_token=${token}`);
    await socket.opened;
    expect(standings.subscriptions.map(({ board, userId, around }) => [board, userId, around])).toEqual([["laps", "alice", 2]]);
    standings.publish("laps", "alice", standingState("alice", 1, 99, 1));
    await until(() => socket.messages.length === 1);
    expect(socket.messages[0]).toMatchObject({ subscription: "standing:laps", board: "laps", kind: "standing", entry: { rank: 1, score: 99 } });
    await closed(socket.ws);
    await expect(connect("/ws/boards/laps/standing").opened).rejects.toThrow(/HTTP 401/);
  });

  it("a board's top carries epoch and version, and resumes from ?resume=", async () => {
    const before = topUpdate({ bob: 30 }, 1, "7.20261207T0000Z");
    const socket = connect(`/ws/boards/laps?limit=5&resume=${encodeURIComponent(`top:laps@${positionToken(before.position!)}`)}`);
    await socket.opened;
    expect(feeds.subscriptions.map(({ board, limit, resume }) => [board, limit, resume])).toEqual([["laps", 5, before.position]]);
    const next = topUpdate({ bob: 31 }, 2, "7.20261207T0000Z");
    feeds.publish("laps", next);
    await until(() => socket.messages.length === 1);
    expect(socket.messages[0]).toEqual({
      board: "laps",
      epoch: "7.20261207T0000Z",
      version: next.position!.version.toString(),
      entries: [{ rank: 1, userId: "bob", username: "bob", score: 31 }],
      asOf: "2026-12-06T12:00:00.002Z",
    });
    await closed(socket.ws);
  });
});
