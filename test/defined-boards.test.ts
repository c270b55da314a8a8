// Defined boards' read side (issue 12) on a real PostgreSQL and Redis:
// orders (ascending, descending), ties (first to reach, subscore), keyset
// cursors that stay stable while scores change, friends, counts, seasons
// (past ones readable within retention, a boundary crossed with an injected
// clock), the version rule, reads from PostgreSQL while Redis is away, a
// season Redis lacks loaded on demand, rebuild and reconciliation.
import { afterAll, beforeAll, beforeEach, describe, expect, inject, it } from "vitest";
import { Redis } from "ioredis";
import { sql } from "kysely";
import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Code, type ConnectError, createClient, createRouterTransport } from "@connectrpc/connect";
import { BoardReadService, SortOrder, TieRule } from "@scoreboard/gen/scoreboard/v1/boards_pb";
import { ScoreChangedSchema } from "@scoreboard/gen/scoreboard/v1/events_pb";
import type { Db } from "@scoreboard/platform/db";
import { createLogger } from "@scoreboard/platform/logger";
import { RedisBoards } from "../services/ranking/src/boards.js";
import { applyBoardEntryChanged } from "../services/ranking/src/defined-boards/events.js";
import { PostgresDefinedBoards, type BoardRules } from "../services/ranking/src/defined-boards/postgres-store.js";
import { DefinedBoardReads } from "../services/ranking/src/defined-boards/reads.js";
import { entriesKey, loadedKey, type RedisDefinedBoards } from "../services/ranking/src/defined-boards/redis-store.js";
import { expiryOf, readableSeason } from "../services/ranking/src/defined-boards/seasons.js";
import { createBoardReadService } from "../services/ranking/src/defined-boards/service.js";
import { rebuildBoards } from "../services/ranking/src/rebuild.js";
import { reconcile } from "../services/ranking/src/reconcile.js";
import { freshMigratedDb } from "./harness/database.js";
import { startRedis, type RedisInstance } from "./harness/infra.js";

let redisServer: RedisInstance;
let redis: Redis;
let store: RedisDefinedBoards;
let db: Db;
// Far enough ahead that no season the tests use has expired by the real clock.
let nowMs = Date.parse("2030-01-09T12:00:00Z"); // a Wednesday
const clock = () => new Date(nowMs);
const logger = createLogger("defined-boards-test", "silent");

beforeAll(async () => {
  redisServer = await startRedis();
  redis = new Redis(redisServer.url);
  store = new RedisBoards(redis).defined;
  ({ db } = await freshMigratedDb(inject("infra").databaseUrl));
});
afterAll(async () => {
  redis?.disconnect();
  await db?.destroy();
  await redisServer?.stop();
});
beforeEach(async () => {
  nowMs = Date.parse("2030-01-09T12:00:00Z");
  await redis.flushall();
  await sql`DELETE FROM board_entries`.execute(db);
  await sql`DELETE FROM board_definitions WHERE NOT builtin`.execute(db);
});

interface BoardSpec {
  order?: "asc" | "desc";
  tie?: "first" | "subscore";
  schedule?: string;
  retained?: number;
}
async function defineBoard(boardId: string, spec: BoardSpec = {}): Promise<BoardRules> {
  await db
    .insertInto("board_definitions")
    .values({
      board_id: boardId,
      title: boardId,
      sort_order: spec.order ?? "desc",
      operator: "set",
      tie_rule: spec.tie ?? "first",
      reset_schedule: spec.schedule ?? "weekly",
      retained_seasons: spec.retained ?? 1,
      min_score: null,
      max_score: null,
      archived_at: null,
    })
    .execute();
  return (await new PostgresDefinedBoards(db).board(boardId))!;
}

