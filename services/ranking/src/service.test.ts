import { describe, expect, it } from "vitest";
import { Code, ConnectError, createClient, createRouterTransport } from "@connectrpc/connect";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { RankingService } from "@scoreboard/gen/scoreboard/v1/ranking_pb";
import { periodAt } from "@scoreboard/platform/periods";
import type { Boards, PeriodTotal, RankedEntry, ScoreState } from "./boards.js";
import type { BoardRules } from "./defined-boards/postgres-store.js";
import { Leaderboards } from "./leaderboards.js";
import { createRankingService } from "./service.js";

/** An in-memory read model: boards ordered by score (highest first), ties by user id. */
class FakeBoards implements Boards {
  readonly calls: Array<{ method: "page" | "rankOf"; args: unknown[] }> = [];
  private readonly boards = new Map<string, Map<string, { username: string; score: number }>>();

  constructor(private readonly failure?: Error) {}

  seed(board: string, count: number): this {
    for (let i = 1; i <= count; i += 1) {
      this.board(board).set(`user-${i}`, { username: `User ${i}`, score: 1000 - i });
    }
    return this;
  }

  async apply(state: ScoreState, boards: string[]): Promise<boolean> {
    for (const name of boards) this.board(name).set(state.userId, { username: state.username, score: state.score });
    return true;
  }

  async applyPeriods(state: ScoreState, periods: PeriodTotal[]): Promise<string[]> {
    for (const { board, score } of periods) this.board(board).set(state.userId, { username: state.username, score });
    return periods.map((p) => p.board);
  }

  async page(board: string, offset: number, limit: number): Promise<RankedEntry[]> {
    this.calls.push({ method: "page", args: [board, offset, limit] });
    if (this.failure) throw this.failure;
    return this.ranked(board).slice(offset, offset + limit);
  }

  async rankOf(board: string, userId: string): Promise<RankedEntry | undefined> {
    this.calls.push({ method: "rankOf", args: [board, userId] });
    if (this.failure) throw this.failure;
    return this.ranked(board).find((e) => e.userId === userId);
  }

  private board(name: string) {
    let board = this.boards.get(name);
    if (!board) {
      board = new Map();
      this.boards.set(name, board);
    }
    return board;
  }

  private ranked(board: string): RankedEntry[] {
    return [...this.board(board)]
      .sort(([a, x], [b, y]) => y.score - x.score || a.localeCompare(b))
      .map(([userId, { username, score }], i) => ({ rank: i + 1, userId, username, score }));
  }
}

function setup(boards: Boards) {
  return createClient(
    RankingService,
    createRouterTransport((router) => router.service(RankingService, createRankingService(boards))),
  );
}

async function codeOf(call: Promise<unknown>): Promise<Code | undefined> {
  return call.then(
    () => undefined,
    (err: unknown) => {
      expect(err).toBeInstanceOf(ConnectError);
      return (err as ConnectError).code;
    },
  );
}

