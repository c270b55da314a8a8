import { create } from "@bufbuild/protobuf";
import { timestampNow } from "@bufbuild/protobuf/wkt";
import { describe, expect, it } from "vitest";
import { type BoardMoved, BoardMovedSchema, EntryMoveSchema } from "@scoreboard/gen/scoreboard/v1/events_pb";
import { LeaderboardEntrySchema, StandingSchema, StreamPositionSchema } from "@scoreboard/gen/scoreboard/v1/leaderboard_pb";
import { GetStandingsResponseSchema, type GetStandingsRequest, UserStandingSchema } from "@scoreboard/gen/scoreboard/v1/ranking_pb";
import { createLogger } from "@scoreboard/platform/logger";
import { type StandingState, StandingWatchers } from "./standings.js";

/** A board in memory (score descending, then user id), read as ranking's GetStandings reads, and its moves stream as push relays it. */
function fakeBoard(scores: Record<string, number>) {
  const board = new Map(Object.entries(scores));
  let epoch = "1.all";
  const reads: GetStandingsRequest[] = [];
  const queued: BoardMoved[] = [];
  let wake: (() => void) | undefined;
  const ranked = () => [...board].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1));
  const entryAt = (order: [string, number][], i: number) =>
    create(LeaderboardEntrySchema, { rank: BigInt(i + 1), userId: order[i]![0], username: order[i]![0], score: BigInt(order[i]![1]) });
  const ranking = {
    async getStandings(request: GetStandingsRequest) {
      reads.push(request);
      const order = ranked();
      return create(GetStandingsResponseSchema, {
        epoch,
        asOf: timestampNow(),
        standings: request.userIds.map((userId) => {
          const i = order.findIndex(([id]) => id === userId);
          if (i < 0) return create(UserStandingSchema, { userId, standing: create(StandingSchema, {}) });
          const neighbourhood = [];
          for (let j = Math.max(0, i - request.around); request.around > 0 && j <= Math.min(order.length - 1, i + request.around); j++)
            neighbourhood.push(entryAt(order, j));
          return create(UserStandingSchema, { userId, standing: create(StandingSchema, { entry: entryAt(order, i), neighbourhood }) });
        }),
      });
    },
  };
  const push = {
    async *watchBoardMoves(_request: unknown, options?: { signal?: AbortSignal }) {
      yield create(BoardMovedSchema, { board: "global", epoch });
      while (!options?.signal?.aborted) {
        while (queued.length > 0) yield queued.shift()!;
        await new Promise<void>((resolve) => {
          wake = resolve;
          options?.signal?.addEventListener("abort", () => resolve(), { once: true });
        });
      }
    },
  };
  return {
    ranking: ranking as never,
    push: push as never,
    reads,
    /** Sets a user's score and announces the move, as ranking does after applying it. */
    grant(userId: string, to: number, announce = true) {
      const from = board.get(userId);
      board.set(userId, to);
      if (announce)
        this.announce(
          create(BoardMovedSchema, {
            board: "global",
            epoch,
            moves: [create(EntryMoveSchema, { userId, fromScore: from === undefined ? undefined : BigInt(from), toScore: BigInt(to) })],
          }),
        );
    },
    announce(moved: BoardMoved) {
      queued.push(moved);
      wake?.();
    },
    rebuild(newEpoch: string) {
      epoch = newEpoch;
      this.announce(create(BoardMovedSchema, { board: "global", epoch, everything: true }));
    },
  };
}

const until = async (condition: () => boolean, what: string) => {
  for (let i = 0; i < 300 && !condition(); i++) await new Promise((r) => setTimeout(r, 10));
  if (!condition()) throw new Error(`timed out waiting for ${what}`);
};
const rankOf = (state: StandingState | undefined) => (state?.standing.entry ? Number(state.standing.entry.rank) : undefined);
const logger = createLogger("standings-test", "silent");