interface Submission {
  score: number;
  subscore?: number;
  /** ms after the season's start */
  at?: number;
  version?: number;
  season?: string;
  metadata?: string;
  /** Only PostgreSQL gets it (a season Redis never heard of). */
  postgresOnly?: boolean;
}
const versions = new Map<string, number>();
/** Records an entry in PostgreSQL as score does, then delivers its event to Redis as the consumer does. */
async function submit(board: BoardRules, userId: string, s: Submission) {
  const season = readableSeason(board, s.season ?? "", clock());
  const key = `${board.boardId}/${season.id}/${userId}`;
  const version = s.version ?? (versions.get(key) ?? 0) + 1;
  versions.set(key, Math.max(version, versions.get(key) ?? 0));
  const reachedAt = new Date(season.startsAt.getTime() + (s.at ?? 0));
  await sql`INSERT INTO users (user_id, username) VALUES (${userId}, ${`name of ${userId}`}) ON CONFLICT DO NOTHING`.execute(db);
  await sql`
    INSERT INTO board_entries (board_id, season, user_id, score, subscore, metadata, reached_at, version)
    VALUES (${board.boardId}, ${season.id}, ${userId}, ${s.score}, ${s.subscore ?? 0}, ${s.metadata ?? null}, ${reachedAt}, ${version})
    ON CONFLICT (board_id, season, user_id) DO UPDATE SET score = excluded.score, subscore = excluded.subscore,
      metadata = excluded.metadata, reached_at = excluded.reached_at, version = excluded.version
      WHERE board_entries.version < excluded.version`.execute(db);
  if (s.postgresOnly) return true;
  const expiresAt = expiryOf(board, season);
  return applyBoardEntryChanged(
    store,
    create(ScoreChangedSchema, {
      userId,
      username: `name of ${userId}`,
      boardEntry: {
        boardId: board.boardId,
        season: season.id,
        score: BigInt(s.score),
        subscore: BigInt(s.subscore ?? 0),
        reachedAt: timestampFromMs(reachedAt.getTime()),
        version: BigInt(version),
        metadata: s.metadata ?? "",
        sortOrder: board.order === "asc" ? SortOrder.ASCENDING : SortOrder.DESCENDING,
        tieRule: board.tieRule === "subscore" ? TieRule.SUBSCORE : TieRule.FIRST_TO_REACH,
        expiresAt: expiresAt ? timestampFromMs(expiresAt.getTime()) : undefined,
      },
    }),
  );
}

function client(redisStatus: { status: Redis["status"] } = redis) {
  const source = new PostgresDefinedBoards(db);
  const reads = new DefinedBoardReads(store, redisStatus, source, logger);
  const rpc = createClient(
    BoardReadService,
    createRouterTransport((router) => router.service(BoardReadService, createBoardReadService(source, reads, { now: clock }))),
  );
  return { rpc, reads };
}
const down = { status: "reconnecting" as Redis["status"] };

type Rpc = ReturnType<typeof client>["rpc"];
/** Every page of a board, following next_cursor. */
async function allPages(rpc: Rpc, boardId: string, limit: number, season = ""): Promise<[string, number, number][]> {
  const seen: [string, number, number][] = [];
  let cursor = "";
  do {
    const page = await rpc.getBoardPage({ boardId, season, limit, cursor });
    seen.push(...page.entries.map((e): [string, number, number] => [e.userId, Number(e.score), Number(e.rank)]));
    cursor = page.nextCursor;
  } while (cursor);
  return seen;
}
const users = (rows: [string, number, number][]) => rows.map(([u]) => u);

async function codeOf(call: Promise<unknown>): Promise<[Code | undefined, string]> {
  return call.then(
    () => [undefined, ""],
    (err: unknown) => [(err as ConnectError).code, (err as ConnectError).rawMessage],
  );
}

