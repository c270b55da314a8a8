import { create } from "@bufbuild/protobuf";
import { createContextValues, type HandlerContext } from "@connectrpc/connect";
import { LeaderboardEntrySchema } from "@scoreboard/gen/scoreboard/v1/leaderboard_pb";
import { LeaderboardUpdateSchema, WatchLeaderboardRequestSchema, type LeaderboardUpdate } from "@scoreboard/gen/scoreboard/v1/push_pb";
import { describe, expect, it } from "vitest";
import { ReadGate } from "../rest/leaderboard-reads.js";
import type { WriteGuard } from "../write-guard.js";
import type { LeaderboardFeeds } from "./leaderboard-feed.js";
import { StreamQuota } from "./stream-quota.js";
import type { StreamableBoards } from "./streamable-boards.js";
import { watchLeaderboardMessages, type WatchLeaderboardDeps } from "./watch-leaderboard.js";

function update(score: number): LeaderboardUpdate {
  return create(LeaderboardUpdateSchema, {
    entries: [create(LeaderboardEntrySchema, { rank: 1n, userId: "u", username: "u", score: BigInt(score) })],
  });
}

function setup(heartbeatMs = 60_000) {
  let listener: ((update: LeaderboardUpdate) => void) | undefined;
  let subscribed = 0;
  const feeds = {
    subscribe: (_board: string, _limit: number, onUpdate: (update: LeaderboardUpdate) => void) => {
      listener = onUpdate;
      subscribed += 1;
      return () => {
        subscribed -= 1;
      };
    },
  } as unknown as LeaderboardFeeds;
  const deps: WatchLeaderboardDeps = {
    feeds,
    readGate: new ReadGate({ requireScope: false, verifier: undefined as never }),
    guard: { throttlingRefusedTokens: (_address: string, check: () => Promise<unknown>) => check() } as unknown as WriteGuard,
    boards: { resolve: async (board: string) => board || "global" } as unknown as StreamableBoards,
    streamQuota: new StreamQuota(1),
    heartbeatMs,
  };
  const abort = new AbortController();
  const ctx = { values: createContextValues(), requestHeader: new Headers(), url: "http://gateway/x", signal: abort.signal } as unknown as HandlerContext;
  const messages = watchLeaderboardMessages(deps, create(WatchLeaderboardRequestSchema, {}), ctx);
  return { messages, publish: (u: LeaderboardUpdate) => listener!(u), abort, deps, subscribed: () => subscribed };
}

describe("WatchLeaderboard through connect-node", () => {
  it("gives a caller that stops pulling only the latest state when it pulls again, numbered per stream", async () => {
    const { messages, publish, abort, deps, subscribed } = setup();
    const first = messages.next();
    await new Promise((resolve) => setImmediate(resolve));
    publish(update(1));
    expect((await first).value).toMatchObject({ sequence: 1n, heartbeat: false, entries: [{ score: 1n }] });
    // Not pulling (1 is still being written): 2..40 collapse into the latest.
    for (let score = 2; score <= 40; score++) publish(update(score));
    expect((await messages.next()).value).toMatchObject({ sequence: 2n, entries: [{ score: 40n }] });
    // The address's one stream is taken until the stream ends.
    expect(() => deps.streamQuota.take("unknown")).toThrow(/too many open streams/);
    const ended = messages.next();
    abort.abort();
    expect((await ended).done).toBe(true);
    expect(subscribed()).toBe(0);
    deps.streamQuota.take("unknown")();
  });

  it("sends a heartbeat when nothing changes for an interval", async () => {
    const { messages, abort } = setup(100);
    expect((await messages.next()).value).toMatchObject({ heartbeat: true, sequence: 1n, entries: [] });
    abort.abort();
    await messages.return(undefined);
  });
});
