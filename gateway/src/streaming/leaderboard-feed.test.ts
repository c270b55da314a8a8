import { describe, expect, it } from "vitest";
import { create } from "@bufbuild/protobuf";
import { createClient, createRouterTransport } from "@connectrpc/connect";
import { LeaderboardEntrySchema } from "@scoreboard/gen/scoreboard/v1/leaderboard_pb";
import { LeaderboardUpdateSchema, PushService, type LeaderboardUpdate } from "@scoreboard/gen/scoreboard/v1/push_pb";
import { createLogger } from "@scoreboard/platform/logger";
import { LeaderboardFeeds } from "./leaderboard-feed.js";

/** A push service whose one stream sends each score pushed to it, as the leader's. */
function fakePush() {
  const queued: bigint[] = [];
  let wake: (() => void) | undefined;
  const transport = createRouterTransport(({ service }) => {
    service(PushService, {
      async *watchLeaderboard() {
        for (;;) {
          while (queued.length > 0) {
            const score = queued.shift()!;
            yield create(LeaderboardUpdateSchema, { entries: [create(LeaderboardEntrySchema, { rank: 1n, userId: "leader", score })] });
          }
          await new Promise<void>((resolve) => (wake = resolve));
        }
      },
    });
  });
  return {
    client: createClient(PushService, transport),
    send(score: bigint) {
      queued.push(score);
      wake?.();
    },
  };
}

const until = async (condition: () => boolean) => {
  for (let i = 0; i < 200 && !condition(); i++) await new Promise((r) => setTimeout(r, 10));
  expect(condition()).toBe(true);
};
const scoreOf = (update: LeaderboardUpdate) => update.entries[0]!.score;

describe("LeaderboardFeeds", () => {
  it("hands every update to thousands of listeners, a slice per turn, skipping ones that left and in order", async () => {
    const push = fakePush();
    const feeds = new LeaderboardFeeds(push.client, createLogger("feed-test", "silent"));
    const received: bigint[][] = [];
    const unsubscribes: Array<() => void> = [];
    let otherWorkRanMidway = false;
    for (let i = 0; i < 2_500; i++) {
      received.push([]);
      unsubscribes.push(
        feeds.subscribe("global", 10, (update) => {
          received[i]!.push(scoreOf(update));
          // The first listener makes the last one leave while the first slice is being written.
          if (i === 0 && scoreOf(update) === 10n) {
            unsubscribes[2_499]!();
            // Other work (the sockets' writes) gets a turn before the last slice.
            setImmediate(() => (otherWorkRanMidway = received[2_498]!.length === 0));
          }
        }),
      );
    }
    push.send(10n);
    push.send(20n);
    await until(() => received[2_498]!.length === 2);
    for (let i = 0; i < 2_499; i++) expect(received[i]).toEqual([10n, 20n]);
    expect(otherWorkRanMidway).toBe(true);
    expect(received[2_499]).toEqual([]);
    // One that comes later gets the latest at once.
    const late: bigint[] = [];
    feeds.subscribe("global", 10, (update) => late.push(scoreOf(update)));
    expect(late).toEqual([20n]);
    feeds.close();
  });
});