describe("GetLeaderboard", () => {
  it("defaults to the global board and 10 entries", async () => {
    const boards = new FakeBoards().seed("global", 25);
    const before = Date.now();
    const res = await setup(boards).getLeaderboard({});
    expect(boards.calls).toEqual([{ method: "page", args: ["global", 0, 10] }]);
    expect(res.entries).toHaveLength(10);
    expect(res.entries[0]).toMatchObject({ rank: 1n, userId: "user-1", username: "User 1", score: 999n });
    expect(res.entries.map((e) => e.rank)).toEqual([1n, 2n, 3n, 4n, 5n, 6n, 7n, 8n, 9n, 10n]);
    expect(res.asOf).toBeDefined();
    expect(timestampDate(res.asOf!).getTime()).toBeGreaterThanOrEqual(before - 1000);
  });

  it("pages with offset: ranks continue from the offset and the last page is short", async () => {
    const client = setup(new FakeBoards().seed("global", 25));
    const second = await client.getLeaderboard({ limit: 10, offset: 10 });
    expect(second.entries.map((e) => e.rank)).toEqual([11n, 12n, 13n, 14n, 15n, 16n, 17n, 18n, 19n, 20n]);
    expect(second.entries[0]?.userId).toBe("user-11");
    const last = await client.getLeaderboard({ limit: 10, offset: 20 });
    expect(last.entries.map((e) => e.rank)).toEqual([21n, 22n, 23n, 24n, 25n]);
    const beyond = await client.getLeaderboard({ limit: 10, offset: 25 });
    expect(beyond.entries).toEqual([]);
  });

  it("reads the named board with the asked limit", async () => {
    const boards = new FakeBoards().seed("global", 5).seed("season-1", 150);
    const res = await setup(boards).getLeaderboard({ board: "season-1", limit: 100 });
    expect(res.entries).toHaveLength(100);
    expect(boards.calls).toEqual([{ method: "page", args: ["season-1", 0, 100] }]);
  });

  it("reads daily, weekly and monthly as the current UTC period's board", async () => {
    const boards = new FakeBoards();
    const client = setup(boards);
    for (const kind of ["daily", "weekly", "monthly"] as const) {
      await client.getLeaderboard({ board: kind });
      await client.getRank({ board: kind, userId: "nobody" }).catch(() => undefined);
    }
    const asked = boards.calls.map((c) => c.args[0] as string);
    // A period can roll over between the calls and now: compare with the boards of either moment.
    const now = Date.now();
    for (const [i, kind] of (["daily", "daily", "weekly", "weekly", "monthly", "monthly"] as const).entries()) {
      expect([periodAt(kind, now).board, periodAt(kind, now - 60_000).board]).toContain(asked[i]);
    }
  });

  it("refuses malformed, future and expired period boards", async () => {
    const client = setup(new FakeBoards());
    expect(await codeOf(client.getLeaderboard({ board: "daily:2026-02-30" }))).toBe(Code.InvalidArgument);
    expect(await codeOf(client.getLeaderboard({ board: "weekly:2026-48" }))).toBe(Code.InvalidArgument);
    expect(await codeOf(client.getLeaderboard({ board: "monthly:2999-01" }))).toBe(Code.OutOfRange);
    expect(await codeOf(client.getLeaderboard({ board: "daily:2001-01-01" }))).toBe(Code.OutOfRange);
    expect(await codeOf(client.getRank({ board: "daily:2001-01-01", userId: "u" }))).toBe(Code.OutOfRange);
    const yesterday = periodAt("daily", Date.now() - 86_400_000).board;
    expect((await client.getLeaderboard({ board: yesterday })).entries).toEqual([]);
  });

  it("answers an empty board with no entries, not an error", async () => {
    expect((await setup(new FakeBoards()).getLeaderboard({ board: "empty" })).entries).toEqual([]);
  });

  it.each([
    ["limit 101", { limit: 101 }],
    ["negative limit", { limit: -1 }],
    ["negative offset", { offset: -1 }],
    ["invalid board", { board: "Not Valid" }],
  ])("rejects %s with INVALID_ARGUMENT without reading the store", async (_name, req) => {
    const boards = new FakeBoards().seed("global", 5);
    expect(await codeOf(setup(boards).getLeaderboard(req))).toBe(Code.InvalidArgument);
    expect(boards.calls).toEqual([]);
  });
});