describe("StandingWatchers", () => {
  it("tells a watcher its rank changed when another user passes it, and not when a move passes nobody it shows", async () => {
    const board = fakeBoard({ alice: 300, bob: 200, carol: 100 });
    const watchers = new StandingWatchers(board.ranking, board.push, logger, { intervalMs: 20 });
    const states: StandingState[] = [];
    const stop = watchers.subscribe("global", "bob", 0, (s) => states.push(s));
    await until(() => states.length === 1, "the first standing");
    expect(rankOf(states[0])).toBe(2);

    board.grant("carol", 250); // passes bob
    await until(() => states.length === 2, "bob's new rank");
    expect(rankOf(states[1])).toBe(3);
    expect(states[1]!.position.version).toBeGreaterThanOrEqual(states[0]!.position.version);

    const readsBefore = board.reads.length;
    board.grant("alice", 400); // above bob all along: bob's standing is not even read
    await new Promise((r) => setTimeout(r, 100));
    expect(board.reads.length).toBe(readsBefore);
    expect(states).toHaveLength(2);
    stop();
    watchers.close();
  });

  it("merges a burst: at most one read per interval, and the watcher ends on the latest state", async () => {
    const board = fakeBoard({ me: 500, ...Object.fromEntries(Array.from({ length: 50 }, (_, i) => [`u${i}`, i])) });
    const watchers = new StandingWatchers(board.ranking, board.push, logger, { intervalMs: 200 });
    const states: StandingState[] = [];
    watchers.subscribe("global", "me", 1, (s) => states.push(s));
    await until(() => states.length === 1, "the first standing");
    const readsBefore = board.reads.length;
    for (let i = 0; i < 50; i++) board.grant(`u${i}`, 1_000 + i); // everyone passes me, one by one
    await until(() => rankOf(states.at(-1)) === 51, "the latest rank");
    expect(board.reads.length - readsBefore).toBeLessThanOrEqual(3);
    expect(states.length).toBeLessThanOrEqual(4);
    expect(states.at(-1)!.standing.neighbourhood.map((e) => e.userId)).toEqual(["u0", "me"]);
    watchers.close();
  });

  it("shares one tracked standing between watchers of the same user, and resumes: a current position gets nothing, an old one the latest", async () => {
    const board = fakeBoard({ alice: 300, bob: 200 });
    const watchers = new StandingWatchers(board.ranking, board.push, logger, { intervalMs: 20, lingerMs: 1_000 });
    const first: StandingState[] = [];
    const stopFirst = watchers.subscribe("global", "bob", 0, (s) => first.push(s));
    await until(() => first.length === 1, "the first standing");
    const current = first[0]!.position;
    stopFirst(); // the client goes away; the standing lingers

    const resumed: StandingState[] = [];
    watchers.subscribe("global", "bob", 0, (s) => resumed.push(s), current);
    const old: StandingState[] = [];
    watchers.subscribe("global", "bob", 0, (s) => old.push(s), create(StreamPositionSchema, { epoch: current.epoch, version: current.version - 1n }));
    expect(resumed).toHaveLength(0);
    expect(old.map(rankOf)).toEqual([2]);
    expect(watchers.trackedCount).toBe(1);

    board.grant("bob", 400);
    await until(() => resumed.length === 1, "the next change");
    expect(rankOf(resumed[0])).toBe(1);
    watchers.close();
  });

  it("a new epoch (a rebuild) re-reads every standing and sends it again, even unchanged", async () => {
    const board = fakeBoard({ alice: 300, bob: 200 });
    const watchers = new StandingWatchers(board.ranking, board.push, logger, { intervalMs: 20 });
    const states: StandingState[] = [];
    watchers.subscribe("global", "bob", 0, (s) => states.push(s));
    await until(() => states.length === 1, "the first standing");
    board.rebuild("2.all");
    await until(() => states.length === 2, "the standing of the new epoch");
    expect(states[1]!.position.epoch).toBe("2.all");
    expect(rankOf(states[1])).toBe(2);
    watchers.close();
  });

  it("a lost announcement is caught up by the sweep, which re-reads standings a slice at a time", async () => {
    const board = fakeBoard({ alice: 300, bob: 200, carol: 100 });
    const watchers = new StandingWatchers(board.ranking, board.push, logger, { intervalMs: 20, sweepMs: 1_000 });
    const states: StandingState[] = [];
    watchers.subscribe("global", "bob", 0, (s) => states.push(s));
    await until(() => states.length === 1, "the first standing");
    board.grant("carol", 250, false); // passes bob; the move is never announced
    await until(() => rankOf(states.at(-1)) === 3, "the sweep's re-read");
    watchers.close();
  });

  it("a user without a score gets a standing without entry, then their entry once their own move comes", async () => {
    const board = fakeBoard({ alice: 300 });
    const watchers = new StandingWatchers(board.ranking, board.push, logger, { intervalMs: 20 });
    const states: StandingState[] = [];
    watchers.subscribe("global", "newcomer", 0, (s) => states.push(s));
    await until(() => states.length === 1, "the first standing");
    expect(states[0]!.standing.entry).toBeUndefined();
    board.grant("newcomer", 10);
    await until(() => states.length === 2, "the newcomer's entry");
    expect(rankOf(states[1])).toBe(2);
    watchers.close();
  });
});