describe("order and ties", () => {
  it("ranks the highest first on a descending board, equal scores by who reached them first", async () => {
    const board = await defineBoard("points");
    await submit(board, "late", { score: 50, at: 3000 });
    await submit(board, "early", { score: 50, at: 1000 });
    await submit(board, "top", { score: 90, at: 5000 });
    await submit(board, "low", { score: 10 });
    const { rpc } = client();
    expect(await allPages(rpc, "points", 2)).toEqual([
      ["top", 90, 1],
      ["early", 50, 2],
      ["late", 50, 3],
      ["low", 10, 4],
    ]);
    const page = await rpc.getBoardPage({ boardId: "points" });
    expect(Number(page.total)).toBe(4);
    expect(page.entries[0]).toMatchObject({ userId: "top", username: "name of top" });
  });

  it("ranks the lowest first on an ascending board", async () => {
    const board = await defineBoard("laps", { order: "asc" });
    await submit(board, "slow", { score: 91_000 });
    await submit(board, "fast", { score: 62_500 });
    await submit(board, "mid", { score: 75_000, at: 10 });
    await submit(board, "mid2", { score: 75_000, at: 5 });
    expect(await allPages(client().rpc, "laps", 3)).toEqual([
      ["fast", 62_500, 1],
      ["mid2", 75_000, 2],
      ["mid", 75_000, 3],
      ["slow", 91_000, 4],
    ]);
  });

  it("orders ties by subscore in the board's order, then by who reached them first", async () => {
    const desc = await defineBoard("puzzle", { tie: "subscore" });
    const asc = await defineBoard("golf", { order: "asc", tie: "subscore" });
    for (const board of [desc, asc]) {
      await submit(board, "a", { score: 7, subscore: -3, at: 1 });
      await submit(board, "b", { score: 7, subscore: 12, at: 2 });
      await submit(board, "c", { score: 7, subscore: 12, at: 1 });
      await submit(board, "d", { score: 7, subscore: 0, at: 0 });
    }
    const { rpc } = client();
    expect(users(await allPages(rpc, "puzzle", 10))).toEqual(["c", "b", "d", "a"]);
    expect(users(await allPages(rpc, "golf", 10))).toEqual(["a", "d", "c", "b"]);
    const entry = (await rpc.getBoardRank({ boardId: "puzzle", userId: "a" })).entry!;
    expect(entry).toMatchObject({ rank: 4n, score: 7n, subscore: -3n });
  });

  it("answers the same pages, ranks and friends from PostgreSQL as from Redis, for every order and tie rule", async () => {
    const shapes: BoardSpec[] = [
      { order: "desc", tie: "first" },
      { order: "asc", tie: "first" },
      { order: "desc", tie: "subscore" },
      { order: "asc", tie: "subscore" },
    ];
    for (const [i, spec] of shapes.entries()) {
      const board = await defineBoard(`shape-${i}`, spec);
      // Few distinct scores, subscores and times: many ties at every level, and user ids of different lengths.
      for (let u = 0; u < 23; u++) {
        await submit(board, `u${(u * 7) % 23}${u % 3 === 0 ? "x" : ""}`, {
          score: u % 4,
          subscore: u % 3,
          at: u % 2,
          metadata: u === 5 ? '{"car": "red"}' : undefined,
        });
      }
      const fromRedis = client();
      const fromPostgres = client(down);
      for (const limit of [1, 4, 10])
        expect(await allPages(fromPostgres.rpc, board.boardId, limit), `${board.boardId} by ${limit}`).toEqual(
          await allPages(fromRedis.rpc, board.boardId, limit),
        );
      const someone = (await fromRedis.rpc.getBoardPage({ boardId: board.boardId, limit: 12 })).entries[11]!.userId;
      const [r, p] = await Promise.all([fromRedis, fromPostgres].map((c) => c.rpc.getBoardRank({ boardId: board.boardId, userId: someone, around: 3 })));
      expect(p!.neighbourhood).toEqual(r!.neighbourhood);
      expect(r!.neighbourhood.map((e) => e.rank)).toEqual([9n, 10n, 11n, 12n, 13n, 14n, 15n]);
      const friends = ["u1", "u5x", "nobody", "u22", "u9x"];
      const [rf, pf] = await Promise.all([fromRedis, fromPostgres].map((c) => c.rpc.getBoardEntries({ boardId: board.boardId, userIds: friends })));
      expect(pf!.entries).toEqual(rf!.entries);
    }
  });
});