describe("GetRank", () => {
  it("returns the user's entry", async () => {
    const boards = new FakeBoards().seed("global", 5);
    const res = await setup(boards).getRank({ userId: "user-3" });
    expect(res.entry).toMatchObject({ rank: 3n, userId: "user-3", username: "User 3", score: 997n });
    expect(boards.calls).toEqual([{ method: "rankOf", args: ["global", "user-3"] }]);
  });

  it("answers NOT_FOUND for a user with no score on the board", async () => {
    const boards = new FakeBoards().seed("global", 5);
    const err = await setup(boards)
      .getRank({ board: "season-1", userId: "user-3" })
      .catch((e: unknown) => e as ConnectError);
    expect((err as ConnectError).code).toBe(Code.NotFound);
    expect((err as ConnectError).rawMessage).toBe('user "user-3" has no score on board "season-1"');
  });

  it.each([
    ["empty", ""],
    ["65 characters", "u".repeat(65)],
    ["a control character", "user\u0000"],
    ["a leading space", " user-1"],
  ])("rejects a user id with %s as INVALID_ARGUMENT", async (_name, userId) => {
    const boards = new FakeBoards().seed("global", 5);
    expect(await codeOf(setup(boards).getRank({ userId }))).toBe(Code.InvalidArgument);
    expect(boards.calls).toEqual([]);
  });

  it("rejects an invalid board as INVALID_ARGUMENT", async () => {
    expect(await codeOf(setup(new FakeBoards()).getRank({ board: "x y", userId: "user-1" }))).toBe(Code.InvalidArgument);
  });
});

