import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { Code, ConnectError, createClient, createRouterTransport } from "@connectrpc/connect";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import type { StreamPosition } from "@scoreboard/gen/scoreboard/v1/leaderboard_pb";
import { PushService, type LeaderboardUpdate, type WatchLeaderboardRequestSchema } from "@scoreboard/gen/scoreboard/v1/push_pb";
import { createLogger } from "@scoreboard/platform/logger";
import { Subjects } from "@scoreboard/platform/nats";
import { positionOf } from "@scoreboard/platform/stream-position";
import { BoardMovesRelay } from "./board-moves.js";
import { FakeNats, top } from "./fake-nats.js";
import { TopNFanout, type BoardSnapshot } from "./fanout.js";
import { createPushService } from "./service.js";

const tick = (ms = 10) => new Promise((resolve) => setTimeout(resolve, ms));

function within<T>(promise: Promise<T>, ms = 200): Promise<T | "timeout"> {
  return Promise.race([promise, new Promise<"timeout">((resolve) => setTimeout(() => resolve("timeout"), ms))]);
}

const EPOCH = "1000.all";

let nats: FakeNats;
let fanout: TopNFanout;
let moves: BoardMovesRelay;
let loads: string[];
let snapshotOf: (board: string) => Promise<BoardSnapshot>;
const aborts: AbortController[] = [];

beforeEach(() => {
  nats = new FakeNats();
  loads = [];
  snapshotOf = async () => ({ top: top(15), asOf: timestampFromMs(Date.now()), epoch: EPOCH });
  const source = (board: string) => {
    loads.push(board);
    return snapshotOf(board);
  };
  // No coalescing window here; its own test below uses one.
  fanout = new TopNFanout(source, createLogger("push-test", "silent"), 3_600_000, 0);
  fanout.start(nats.connection);
  moves = new BoardMovesRelay(fanout, createLogger("push-test", "silent"));
  moves.start(nats.connection);
});

afterEach(() => {
  for (const a of aborts.splice(0)) a.abort();
  moves.stop();
  fanout.stop();
});

function open(req: MessageInitShape<typeof WatchLeaderboardRequestSchema> = {}, heartbeatMs?: number) {
  const client = createClient(
    PushService,
    createRouterTransport((router) => router.service(PushService, createPushService(fanout, moves, { heartbeatMs }))),
  );
  const abort = new AbortController();
  aborts.push(abort);
  const stream = client.watchLeaderboard(req, { signal: abort.signal })[Symbol.asyncIterator]();
  const next = async (): Promise<LeaderboardUpdate> => {
    const result = await stream.next();
    if (result.done) throw new Error("stream ended");
    return result.value;
  };
  return { stream, next, abort };
}

const users = (update: LeaderboardUpdate) => update.entries.map((e) => `${e.userId}=${e.score}`);

describe("WatchLeaderboard", () => {
  it("subscribes to every board's changes", () => {
    expect(nats.subscriptions.map((s) => s.subject)).toEqual([Subjects.allBoardsChanged]);
  });

  it("sends the current top N at once with sequence 1", async () => {
    const w = open({ limit: 10 });
    const first = await w.next();
    expect(first.sequence).toBe(1n);
    expect(first.entries).toHaveLength(10);
    expect(first.entries[0]).toMatchObject({ rank: 1n, userId: "user-1", score: 1000n });
    expect(first.asOf).toBeDefined();
    expect(loads).toEqual(["global"]);
    expect(fanout.watcherCount).toBe(1);
  });

  it("defaults to 10 entries of the global board", async () => {
    const first = await open().next();
    expect(first.entries).toHaveLength(10);
    expect(loads).toEqual(["global"]);
  });

  it("sends a change to the watched top N with the next sequence", async () => {
    const w = open({ limit: 10 });
    await w.next();
    nats.boardChanged("global", top(15, { userId: "user-3", score: 5000 }));
    const second = await w.next();
    expect(second.sequence).toBe(2n);
    expect(users(second)).toContain("user-3=5000");
  });

  it("sends nothing for a change outside the top N", async () => {
    const w = open({ limit: 10 });
    await w.next();
    const pending = w.next(); // the client is reading
    nats.boardChanged("global", top(15, { userId: "user-11", score: 1 }));
    expect(await within(pending)).toBe("timeout");

    nats.boardChanged("global", top(15, { userId: "user-2", score: 2000 }));
    const next = await pending;
    expect(next.sequence).toBe(2n);
    expect(users(next)).toContain("user-2=2000");
  });

  it("sends nothing for a change of another board", async () => {
    const w = open({ board: "weekly", limit: 5 });
    expect((await w.next()).entries).toHaveLength(5);
    const pending = w.next();
    nats.boardChanged("global", top(15, { userId: "user-1", score: 1 }));
    expect(await within(pending)).toBe("timeout");
    nats.boardChanged("weekly", top(15, { userId: "user-1", score: 1 }));
    expect(users(await pending)).toContain("user-1=1");
  });

  it("gives a slow client only the latest state, not a queue of every change", async () => {
    const w = open({ limit: 10 });
    expect((await w.next()).sequence).toBe(1n);
    for (let i = 1; i <= 50; i += 1) {
      nats.boardChanged("global", top(15, { userId: "user-1", score: 10_000 + i }));
      await tick(1); // let the server run between changes: it must not queue them
    }
    const next = await w.next();
    expect(users(next)).toContain("user-1=10050");
    expect(next.sequence).toBe(2n);
    expect(await within(w.next())).toBe("timeout");
  });

  it("shares one snapshot load between streams of the same board", async () => {
    const [a, b] = [open({ limit: 3 }), open({ limit: 10 })];
    expect((await a.next()).entries).toHaveLength(3);
    expect((await b.next()).entries).toHaveLength(10);
    expect(loads).toEqual(["global"]);
    expect(fanout.watcherCount).toBe(2);
  });

  it("stops watching when the client cancels", async () => {
    const w = open({ limit: 10 });
    await w.next();
    expect(fanout.watcherCount).toBe(1);
    const pending = w.stream.next();
    await tick();
    w.abort.abort();
    const err = await pending.then(
      () => undefined,
      (e: unknown) => ConnectError.from(e),
    );
    expect(err?.code).toBe(Code.Canceled);
    await tick();
    expect(fanout.watcherCount).toBe(0);
    // The board is forgotten: the next watcher loads a fresh snapshot.
    await open().next();
    expect(loads).toEqual(["global", "global"]);
  });

  it("fails the stream with the snapshot source's error and leaves no watcher", async () => {
    snapshotOf = async () => {
      throw new ConnectError("ranking is unavailable", Code.Unavailable);
    };
    const err = await open()
      .next()
      .catch((e: unknown) => ConnectError.from(e));
    expect(err).toBeInstanceOf(ConnectError);
    expect((err as ConnectError).code).toBe(Code.Unavailable);
    expect(fanout.watcherCount).toBe(0);
  });

  it.each([
    ["limit 101", { limit: 101 }],
    ["negative limit", { limit: -5 }],
    ["invalid board", { board: "BAD board" }],
  ])("rejects %s with INVALID_ARGUMENT", async (_name, req) => {
    const err = await open(req)
      .next()
      .catch((e: unknown) => ConnectError.from(e));
    expect((err as ConnectError).code).toBe(Code.InvalidArgument);
    expect(loads).toEqual([]);
  });

  it("sends a heartbeat when nothing changes for a while", async () => {
    const w = open({ limit: 3 }, 50);
    expect((await w.next()).heartbeat).toBe(false);
    const beat = await w.next();
    expect(beat).toMatchObject({ heartbeat: true, sequence: 2n, entries: [] });
    expect(beat.position).toBeUndefined();
  });
});