describe("cursor", () => {
  it("continues after the last entry shown while scores change: none shown twice, none that kept its place skipped", async () => {
    const board = await defineBoard("race");
    for (let i = 1; i <= 12; i++) await submit(board, `r${String(i).padStart(2, "0")}`, { score: 1000 - i * 10 });
    const { rpc } = client();
    const first = await rpc.getBoardPage({ boardId: "race", limit: 4 });
    expect(first.entries.map((e) => e.userId)).toEqual(["r01", "r02", "r03", "r04"]);
    // r04 (the cursor's own entry) improves to the top; r09 passes the cursor's
    // position from below; r06 leaves the board; r11 gets worse but stays below.
    await submit(board, "r04", { score: 5000 });
    await submit(board, "r09", { score: 995 });
    await store.remove("race", readableSeason(board, "", clock()).id, [{ member: (await memberOfStored("race", board, "r06"))!, userId: "r06" }]);
    await submit(board, "r11", { score: 1 });
    const second = await rpc.getBoardPage({ boardId: "race", limit: 4, cursor: first.nextCursor });
    expect(second.entries.map((e) => e.userId)).toEqual(["r05", "r07", "r08", "r10"]);
    // Ranks are where the entries stand now: r04 and r09 moved above.
    expect(second.entries.map((e) => Number(e.rank))).toEqual([6, 7, 8, 9]);
    const third = await rpc.getBoardPage({ boardId: "race", limit: 4, cursor: second.nextCursor });
    expect(third.entries.map((e) => e.userId)).toEqual(["r12", "r11"]);
    expect(third.nextCursor).toBe("");
  });

  it("finds the cursor's place among equal scores after its entry moved, on either order, in Redis and PostgreSQL", async () => {
    for (const order of ["desc", "asc"] as const) {
      const board = await defineBoard(`tied-${order}`, { order, tie: "subscore" });
      for (let i = 1; i <= 7; i++) await submit(board, `t${i}`, { score: 5, subscore: 0, at: i });
      const first = await client().rpc.getBoardPage({ boardId: board.boardId, limit: 3 });
      expect(first.entries.map((e) => e.userId)).toEqual(["t1", "t2", "t3"]);
      await submit(board, "t3", { score: order === "desc" ? 9 : 1 }); // the cursor's entry moves to the top
      await submit(board, "t5", { score: 5, subscore: order === "desc" ? 1 : -1, at: 50 }); // passes the cursor among the ties
      for (const { rpc } of [client(), client(down)]) {
        const second = await rpc.getBoardPage({ boardId: board.boardId, limit: 3, cursor: first.nextCursor });
        expect(
          second.entries.map((e) => [e.userId, Number(e.rank)]),
          order,
        ).toEqual([
          ["t4", 5],
          ["t6", 6],
          ["t7", 7],
        ]);
      }
    }
  });

  it("gives the same continuation from PostgreSQL after the cursor's entry left", async () => {
    const board = await defineBoard("race2", { order: "asc" });
    for (let i = 1; i <= 6; i++) await submit(board, `q${i}`, { score: i * 10, at: i });
    const first = await client().rpc.getBoardPage({ boardId: "race2", limit: 3 });
    await sql`DELETE FROM board_entries WHERE user_id = 'q3'`.execute(db);
    const second = await client(down).rpc.getBoardPage({ boardId: "race2", limit: 3, cursor: first.nextCursor });
    expect(second.entries.map((e) => [e.userId, Number(e.rank)])).toEqual([
      ["q4", 3],
      ["q5", 4],
      ["q6", 5],
    ]);
  });

  it("refuses a cursor no page gave, and one of another season", async () => {
    const board = await defineBoard("race3");
    await submit(board, "x", { score: 1 });
    await submit(board, "y", { score: 2 });
    const { rpc } = client();
    for (const cursor of ["not a cursor!", "AAAA", Buffer.from("20300107T0000Z|1|bad").toString("base64url")]) {
      const [code, message] = await codeOf(rpc.getBoardPage({ boardId: "race3", cursor }));
      expect(code).toBe(Code.InvalidArgument);
      expect(message).toMatch(/^cursor is not one this board's pages returned/);
    }
    const { nextCursor } = await rpc.getBoardPage({ boardId: "race3", limit: 1 });
    expect(await codeOf(rpc.getBoardPage({ boardId: "race3", limit: 1, cursor: nextCursor, season: "20291231T0000Z" }))).toEqual([
      Code.InvalidArgument,
      'cursor belongs to season "20300107T0000Z", not "20291231T0000Z"',
    ]);
  });
});

/** The member Redis holds for a user (the test's way to remove one). */
async function memberOfStored(boardId: string, board: BoardRules, userId: string): Promise<string | undefined> {
  return (await store.storedOf(boardId, readableSeason(board, "", clock()).id, [userId]))[0]?.member;
}

describe("rank, friends and count", () => {
  it("answers a user's rank with neighbours, friends in rank order, and NOT_FOUND without an entry", async () => {
    const board = await defineBoard("league");
    for (let i = 1; i <= 9; i++) await submit(board, `p${i}`, { score: 100 - i });
    const { rpc } = client();
    const rank = await rpc.getBoardRank({ boardId: "league", userId: "p5", around: 2 });
    expect(rank.entry).toMatchObject({ rank: 5n, userId: "p5", score: 95n });
    expect(rank.neighbourhood.map((e) => e.userId)).toEqual(["p3", "p4", "p5", "p6", "p7"]);
    expect(rank.total).toBe(9n);
    expect((await rpc.getBoardRank({ boardId: "league", userId: "p1", around: 2 })).neighbourhood.map((e) => e.userId)).toEqual(["p1", "p2", "p3"]);
    const friends = await rpc.getBoardEntries({ boardId: "league", userIds: ["p9", "stranger", "p2", "p2", "p6"] });
    expect(friends.entries.map((e) => [e.userId, Number(e.rank)])).toEqual([
      ["p2", 2],
      ["p6", 6],
      ["p9", 9],
    ]);
    expect(await codeOf(rpc.getBoardRank({ boardId: "league", userId: "stranger" }))).toEqual([
      Code.NotFound,
      'user "stranger" has no entry on board "league" in season "20300107T0000Z"',
    ]);
  });

  it("validates its arguments, and points builtin boards at RankingService", async () => {
    await defineBoard("league2");
    const { rpc } = client();
    expect((await codeOf(rpc.getBoardPage({ boardId: "league2", limit: 101 })))[0]).toBe(Code.InvalidArgument);
    expect((await codeOf(rpc.getBoardRank({ boardId: "league2", userId: "u", around: 51 })))[0]).toBe(Code.InvalidArgument);
    const many = Array.from({ length: 101 }, (_, i) => `u${i}`);
    expect(await codeOf(rpc.getBoardEntries({ boardId: "league2", userIds: many }))).toEqual([Code.InvalidArgument, "user_ids takes at most 100 ids"]);
    expect(await codeOf(rpc.getBoardPage({ boardId: "nope" }))).toEqual([Code.NotFound, 'board "nope" does not exist']);
    expect(await codeOf(rpc.getBoardPage({ boardId: "" }))).toEqual([Code.InvalidArgument, "board_id is required"]);
    for (const boardId of ["global", "region:eu", "weekly"]) {
      const [code, message] = await codeOf(rpc.listSeasons({ boardId }));
      expect(code).toBe(Code.FailedPrecondition);
      expect(message).toBe(`board "${boardId}" is builtin: read it with scoreboard.v1.RankingService (GetLeaderboard, GetRank) or the seed endpoints`);
    }
  });
});

describe("seasons", () => {
  it("reads a past season within retention, refuses one past it, and crosses a season boundary on the injected clock", async () => {
    const board = await defineBoard("sprint", { schedule: "daily", retained: 1 });
    nowMs = Date.parse("2030-01-01T23:59:59.999Z");
    await submit(board, "old", { score: 5 });
    const { rpc } = client();
    expect((await rpc.getBoardPage({ boardId: "sprint" })).season).toMatchObject({ id: "20300101T0000Z", current: true });
    nowMs += 1; // midnight: a new season, nothing reset
    const today = await rpc.getBoardPage({ boardId: "sprint" });
    expect(today.season).toMatchObject({ id: "20300102T0000Z", current: true });
    expect(today.entries).toEqual([]);
    await submit(board, "new", { score: 7 });
    expect((await rpc.getBoardPage({ boardId: "sprint" })).entries.map((e) => e.userId)).toEqual(["new"]);
    const past = await rpc.getBoardPage({ boardId: "sprint", season: "20300101T0000Z" });
    expect(past.season).toMatchObject({ id: "20300101T0000Z", current: false });
    expect(past.entries.map((e) => [e.userId, e.score])).toEqual([["old", 5n]]);
    const seasons = await rpc.listSeasons({ boardId: "sprint" });
    expect(seasons.seasons.map((s) => [s.id, s.current])).toEqual([
      ["20300102T0000Z", true],
      ["20300101T0000Z", false],
    ]);
    expect(Number(seasons.seasons[0]!.endsAt!.seconds) * 1000).toBe(Date.parse("2030-01-03T00:00:00Z"));
    nowMs = Date.parse("2030-01-03T00:00:00Z"); // 20300101 is now two seasons back
    expect(await codeOf(rpc.getBoardPage({ boardId: "sprint", season: "20300101T0000Z" }))).toEqual([
      Code.NotFound,
      'season "20300101T0000Z" of board "sprint" is past its retention: board "sprint" keeps its current season and 1 before it',
    ]);
    expect((await codeOf(rpc.getBoardPage({ boardId: "sprint", season: "20300101T0300Z" })))[0]).toBe(Code.NotFound);
    expect(await codeOf(rpc.getBoardPage({ boardId: "sprint", season: "20300105T0000Z" }))).toEqual([
      Code.NotFound,
      'season "20300105T0000Z" of board "sprint" has not started yet',
    ]);
  });

  it("keeps a walk through pages of the current season in that season when the next one begins", async () => {
    const board = await defineBoard("sprint2", { schedule: "daily" });
    nowMs = Date.parse("2030-01-01T23:59:00Z");
    for (const [i, u] of ["a", "b", "c"].entries()) await submit(board, u, { score: 10 - i });
    const { rpc } = client();
    const first = await rpc.getBoardPage({ boardId: "sprint2", limit: 2 });
    nowMs = Date.parse("2030-01-02T00:01:00Z");
    const second = await rpc.getBoardPage({ boardId: "sprint2", limit: 2, cursor: first.nextCursor });
    expect(second.season?.id).toBe("20300101T0000Z");
    expect(second.entries.map((e) => e.userId)).toEqual(["c"]);
  });

  it("reads a season recorded under an earlier reset schedule while the current schedule's season containing it is kept", async () => {
    const daily = await defineBoard("reshaped", { schedule: "daily", retained: 0 });
    nowMs = Date.parse("2030-01-08T09:00:00Z"); // a Tuesday
    await submit(daily, "early-bird", { score: 3 });
    await sql`UPDATE board_definitions SET reset_schedule = 'weekly' WHERE board_id = 'reshaped'`.execute(db);
    nowMs = Date.parse("2030-01-09T12:00:00Z");
    const { rpc } = client();
    const old = await rpc.getBoardPage({ boardId: "reshaped", season: "20300108T0000Z" });
    expect(old.season).toMatchObject({ id: "20300108T0000Z", current: false });
    expect(old.entries.map((e) => e.userId)).toEqual(["early-bird"]);
    expect((await rpc.getBoardPage({ boardId: "reshaped" })).season?.id).toBe("20300107T0000Z");
    expect((await codeOf(rpc.getBoardPage({ boardId: "reshaped", season: "20300108T0300Z" })))[0]).toBe(Code.NotFound);
    nowMs = Date.parse("2030-01-14T00:00:00Z"); // the week containing it has ended and none are retained
    expect((await codeOf(rpc.getBoardPage({ boardId: "reshaped", season: "20300108T0000Z" })))[0]).toBe(Code.NotFound);
  });

  it("sets a season's keys to expire at its expiry", async () => {
    const board = await defineBoard("sprint3", { schedule: "daily", retained: 2 });
    await submit(board, "a", { score: 1 });
    const ttl = await redis.pexpiretime(entriesKey("sprint3", "20300109T0000Z"));
    expect(ttl).toBe(Date.parse("2030-01-12T00:00:00Z"));
  });
});

describe("versions, outages and loads", () => {
  it("changes nothing for a redelivered or older event", async () => {
    const board = await defineBoard("best");
    expect(await submit(board, "u", { score: 10, version: 1 })).toBe(true);
    expect(await submit(board, "u", { score: 30, version: 3 })).toBe(true);
    expect(await submit(board, "u", { score: 30, version: 3 })).toBe(false);
    expect(await submit(board, "u", { score: 20, version: 2, postgresOnly: false })).toBe(false);
    const { rpc } = client();
    const page = await rpc.getBoardPage({ boardId: "best" });
    expect(page.entries.map((e) => e.score)).toEqual([30n]);
    expect(Number(page.total)).toBe(1);
  });

  it("answers from PostgreSQL while Redis is away", async () => {
    const board = await defineBoard("outage");
    await submit(board, "a", { score: 2, metadata: '{"lap": 3}' });
    await submit(board, "b", { score: 1 });
    await redis.flushall(); // Redis has nothing: only PostgreSQL can answer
    const { rpc } = client(down);
    const page = await rpc.getBoardPage({ boardId: "outage" });
    expect(page.entries.map((e) => [e.userId, e.score, e.metadata])).toEqual([
      ["a", 2n, '{"lap": 3}'],
      ["b", 1n, ""],
    ]);
    expect((await rpc.getBoardRank({ boardId: "outage", userId: "b" })).entry?.rank).toBe(2n);
  });

  it("loads a season Redis lacks from PostgreSQL, answering from PostgreSQL meanwhile", async () => {
    const board = await defineBoard("lazy", { retained: 3 });
    nowMs = Date.parse("2029-12-25T10:00:00Z");
    await submit(board, "old1", { score: 4, postgresOnly: true });
    await submit(board, "old2", { score: 9, postgresOnly: true });
    nowMs = Date.parse("2030-01-09T12:00:00Z");
    const { rpc, reads } = client();
    const first = await rpc.getBoardPage({ boardId: "lazy", season: "20291224T0000Z" });
    expect(first.entries.map((e) => e.userId)).toEqual(["old2", "old1"]);
    await reads.settled();
    expect(await redis.exists(loadedKey("lazy", "20291224T0000Z"))).toBe(1);
    expect(await redis.zcard(entriesKey("lazy", "20291224T0000Z"))).toBe(2);
    // Now from Redis: PostgreSQL losing a row does not show.
    await sql`DELETE FROM board_entries WHERE board_id = 'lazy'`.execute(db);
    expect((await rpc.getBoardPage({ boardId: "lazy", season: "20291224T0000Z" })).entries.map((e) => e.userId)).toEqual(["old2", "old1"]);
  });

  it("rebuilds every readable season of every defined board, and reconciliation repairs lost and wrong entries", async () => {
    const board = await defineBoard("cup", { retained: 1 });
    nowMs = Date.parse("2030-01-02T10:00:00Z");
    await submit(board, "last-week", { score: 3, postgresOnly: true });
    nowMs = Date.parse("2030-01-09T12:00:00Z");
    for (const u of ["a", "b", "c"]) await submit(board, u, { score: u.charCodeAt(0), postgresOnly: true });
    const result = await rebuildBoards(db, new RedisBoards(redis), redis, undefined, clock());
    expect(result.definedEntries).toBe(4);
    expect(await redis.zcard(entriesKey("cup", "20300107T0000Z"))).toBe(3);
    expect(await redis.zcard(entriesKey("cup", "20291231T0000Z"))).toBe(1);
    // Lost, at a wrong version and score, and a ghost PostgreSQL never had.
    await redis.zrem(entriesKey("cup", "20300107T0000Z"), (await memberOfStored("cup", board, "a"))!);
    await redis.hdel("{sb}:dusers:cup:20300107T0000Z", "a");
    await redis.hset("{sb}:dusers:cup:20300107T0000Z", "b", `7|${(await memberOfStored("cup", board, "b"))!.split("|")[0]}|0|1|b`);
    await redis.zadd(entriesKey("cup", "20300107T0000Z"), 1, (await memberOfStored("cup", board, "b"))!);
    await redis.zadd(entriesKey("cup", "20300107T0000Z"), 5, "0000000000001|ghost");
    const reconciled = await reconcile(db, new RedisBoards(redis), { now: clock });
    expect(reconciled.definedBoards.seasons).toEqual(["cup/20300107T0000Z", "cup/20291231T0000Z"]);
    expect(reconciled.definedBoards.repaired.map((d) => [d.userId, d.redis, d.postgres]).sort()).toEqual([
      ["a", null, 97],
      ["b", 1, 98],
      ["ghost", 5, null],
    ]);
    expect(users(await allPages(client().rpc, "cup", 10))).toEqual(["c", "b", "a"]);
    expect((await reconcile(db, new RedisBoards(redis), { now: clock })).definedBoards.repaired).toEqual([]);
  });
});