describe("GetStandings", () => {
  it("answers one standing per user in the order asked, an empty one for a user without a score", async () => {
    const boards = new FakeBoards().seed("global", 5);
    const before = Date.now();
    const res = await setup(boards).getStandings({ userIds: ["user-4", "nobody", "user-1"] });
    expect(res.standings.map((s) => [s.userId, s.standing?.entry?.rank, s.standing?.neighbourhood.length])).toEqual([
      ["user-4", 4n, 0],
      ["nobody", undefined, 0],
      ["user-1", 1n, 0],
    ]);
    // Without neighbours, one rank read per user and no page.
    expect(boards.calls.map((c) => c.method)).toEqual(["rankOf", "rankOf", "rankOf"]);
    expect(res.epoch).toBe("0.all");
    expect(timestampDate(res.asOf!).getTime()).toBeGreaterThanOrEqual(before - 1000);
  });

  it("returns the neighbourhood of each user with around", async () => {
    const res = await setup(new FakeBoards().seed("global", 10)).getStandings({ userIds: ["user-1", "user-5", "nobody"], around: 2 });
    expect(res.standings.map((s) => s.standing?.neighbourhood.map((e) => e.rank))).toEqual([[1n, 2n, 3n], [3n, 4n, 5n, 6n, 7n], []]);
  });

  it("reads the current period's board for daily, in that period's epoch", async () => {
    const boards = new FakeBoards();
    const res = await setup(boards).getStandings({ board: "daily", userIds: ["u"] });
    const day = periodAt("daily", Date.now());
    expect([day.board, periodAt("daily", Date.now() - 60_000).board]).toContain(boards.calls[0]!.args[0]);
    expect(res.epoch).toMatch(/^0\.\d{8}T0000Z$/);
  });

  it("stamps the epoch the epoch source gives for the resolved board", async () => {
    const asked: string[] = [];
    const epochs = {
      epochOf: async (board: string) => {
        asked.push(board);
        return `1765000000000.${board === "global" ? "all" : "x"}`;
      },
    };
    const client = createClient(
      RankingService,
      createRouterTransport((router) => router.service(RankingService, createRankingService(new FakeBoards().seed("global", 3), undefined, epochs))),
    );
    expect((await client.getStandings({ userIds: ["user-2"] })).epoch).toBe("1765000000000.all");
    expect((await client.getLeaderboard({})).epoch).toBe("1765000000000.all");
    expect(asked).toEqual(["global", "global"]);
  });

  it.each([
    ["no users", { userIds: [] }, "user_ids must name 1..1000 users, got 0"],
    ["1001 users", { userIds: Array.from({ length: 1001 }, (_, i) => `u${i}`) }, "user_ids must name 1..1000 users, got 1001"],
    ["a user twice", { userIds: ["a", "b", "a"] }, 'user_ids[2] "a" is named twice: ask for each user once'],
    ["an invalid user id", { userIds: ["a", "bad\u0000"] }, "user_ids[1] must be 1..64 characters without control characters"],
    ["around 11", { userIds: ["a"], around: 11 }, "around must be 0..10"],
    ["negative around", { userIds: ["a"], around: -1 }, "around must be 0..10"],
    ["an invalid board", { board: "Not Valid", userIds: ["a"] }, "board must be 1..64 of a-z, 0-9, ':', '_' or '-'"],
  ])("rejects %s with INVALID_ARGUMENT without reading the store", async (_name, req, message) => {
    const boards = new FakeBoards().seed("global", 5);
    const err = await setup(boards)
      .getStandings(req)
      .catch((e: unknown) => e as ConnectError);
    expect(err).toBeInstanceOf(ConnectError);
    expect([(err as ConnectError).code, (err as ConnectError).rawMessage]).toEqual([Code.InvalidArgument, message]);
    expect(boards.calls).toEqual([]);
  });

  it("answers 1000 users at once", async () => {
    const userIds = Array.from({ length: 1000 }, (_, i) => `user-${i + 1}`);
    const res = await setup(new FakeBoards().seed("global", 1000)).getStandings({ userIds });
    expect(res.standings.map((s) => s.standing?.entry?.rank)).toEqual(userIds.map((_, i) => BigInt(i + 1)));
  });

  it("reads a defined board's current season, in that season's epoch", async () => {
    const laps: BoardRules = {
      boardId: "laps",
      order: "asc",
      tieRule: "first",
      title: "Laps",
      resetSchedule: "daily",
      timeZone: "UTC",
      retainedSeasons: 1,
      builtin: false,
      archived: false,
    };
    const entries = [{ rank: 1, userId: "amy", username: "Amy", score: 61, subscore: 0, reachedAtMs: 0, version: 1, metadata: "" }];
    const seasons: string[] = [];
    const leaderboards = new Leaderboards(new FakeBoards(), {
      definitions: { board: async (id: string) => (id === "laps" ? laps : undefined) },
      reads: {
        page: async () => ({ entries, total: 1 }),
        around: async () => ({ entry: entries[0], page: { entries, total: 1 } }),
        entriesOf: async (_board, season, userIds) => {
          seasons.push(season.id);
          return { entries: entries.filter((e) => userIds.includes(e.userId)), total: 1 };
        },
      },
      now: () => new Date("2026-12-06T15:00:00Z"),
    });
    const client = createClient(
      RankingService,
      createRouterTransport((router) => router.service(RankingService, createRankingService(leaderboards))),
    );
    const res = await client.getStandings({ board: "laps", userIds: ["ben", "amy"] });
    expect(res.standings.map((s) => [s.userId, s.standing?.entry?.score])).toEqual([
      ["ben", undefined],
      ["amy", 61n],
    ]);
    expect(seasons).toEqual(["20261206T0000Z"]);
    expect(res.epoch).toBe("0.20261206T0000Z");
  });

  it("answers UNAVAILABLE when the store is", async () => {
    const refused = Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:6379"), { code: "ECONNREFUSED" });
    expect(await codeOf(setup(new FakeBoards(refused)).getStandings({ userIds: ["a"] }))).toBe(Code.Unavailable);
  });
});

describe("store failures", () => {
  const refused = Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:6379"), { code: "ECONNREFUSED" });

  it.each([
    ["GetLeaderboard", (c: ReturnType<typeof setup>) => c.getLeaderboard({})],
    ["GetRank", (c: ReturnType<typeof setup>) => c.getRank({ userId: "user-1" })],
  ])("%s answers UNAVAILABLE when Redis refuses connections", async (_name, call) => {
    const err = await call(setup(new FakeBoards(refused))).catch((e: unknown) => e as ConnectError);
    expect(err).toBeInstanceOf(ConnectError);
    expect((err as ConnectError).code).toBe(Code.Unavailable);
    expect((err as ConnectError).rawMessage).toBe("leaderboard store is unavailable, retry shortly");
  });

  it("answers INTERNAL for an unexpected store error, without leaking its message", async () => {
    const err = await setup(new FakeBoards(new Error("WRONGTYPE Operation against a key")))
      .getLeaderboard({})
      .catch((e: unknown) => e as ConnectError);
    expect((err as ConnectError).code).toBe(Code.Internal);
    expect((err as ConnectError).message).not.toContain("WRONGTYPE");
  });
});
