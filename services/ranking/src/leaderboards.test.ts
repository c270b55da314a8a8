import { Code } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import type { Boards, RankedEntry } from "./boards.js";
import type { BoardRules } from "./defined-boards/postgres-store.js";
import type { ReadableSeason } from "./defined-boards/seasons.js";
import { DEFINED_BOARD_DEPTH, Leaderboards, type DefinedBoardLookup } from "./leaderboards.js";

const rules = (boardId: string, extra: Partial<BoardRules> = {}): BoardRules => ({
  boardId,
  order: "desc",
  tieRule: "first",
  title: boardId,
  resetSchedule: "daily",
  timeZone: "UTC",
  retainedSeasons: 3,
  builtin: false,
  archived: false,
  ...extra,
});

const entry = (rank: number, userId: string, score: number) => ({
  rank,
  userId,
  username: userId,
  score,
  subscore: 0,
  reachedAtMs: 0,
  version: 1,
  metadata: "",
});

/** Seed boards answer "seed:<name>"; defined board "laps" has entries per season; the clock moves. */
function fixture() {
  const calls: string[] = [];
  const seed = {
    page: async (board: string, offset: number, limit: number): Promise<RankedEntry[]> => {
      calls.push(`seed page ${board} ${offset} ${limit}`);
      return [{ rank: 1, userId: `seed:${board}`, username: "", score: 1 }];
    },
    rankOf: async (board: string, userId: string) => {
      calls.push(`seed rankOf ${board} ${userId}`);
      return undefined;
    },
  } as unknown as Boards;
  const seasons = new Map([
    ["20261206T0000Z", [entry(1, "amy", 30), entry(2, "ben", 20), entry(3, "cat", 10)]],
    ["20261207T0000Z", [entry(1, "dan", 5)]],
  ]);
  let now = new Date("2026-12-06T23:59:59Z");
  const definitions = new Map([
    ["laps", rules("laps")],
    ["region", rules("region", { builtin: true })],
  ]);
  const defined: DefinedBoardLookup = {
    definitions: {
      board: async (id: string) => {
        calls.push(`definition ${id}`);
        return definitions.get(id);
      },
    },
    reads: {
      page: async (_board: BoardRules, season: ReadableSeason, _after: unknown, limit: number) => {
        calls.push(`defined page ${season.id} ${limit}`);
        const entries = (seasons.get(season.id) ?? []).slice(0, limit);
        return { entries, total: entries.length };
      },
      around: async (_board: BoardRules, season: ReadableSeason, userId: string, around: number) => {
        const entries = seasons.get(season.id) ?? [];
        const at = entries.findIndex((e) => e.userId === userId);
        const page = at < 0 ? [] : entries.slice(Math.max(0, at - around), at + around + 1);
        return { entry: entries[at], page: { entries: page, total: entries.length } };
      },
      entriesOf: async (_board: BoardRules, season: ReadableSeason, userIds: string[]) => {
        calls.push(`defined entriesOf ${season.id} ${userIds.join(",")}`);
        const entries = (seasons.get(season.id) ?? []).filter((e) => userIds.includes(e.userId));
        return { entries, total: entries.length };
      },
    },
    now: () => now,
  };
  return { leaderboards: new Leaderboards(seed, defined), calls, setNow: (iso: string) => (now = new Date(iso)) };
}

describe("Leaderboards: which board a name is", () => {
  it("reads seed names from the seed boards without asking for a definition", async () => {
    const { leaderboards, calls } = fixture();
    for (const name of ["global", "region:eu", "daily:2026-12-06"]) await leaderboards.page(name, 0, 10);
    expect(calls).toEqual(["seed page global 0 10", "seed page region:eu 0 10", "seed page daily:2026-12-06 0 10"]);
  });

  it("reads a defined board's id as its current season, and moves to the next season when it begins", async () => {
    const { leaderboards, setNow } = fixture();
    expect((await leaderboards.page("laps", 1, 2)).map((e) => [e.rank, e.userId])).toEqual([
      [2, "ben"],
      [3, "cat"],
    ]);
    setNow("2026-12-07T00:00:00Z");
    expect((await leaderboards.page("laps", 0, 10)).map((e) => e.userId)).toEqual(["dan"]);
  });

  it("answers other names as before defined boards: the seed boards' (empty) answer", async () => {
    const { leaderboards, calls } = fixture();
    await leaderboards.page("nothing", 0, 10);
    await leaderboards.page("region", 0, 10);
    // A builtin id is never a defined board's: not even looked up.
    expect(calls).toEqual(["definition nothing", "seed page nothing 0 10", "seed page region 0 10"]);
  });

  it("ranks around a user on a defined board's current season", async () => {
    const { leaderboards } = fixture();
    const found = await leaderboards.rankAround("laps", "ben", 1);
    expect([found?.entry.rank, found?.neighbourhood.map((e) => e.userId)]).toEqual([2, ["amy", "ben", "cat"]]);
    expect((await leaderboards.rankAround("laps", "ben", 0))?.neighbourhood).toEqual([]);
    expect(await leaderboards.rankAround("laps", "zed", 1)).toBeUndefined();
  });

  it(`refuses reads deeper than ${DEFINED_BOARD_DEPTH} of a defined board, pointing at the cursor pages`, async () => {
    const { leaderboards } = fixture();
    await expect(leaderboards.page("laps", DEFINED_BOARD_DEPTH, 1)).rejects.toMatchObject({ code: Code.InvalidArgument });
  });

  it("says which season a defined board's streams show", async () => {
    const { leaderboards, setNow } = fixture();
    expect(await leaderboards.showsSeason("laps", "20261206T0000Z")).toBe(true);
    setNow("2026-12-07T00:00:01Z");
    expect(await leaderboards.showsSeason("laps", "20261206T0000Z")).toBe(false);
    expect(await leaderboards.showsSeason("laps", "20261207T0000Z")).toBe(true);
    expect(await leaderboards.showsSeason("nothing", "20261207T0000Z")).toBe(false);
  });

  it("reads many standings of a defined board's current season in one read, in the order asked", async () => {
    const { leaderboards, calls } = fixture();
    const found = await leaderboards.standings("laps", ["cat", "zed", "amy"], 0);
    expect(found.map((s) => s && [s.entry.userId, s.entry.rank, s.neighbourhood.length])).toEqual([["cat", 3, 0], undefined, ["amy", 1, 0]]);
    expect(calls.filter((c) => c.startsWith("defined"))).toEqual(["defined entriesOf 20261206T0000Z cat,zed,amy"]);
    const around = await leaderboards.standings("laps", ["ben", "zed"], 1);
    expect(around.map((s) => s?.neighbourhood.map((e) => e.userId))).toEqual([["amy", "ben", "cat"], undefined]);
  });

  it("reads many standings of a seed board through its rank reads, in the order asked", async () => {
    const { leaderboards, calls } = fixture();
    expect(await leaderboards.standings("global", ["a", "b"], 0)).toEqual([undefined, undefined]);
    expect(calls).toEqual(["seed rankOf global a", "seed rankOf global b"]);
  });

  it("names the season a defined board shows now, and none for seed boards", async () => {
    const { leaderboards, setNow } = fixture();
    expect(await leaderboards.currentSeasonOf("laps")).toBe("20261206T0000Z");
    setNow("2026-12-07T00:00:01Z");
    expect(await leaderboards.currentSeasonOf("laps")).toBe("20261207T0000Z");
    expect(await leaderboards.currentSeasonOf("global")).toBeUndefined();
    expect(await leaderboards.currentSeasonOf("nothing")).toBeUndefined();
  });
});
