import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { Code, ConnectError, createClient, createRouterTransport } from "@connectrpc/connect";
import { create, toBinary } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import type { Msg, NatsConnection, NatsError, Status } from "nats";
import { BoardChangedSchema } from "@scoreboard/gen/scoreboard/v1/events_pb";
import { LeaderboardEntrySchema, type LeaderboardEntry } from "@scoreboard/gen/scoreboard/v1/leaderboard_pb";
import { PushService, type LeaderboardUpdate } from "@scoreboard/gen/scoreboard/v1/push_pb";
import { createLogger } from "@scoreboard/platform/logger";
import { Subjects } from "@scoreboard/platform/nats";
import { TopNFanout, type BoardSnapshot } from "./fanout.js";
import { createPushService } from "./service.js";

type Callback = (err: NatsError | null, msg: Msg) => void;

/** Just what TopNFanout uses of a NATS connection: one subscription and a status feed that stays quiet. */
class FakeNats {
  readonly subscriptions: Array<{ subject: string; callback: Callback; unsubscribed: boolean }> = [];

  subscribe(subject: string, options: { callback: Callback }) {
    const sub = { subject, callback: options.callback, unsubscribed: false };
    this.subscriptions.push(sub);
    return {
      unsubscribe: () => {
        sub.unsubscribed = true;
      },
    };
  }

  status(): AsyncIterable<Status> {
    return { [Symbol.asyncIterator]: () => ({ next: () => new Promise<IteratorResult<Status>>(() => {}) }) };
  }

  /** Delivers a BoardChanged message as ranking would publish it. */
  boardChanged(board: string, top: LeaderboardEntry[]): void {
    const data = toBinary(BoardChangedSchema, create(BoardChangedSchema, { board, top, asOf: timestampFromMs(Date.now()) }));
    for (const sub of this.subscriptions) {
      if (!sub.unsubscribed) sub.callback(null, { subject: Subjects.boardChanged(board), data } as Msg);
    }
  }
}

/** A top list of `count` users; `bump` gives one user a different score. */
function top(count: number, bump?: { userId: string; score: number }): LeaderboardEntry[] {
  return Array.from({ length: count }, (_, i) =>
    create(LeaderboardEntrySchema, {
      rank: BigInt(i + 1),
      userId: `user-${i + 1}`,
      username: `User ${i + 1}`,
      score: BigInt(bump?.userId === `user-${i + 1}` ? bump.score : 1000 - i),
    }),
  );
}

const tick = (ms = 10) => new Promise((resolve) => setTimeout(resolve, ms));

function within<T>(promise: Promise<T>, ms = 200): Promise<T | "timeout"> {
  return Promise.race([promise, new Promise<"timeout">((resolve) => setTimeout(() => resolve("timeout"), ms))]);
}

let nats: FakeNats;
let fanout: TopNFanout;
let loads: string[];
let snapshotOf: (board: string) => Promise<BoardSnapshot>;
const aborts: AbortController[] = [];

beforeEach(() => {
  nats = new FakeNats();
  loads = [];
  snapshotOf = async () => ({ top: top(15), asOf: timestampFromMs(Date.now()) });
  const source = (board: string) => {
    loads.push(board);
    return snapshotOf(board);
  };
  // No coalescing window here; its own test below uses one.
  fanout = new TopNFanout(source, createLogger("push-test", "silent"), 3_600_000, 0);
  fanout.start(nats as unknown as NatsConnection);
});

afterEach(() => {
  for (const a of aborts.splice(0)) a.abort();
  fanout.stop();
});

function open(req: { board?: string; limit?: number } = {}) {
  const client = createClient(
    PushService,
    createRouterTransport((router) => router.service(PushService, createPushService(fanout))),
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

  it("does not let a slow periodic refresh roll back a newer change", async () => {
    const old = timestampFromMs(Date.now() - 1_000);
    let releaseRefresh!: (snapshot: BoardSnapshot) => void;
    let calls = 0;
    const refreshing = new TopNFanout(
      () => {
        calls += 1;
        if (calls === 1) return Promise.resolve({ top: top(3), asOf: old });
        return new Promise<BoardSnapshot>((resolve) => (releaseRefresh = resolve));
      },
      createLogger("push-test", "silent"),
      20,
    );
    refreshing.start(nats as unknown as NatsConnection);
    const seen: string[][] = [];
    const unwatch = await refreshing.watch("global", (snapshot) => seen.push(snapshot.top.map((e) => `${e.userId}=${e.score}`)));
    await tick(30); // the refresh is now in flight
    nats.boardChanged("global", top(3, { userId: "user-3", score: 5_000 }));
    releaseRefresh({ top: top(3), asOf: old });
    await tick(5);
    expect(seen.at(-1)).toContain("user-3=5000");
    unwatch();
    refreshing.stop();
  });

  it("coalesces a burst to at most one message per window per board, ending on the latest", async () => {
    const coalescing = new TopNFanout(snapshotOf, createLogger("push-test", "silent"), 3_600_000, 100);
    coalescing.start(nats as unknown as NatsConnection);
    const seen: string[][] = [];
    const unwatch = await coalescing.watch("global", (snapshot) => seen.push(snapshot.top.map((e) => `${e.userId}=${e.score}`)));
    const before = seen.length;
    for (let i = 1; i <= 30; i += 1) nats.boardChanged("global", top(3, { userId: "user-1", score: 20_000 + i }));
    await tick(150);
    const burst = seen.slice(before);
    expect(burst.length).toBeLessThanOrEqual(2);
    expect(burst.at(-1)).toContain("user-1=20030");
    unwatch();
    coalescing.stop();
  });

  it("sends a change at once after a refresh that found nothing new (the refresh does not use up the window)", async () => {
    const sameTop = top(3);
    const refreshing = new TopNFanout(
      () => Promise.resolve({ top: sameTop, asOf: timestampFromMs(Date.now()) }),
      createLogger("push-test", "silent"),
      25, // refresh often
      1_000, // a window long enough to see
    );
    refreshing.start(nats as unknown as NatsConnection);
    const seen: Array<{ at: number; top: string[] }> = [];
    const unwatch = await refreshing.watch("global", (snapshot) => seen.push({ at: Date.now(), top: snapshot.top.map((e) => `${e.userId}=${e.score}`) }));
    await tick(1_100); // the first snapshot's window has passed; refreshes found the same top meanwhile
    expect(seen).toHaveLength(1);
    const changedAt = Date.now();
    nats.boardChanged("global", top(3, { userId: "user-2", score: 7_000 }));
    expect(seen).toHaveLength(2);
    expect(seen[1]!.top).toContain("user-2=7000");
    expect(seen[1]!.at - changedAt).toBeLessThan(500);
    unwatch();
    refreshing.stop();
  });

  it("sends a heartbeat when nothing changes for a while", async () => {
    const client = createClient(
      PushService,
      createRouterTransport((router) => router.service(PushService, createPushService(fanout, 50))),
    );
    const abort = new AbortController();
    aborts.push(abort);
    const stream = client.watchLeaderboard({ limit: 3 }, { signal: abort.signal })[Symbol.asyncIterator]();
    const first = (await stream.next()).value as LeaderboardUpdate;
    expect(first.heartbeat).toBe(false);
    const beat = (await stream.next()).value as LeaderboardUpdate;
    expect(beat).toMatchObject({ heartbeat: true, sequence: 2n, entries: [] });
  });
});
