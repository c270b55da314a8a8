// TopNFanout on its own: which snapshot it keeps (epochs, asOf) and when it tells its watchers.
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { createLogger } from "@scoreboard/platform/logger";
import { FakeNats, top } from "./fake-nats.js";
import { TopNFanout, type BoardSnapshot } from "./fanout.js";

const EPOCH = "1000.all";
const logger = createLogger("push-fanout-test", "silent");
const tick = (ms = 10) => new Promise((resolve) => setTimeout(resolve, ms));
const current = async (): Promise<BoardSnapshot> => ({ top: top(3), asOf: timestampFromMs(Date.now()), epoch: EPOCH });

let nats: FakeNats;
let fanouts: TopNFanout[];

beforeEach(() => {
  nats = new FakeNats();
  fanouts = [];
});
afterEach(() => {
  for (const fanout of fanouts) fanout.stop();
});

/** A started fanout without a coalescing window unless given one. */
function fanoutOf(source: () => Promise<BoardSnapshot>, refreshMs = 3_600_000, coalesceMs = 0): TopNFanout {
  const fanout = new TopNFanout(source, logger, refreshMs, coalesceMs);
  fanout.start(nats.connection);
  fanouts.push(fanout);
  return fanout;
}

/** What a watcher was told: epoch and the top, as "epoch user=score,…". */
async function watchAll(fanout: TopNFanout, board = "global"): Promise<string[]> {
  const seen: string[] = [];
  await fanout.watch(board, (s) => seen.push(`${s.epoch} ${s.top.map((e) => `${e.userId}=${e.score}`).join(",")}`));
  return seen;
}

describe("TopNFanout epochs", () => {
  it("tells watchers of a new epoch even when the top is equal, and takes it despite an older asOf", async () => {
    const fanout = fanoutOf(current);
    const seen = await watchAll(fanout);
    nats.boardChanged("global", top(3), { epoch: "2000.all", asOfMs: Date.now() - 60_000 });
    expect(seen).toEqual(["1000.all user-1=1000,user-2=999,user-3=998", "2000.all user-1=1000,user-2=999,user-3=998"]);
  });

  it("never goes back to an older epoch, whatever its asOf", async () => {
    const fanout = fanoutOf(async () => ({ top: top(3), asOf: timestampFromMs(Date.now()), epoch: "2000.20261206T0000Z" }));
    const seen = await watchAll(fanout);
    nats.boardChanged("global", top(3, { userId: "user-1", score: 1 }), { epoch: "2000.20261205T0000Z", asOfMs: Date.now() + 60_000 });
    nats.boardChanged("global", top(3, { userId: "user-1", score: 2 }), { epoch: "1999.20261207T0000Z", asOfMs: Date.now() + 60_000 });
    expect(seen).toHaveLength(1);
    nats.boardChanged("global", top(3, { userId: "user-1", score: 3 }), { epoch: "2000.20261207T0000Z", asOfMs: Date.now() - 60_000 });
    expect(seen.at(-1)).toBe("2000.20261207T0000Z user-1=3,user-2=999,user-3=998");
  });

  it("keeps the epoch it holds for an announcement without one (a ranking release before epochs)", async () => {
    const fanout = fanoutOf(current);
    const seen = await watchAll(fanout);
    nats.boardChanged("global", top(3, { userId: "user-2", score: 5_000 }));
    expect(seen.at(-1)).toBe("1000.all user-1=1000,user-2=5000,user-3=998");
  });

  it("lets a refresh bring a new epoch with an equal top", async () => {
    let epoch = EPOCH;
    const fanout = fanoutOf(async () => ({ top: top(3), asOf: timestampFromMs(Date.now()), epoch }), 20);
    const seen = await watchAll(fanout);
    await tick(50);
    expect(seen).toHaveLength(1); // refreshes of the same top and epoch tell nobody
    epoch = "3000.all";
    await tick(50);
    expect(seen).toEqual(["1000.all user-1=1000,user-2=999,user-3=998", "3000.all user-1=1000,user-2=999,user-3=998"]);
  });

  it("keeps a state's asOf while refreshes find the same top, so a position taken from it stays current", async () => {
    const fanout = fanoutOf(async () => ({ top: top(3), asOf: timestampFromMs(Date.now()), epoch: EPOCH }), 20);
    const asOfs: bigint[] = [];
    await fanout.watch("global", (s) => asOfs.push(s.asOf!.seconds * 1_000n + BigInt(s.asOf!.nanos)));
    await tick(60);
    await fanout.watch("global", (s) => asOfs.push(s.asOf!.seconds * 1_000n + BigInt(s.asOf!.nanos)));
    expect(asOfs).toHaveLength(2);
    expect(asOfs[1]).toBe(asOfs[0]);
  });
});

describe("TopNFanout timing", () => {
  it("does not let a slow periodic refresh roll back a newer change", async () => {
    const old = timestampFromMs(Date.now() - 1_000);
    let releaseRefresh!: (snapshot: BoardSnapshot) => void;
    let calls = 0;
    const refreshing = new TopNFanout(
      () => {
        calls += 1;
        if (calls === 1) return Promise.resolve({ top: top(3), asOf: old, epoch: EPOCH });
        return new Promise<BoardSnapshot>((resolve) => (releaseRefresh = resolve));
      },
      logger,
      20,
    );
    refreshing.start(nats.connection);
    const seen: string[][] = [];
    const unwatch = await refreshing.watch("global", (snapshot) => seen.push(snapshot.top.map((e) => `${e.userId}=${e.score}`)));
    await tick(30); // the refresh is now in flight
    nats.boardChanged("global", top(3, { userId: "user-3", score: 5_000 }));
    releaseRefresh({ top: top(3), asOf: old, epoch: EPOCH });
    await tick(5);
    expect(seen.at(-1)).toContain("user-3=5000");
    unwatch();
    refreshing.stop();
  });

  it("coalesces a burst to at most one message per window per board, ending on the latest", async () => {
    const coalescing = new TopNFanout(current, logger, 3_600_000, 100);
    coalescing.start(nats.connection);
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
      () => Promise.resolve({ top: sameTop, asOf: timestampFromMs(Date.now()), epoch: EPOCH }),
      logger,
      25, // refresh often
      1_000, // a window long enough to see
    );
    refreshing.start(nats.connection);
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
});