describe("WatchLeaderboard positions", () => {
  it("gives every update the position of the snapshot it shows: the epoch and asOf's microseconds", async () => {
    const w = open({ limit: 5 });
    const first = await w.next();
    expect(first.position).toEqual(positionOf(EPOCH, first.asOf));
    expect(first.position!.version).toBe(first.asOf!.seconds * 1_000_000n + BigInt(Math.floor(first.asOf!.nanos / 1_000)));
    nats.boardChanged("global", top(15, { userId: "user-2", score: 2_000 }), { epoch: EPOCH, asOfMs: Date.now() + 5 });
    const second = await w.next();
    expect(second.position).toEqual(positionOf(EPOCH, second.asOf));
    expect(second.position!.version).toBeGreaterThan(first.position!.version);
  });

  it("resends an equal top when the epoch changes, even with an older asOf, and ignores the older epoch after", async () => {
    const w = open({ limit: 5 });
    const first = await w.next();
    nats.boardChanged("global", top(15), { epoch: "2000.all", asOfMs: Date.now() - 60_000 });
    const rebuilt = await w.next();
    expect(rebuilt.entries).toEqual(first.entries);
    expect(rebuilt).toMatchObject({ sequence: 2n, position: { epoch: "2000.all" } });

    const pending = w.next();
    nats.boardChanged("global", top(15, { userId: "user-1", score: 9_999 }), { epoch: EPOCH, asOfMs: Date.now() + 1_000 });
    expect(await within(pending)).toBe("timeout");
    nats.boardChanged("global", top(15, { userId: "user-1", score: 8_888 }), { epoch: "2000.all" });
    expect(users(await pending)).toContain("user-1=8888");
  });

  it("leaves the first state out for a client resuming from it; heartbeats and the next change still come", async () => {
    const current = (await open({ limit: 5 }).next()).position!;
    const w = open({ limit: 5, resume: current }, 50);
    expect(await w.next()).toMatchObject({ heartbeat: true, sequence: 1n });
    nats.boardChanged("global", top(15, { userId: "user-4", score: 4_000 }), { epoch: EPOCH });
    const next = await w.next();
    expect(next).toMatchObject({ heartbeat: false, sequence: 2n });
    expect(users(next)).toContain("user-4=4000");
  });

  it.each([
    ["an older version", (p: StreamPosition) => ({ epoch: p.epoch, version: p.version - 1n })],
    ["an older epoch", (p: StreamPosition) => ({ epoch: "999.all", version: p.version + 10_000_000n })],
    ["no position", () => ({ epoch: "", version: 0n })],
  ])("sends the latest state at once to a client resuming from %s", async (_name, resumeOf) => {
    const current = (await open({ limit: 5 }).next()).position!;
    const first = await open({ limit: 5, resume: { ...resumeOf(current) } }).next();
    expect(first).toMatchObject({ sequence: 1n, heartbeat: false, position: current });
  });

  it("sends a client ahead of this replica nothing until a state newer than its position", async () => {
    const current = (await open({ limit: 5 }).next()).position!;
    const aheadMs = Number(current.version / 1_000n) + 1_000;
    const w = open({ limit: 5, resume: { epoch: EPOCH, version: BigInt(aheadMs) * 1_000n } });
    const pending = w.next();
    nats.boardChanged("global", top(15, { userId: "user-5", score: 5_000 }), { epoch: EPOCH, asOfMs: aheadMs - 500 });
    expect(await within(pending)).toBe("timeout");
    nats.boardChanged("global", top(15, { userId: "user-5", score: 5_500 }), { epoch: EPOCH, asOfMs: aheadMs + 500 });
    const next = await pending;
    expect(next.sequence).toBe(1n);
    expect(users(next)).toContain("user-5=5500");
  });
});
