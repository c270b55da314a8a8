// Live standings and resumable streams through the whole mesh (issue 13):
// score → JetStream → ranking (BoardMoved, GetStandings, epochs) → push
// (WatchBoardMoves, positions) → the gateway's LiveService and streams.
import { create } from "@bufbuild/protobuf";
import { createClient, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { type StreamPosition, StreamPositionSchema } from "@scoreboard/gen/scoreboard/v1/leaderboard_pb";
import { type LiveUpdate, LiveService, type Subscription, SubscriptionSchema } from "@scoreboard/gen/scoreboard/v1/live_pb";
import { compareEpochs } from "@scoreboard/platform/stream-position";
import { startRedis, type RedisInstance } from "./harness/infra.js";
import { eventually, startMesh, type Mesh } from "./harness/mesh.js";
import { openWebSocket, readSse } from "./harness/stream-clients.js";

let redis: RedisInstance;
let mesh: Mesh;

beforeAll(async () => {
  // Its own Redis: the rebuild test empties it.
  redis = await startRedis();
  mesh = await startMesh({ ...inject("infra"), redisUrl: redis.url }, { STREAM_HEARTBEAT_MS: "1000" });
});
afterAll(async () => {
  await mesh?.stop();
  await redis?.stop();
});

const POINTS: Record<string, number> = { one: 1, ten: 10, hundred: 100 };
let actions = 0;
/** Grants `points` ("one", "ten", "hundred") to a user: each action is granted once per user, so each grant is an action of its own. */
async function grant(userId: string, points: keyof typeof POINTS): Promise<void> {
  actions += 1;
  const actionId = `live-${actions}`;
  await mesh.sql("INSERT INTO actions (action_id, points) VALUES ($1, $2)", [actionId, POINTS[points]]);
  const res = await mesh.submitAction(userId, actionId);
  expect(res.status, await res.clone().text()).toBe(200);
}

const connect = () => createConnectTransport({ baseUrl: mesh.urls.gateway, httpVersion: "2" });

/** A live stream read in the background (heartbeats left out) until stopped. */
function live(transport: Transport, token: string, subscriptions: Subscription[] | { standing: string; around?: number; resume?: StreamPosition }) {
  const abort = new AbortController();
  const updates: LiveUpdate[] = [];
  const client = createClient(LiveService, transport);
  const headers = { authorization: `Bearer ${token}` };
  const stream = Array.isArray(subscriptions)
    ? client.watch({ subscriptions }, { signal: abort.signal, headers })
    : client.watchStanding(
        { board: subscriptions.standing, around: subscriptions.around ?? 0, resume: subscriptions.resume },
        { signal: abort.signal, headers },
      );
  const done = (async () => {
    for await (const update of stream) if (!update.heartbeat) updates.push(update);
  })().catch((err: unknown) => {
    if (!abort.signal.aborted) throw err;
  });
  return {
    updates,
    of: (id: string) => updates.filter((u) => u.subscription === id),
    last: (id: string) => updates.findLast((u) => u.subscription === id),
    stop: async () => {
      abort.abort();
      await done;
    },
  };
}
const top = (board: string, limit = 10, resume?: StreamPosition) => create(SubscriptionSchema, { target: { case: "top", value: { board, limit } }, resume });
const standing = (board: string, around = 0, resume?: StreamPosition) =>
  create(SubscriptionSchema, { target: { case: "standing", value: { board, around } }, resume });
const rankIn = (update: LiveUpdate | undefined) => (update?.state.case === "standing" ? Number(update.state.value.entry?.rank ?? 0) : undefined);
const scoreIn = (update: LiveUpdate | undefined) => (update?.state.case === "standing" ? Number(update.state.value.entry?.score ?? 0) : undefined);

describe("WatchStanding", () => {
  it("tells a player their rank moved when another user passed them, with the neighbours around", async () => {
    await grant("ls-leader", "hundred");
    await grant("ls-me", "ten");
    await grant("ls-me", "ten");
    await grant("ls-chaser", "ten");
    const stream = live(connect(), await mesh.token("ls-me"), { standing: "global", around: 1 });
    try {
      // Once ranking applied the grants above.
      const first = await eventually(
        async () => (scoreIn(stream.last("standing:global")) === 20 ? stream.last("standing:global") : undefined),
        10_000,
        "the first standing",
      );
      const before = rankIn(first)!;
      expect(first.position?.epoch).toMatch(/^\d+\.all$/);
      await grant("ls-chaser", "ten");
      await grant("ls-chaser", "ten"); // 30: passes ls-me
      const moved = await eventually(
        async () => (rankIn(stream.last("standing:global")) === before + 1 ? stream.last("standing:global") : undefined),
        10_000,
        "the new rank",
      );
      const neighbours = moved.state.case === "standing" ? moved.state.value.neighbourhood.map((e) => e.userId) : [];
      expect(neighbours).toContain("ls-chaser");
      expect(neighbours).toContain("ls-me");
      expect(moved.position!.version).toBeGreaterThan(first.position!.version);
    } finally {
      await stream.stop();
    }
  });

  it("merges a burst: the watcher ends on the latest state, in fewer messages than changes", async () => {
    await grant("burst-me", "hundred");
    const stream = live(connect(), await mesh.token("burst-me"), { standing: "global" });
    try {
      const first = await eventually(
        async () => (scoreIn(stream.last("standing:global")) === 100 ? stream.last("standing:global") : undefined),
        10_000,
        "the first standing",
      );
      const before = rankIn(first)!;
      const passers = Array.from({ length: 20 }, (_, i) => `burst-passer-${i}`);
      // Each passes burst-me (100) with 101.
      await Promise.all(passers.map(async (userId) => grant(userId, "hundred")));
      await Promise.all(passers.map(async (userId) => grant(userId, "one")));
      const final = await eventually(
        async () => (rankIn(stream.last("standing:global")) === before + passers.length ? true : undefined),
        15_000,
        "the latest rank",
      );
      expect(final).toBe(true);
      // 40 grants moved the board; the watcher was told far fewer times (at most one per 100 ms).
      expect(stream.of("standing:global").length).toBeLessThan(passers.length);
    } finally {
      await stream.stop();
    }
  });
});

describe("Watch: one stream, many subscriptions", () => {
  it("carries two boards' tops and a standing, each message saying which", async () => {
    await grant("multi-me", "ten");
    const stream = live(connect(), await mesh.token("multi-me"), [top("global", 5), top("daily", 3), standing("global", 1)]);
    try {
      await eventually(async () => (["top:global", "top:daily", "standing:global"].every((id) => stream.last(id)) ? true : undefined), 10_000, "all three");
      expect(stream.last("top:daily")!.board).toBe("daily");
      expect(stream.last("top:global")!.state.case).toBe("top");
      expect(scoreIn(stream.last("standing:global"))).toBe(10);
      await grant("multi-me", "hundred");
      await eventually(async () => (scoreIn(stream.last("standing:global")) === 110 ? true : undefined), 10_000, "the standing's change");
      const onDaily = (update: LiveUpdate | undefined) => update?.state.case === "top" && update.state.value.entries.some((e) => e.userId === "multi-me");
      await eventually(async () => (onDaily(stream.last("top:daily")) ? true : undefined), 10_000, "the daily top's change");
    } finally {
      await stream.stop();
    }
  });

  it("is also served to plain gRPC clients", async () => {
    const stream = live(createGrpcTransport({ baseUrl: mesh.urls.gateway }), await mesh.token("multi-me"), [top("global", 5), standing("global")]);
    try {
      await eventually(async () => (stream.last("top:global") && stream.last("standing:global") ? true : undefined), 10_000, "both over gRPC");
    } finally {
      await stream.stop();
    }
  });
});

interface JsonMessage {
  subscription: string;
  board: string;
  kind: "top" | "standing";
  epoch: string;
  version: string;
  entries?: { userId: string; rank: number; score: number }[];
  entry?: { userId: string; rank: number; score: number } | null;
  neighbourhood?: { userId: string }[];
}

/** A live SSE stream of the gateway: its subscriptions' events (`connected` left out), the latest of one. */
function sse(path: string, headers: Record<string, string> = {}) {
  const stream = readSse<JsonMessage>(`${mesh.urls.gateway}${path}`, headers);
  return {
    opened: stream.opened,
    get events() {
      return stream.events.filter((e) => e.event !== "connected");
    },
    last: (id: string) => stream.events.findLast((e) => e.data.subscription === id)?.data,
    stop: stream.stop,
  };
}

/** A live WebSocket of the gateway: its JSON messages, the latest of one subscription. */
function ws(path: string, token: string) {
  const socket = openWebSocket<JsonMessage>(`${mesh.urls.gateway.replace("http", "ws")}${path}`, ["bearer", token]);
  return {
    messages: socket.messages,
    last: (id: string) => socket.messages.findLast((m) => m.subscription === id),
    close: () => socket.ws.close(),
  };
}

describe("the SSE and WebSocket dialects", () => {
  it("carry two boards' tops and a standing on one stream", async () => {
    await grant("dialect-me", "ten");
    const token = await mesh.token("dialect-me");
    const query = "subscribe=top:global/100&subscribe=top:daily/100&subscribe=standing:global/1";
    const events = sse(`/api/live?${query}`, { authorization: `Bearer ${token}` });
    const socket = ws(`/ws/live?${query}`, token);
    const ids = ["top:global", "top:daily", "standing:global"];
    try {
      expect((await events.opened).status).toBe(200);
      for (const [name, last] of [
        ["SSE", events.last],
        ["WebSocket", socket.last],
      ] as const) {
        await eventually(
          async () =>
            ids.every((id) => last(id)) && last("top:daily")!.entries!.some((e) => e.userId === "dialect-me") && last("standing:global")?.entry?.score === 10
              ? true
              : undefined,
          10_000,
          `${name}: all three`,
        );
        expect(last("top:daily")!.kind).toBe("top");
        expect(last("standing:global")!.neighbourhood!.map((e) => e.userId)).toContain("dialect-me");
      }
      await grant("dialect-me", "hundred");
      for (const last of [events.last, socket.last]) {
        await eventually(async () => (last("standing:global")?.entry?.score === 110 ? true : undefined), 10_000, "the standing's change");
      }
      // SSE ids carry every subscription's position so far.
      expect(
        events.events
          .at(-1)!
          .id!.split(" ")
          .map((item) => item.split("@")[0])
          .sort(),
      ).toEqual([...ids].sort());
    } finally {
      await events.stop();
      socket.close();
    }
  });

  it("SSE resumes from Last-Event-ID: current gets nothing, an old position the latest", async () => {
    await grant("sse-resume-me", "ten");
    const token = await mesh.token("sse-resume-me");
    const path = "/api/boards/global/standing?around=0";
    const first = sse(path, { authorization: `Bearer ${token}` });
    const shown = await eventually(async () => {
      const last = first.events.at(-1);
      return last?.data.entry?.score === 10 ? last : undefined;
    });
    await first.stop();
    const current = sse(path, { authorization: `Bearer ${token}`, "last-event-id": shown.id! });
    const older = shown.id!.replace(/~(\d+)$/, (_, v: string) => `~${BigInt(v) - 1n}`);
    const old = sse(path, { authorization: `Bearer ${token}`, "last-event-id": older });
    try {
      await eventually(async () => old.last("standing:global"), 10_000, "the latest state for an old position");
      expect(old.last("standing:global")!.version).toBe(shown.data.version);
      await new Promise((r) => setTimeout(r, 1_500));
      expect(current.events).toEqual([]);
    } finally {
      await current.stop();
      await old.stop();
    }
  });
});

describe("resuming", () => {
  it("a current position gets nothing until the next change; an old one gets the latest state at once", async () => {
    await grant("resume-me", "ten");
    const token = await mesh.token("resume-me");
    const first = live(connect(), token, [top("global", 100), standing("global")]);
    // Once both show the grant: the positions of the current states.
    const positions = await eventually(async () => {
      const t = first.last("top:global");
      const s = first.last("standing:global");
      const shown = t?.state.case === "top" && t.state.value.entries.some((e) => e.userId === "resume-me") && scoreIn(s) === 10;
      return shown ? { top: t.position!, standing: s!.position! } : undefined;
    });
    await first.stop();

    const current = live(connect(), token, [top("global", 100, positions.top), standing("global", 0, positions.standing)]);
    const old = live(connect(), token, [
      top("global", 100, create(StreamPositionSchema, { epoch: positions.top.epoch, version: positions.top.version - 1n })),
      standing("global", 0, create(StreamPositionSchema, { epoch: positions.standing.epoch, version: positions.standing.version - 1n })),
    ]);
    try {
      await eventually(async () => (old.last("top:global") && old.last("standing:global") ? true : undefined), 10_000, "the old position's latest state");
      expect(old.last("standing:global")!.position).toEqual(positions.standing);
      // Well past the merge interval and a heartbeat: nothing for a current position.
      await new Promise((r) => setTimeout(r, 1_500));
      expect(current.updates.map((u) => `${u.subscription} ${u.position?.epoch}~${u.position?.version}`)).toEqual([]);
      await grant("resume-me", "hundred");
      await eventually(async () => (scoreIn(current.last("standing:global")) === 110 ? true : undefined), 10_000, "the next change");
    } finally {
      await current.stop();
      await old.stop();
    }
  });

  it("a rebuild of the read model changes the epoch, and every stream is sent its state again in the new epoch", async () => {
    await grant("rebuild-me", "ten");
    const stream = live(connect(), await mesh.token("rebuild-me"), [top("global", 10), standing("global")]);
    try {
      const before = await eventually(async () => {
        const t = stream.last("top:global");
        const s = stream.last("standing:global");
        return t && scoreIn(s) === 10 ? { top: t, standing: s! } : undefined;
      });
      const client = new Redis(redis.url);
      await client.flushall();
      client.disconnect();
      await mesh.kill("ranking");
      await mesh.start("ranking");
      for (const id of ["top:global", "standing:global"]) {
        const after = await eventually(
          async () => {
            const last = stream.last(id);
            return last?.position && compareEpochs(last.position.epoch, (id === "top:global" ? before.top : before.standing).position!.epoch) > 0
              ? last
              : undefined;
          },
          30_000,
          `${id} in the new epoch`,
        );
        // The same board, rebuilt from PostgreSQL.
        expect(after.state).toEqual((id === "top:global" ? before.top : before.standing).state);
      }
    } finally {
      await stream.stop();
    }
  });
});
