// The boards API and the boards' RPC proxy against in-process fakes of
// score's BoardAdminService/BoardScoreService and ranking's BoardReadService:
// what the gateway sends upstream, how it renders answers, and what it refuses
// before calling anything.
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient, createRouterTransport } from "@connectrpc/connect";
import {
  BoardAdminService,
  BoardDefinitionSchema,
  BoardEntrySchema,
  BoardReadService,
  BoardScoreService,
  ScoreOperator,
  SeasonSchema,
  SortOrder,
  TieRule,
} from "@scoreboard/gen/scoreboard/v1/boards_pb";
import { TokenVerifier, mintToken } from "@scoreboard/platform/auth";
import type { AuthConfig } from "@scoreboard/platform/config";
import { createLogger } from "@scoreboard/platform/logger";
import type { RateLimitCheck, RateLimitDecision, RateLimiter, RateLimitRule } from "@scoreboard/platform/rate-limit";
import type { DemoPage } from "../demo-page.js";
import type { LeaderboardFeeds } from "../streaming/leaderboard-feed.js";
import { createRestHandler } from "../routes.js";
import { registerRpcProxy } from "../rpc-proxy.js";
import { StreamQuota } from "../streaming/stream-quota.js";
import type { StandingWatchers } from "../streaming/standings.js";
import type { Upstreams } from "../upstreams.js";
import { WriteGuard } from "../write-guard.js";
import { ReadGate } from "./leaderboard-reads.js";
import { readWriteRules } from "./write-rules.js";
import { StreamableBoards } from "../streaming/streamable-boards.js";
import { EnvReader } from "@scoreboard/platform/config";

const auth: AuthConfig = { jwtSecret: "boards-api-test-secret-0123456789abcdef", issuer: "scoreboard", audience: "scoreboard-api" };
const rules = readWriteRules(new EnvReader({}));
const season = create(SeasonSchema, {
  id: "20261207T0000Z",
  startsAt: timestampFromDate(new Date("2026-12-07T00:00:00Z")),
  endsAt: timestampFromDate(new Date("2026-12-14T00:00:00Z")),
  current: true,
});
const entry = (rank: number, userId: string, score: number, metadata = "") =>
  create(BoardEntrySchema, {
    rank: BigInt(rank),
    userId,
    username: userId.toUpperCase(),
    score: BigInt(score),
    subscore: 0n,
    metadata,
    reachedAt: timestampFromDate(new Date("2026-12-07T10:00:00Z")),
  });
const laps = create(BoardDefinitionSchema, {
  boardId: "laps",
  title: "Best lap",
  sortOrder: SortOrder.ASCENDING,
  operator: ScoreOperator.BEST,
  resetSchedule: "weekly",
  tieRule: TieRule.FIRST_TO_REACH,
  minScore: 1n,
  revision: 3n,
});

/** A JSON answer, read by the assertions below. */
// biome-ignore lint/suspicious/noExplicitAny: answers of any shape, checked field by field
type Json = Record<string, any>;

/** What each fake upstream was asked, with the authorization it carried. */
const calls: Array<{ method: string; request: Record<string, unknown>; authorization: string | null }> = [];
const record = (method: string, request: object, headers: Headers) => {
  calls.push({ method, request: request as Record<string, unknown>, authorization: headers.get("authorization") });
};

function fakeUpstreams(): Upstreams {
  const transport = createRouterTransport(({ service }) => {
    service(BoardAdminService, {
      listBoards(req, ctx) {
        record("listBoards", req, ctx.requestHeader);
        return { boards: [laps] };
      },
      getBoard(req, ctx) {
        record("getBoard", req, ctx.requestHeader);
        if (req.boardId !== "laps") throw new ConnectError(`no board "${req.boardId}"`, Code.NotFound);
        return { board: laps, currentSeason: season };
      },
      createBoard(req, ctx) {
        record("createBoard", req, ctx.requestHeader);
        return { board: req.board };
      },
      updateBoard(req) {
        if (req.expectedRevision === 1n) throw new ConnectError('board "laps" is at revision 3, not 1: read it again', Code.Aborted);
        return { board: req.board };
      },
      archiveBoard: () => ({ board: laps }),
    });
    service(BoardScoreService, {
      submitScore(req, ctx) {
        record("submitScore", req, ctx.requestHeader);
        return {
          boardId: req.boardId,
          season: season.id,
          entry: entry(0, "alice", Number(req.score), req.metadata),
          changed: true,
          requestId: "r-1",
          replayed: false,
        };
      },
    });
    service(BoardReadService, {
      getBoardPage(req, ctx) {
        record("getBoardPage", req, ctx.requestHeader);
        return { entries: [entry(1, "bob", 41), entry(2, "alice", 42, '{"car":"red"}')], nextCursor: req.cursor ? "" : "c2", season, total: 7n };
      },
      getBoardRank(req, ctx) {
        record("getBoardRank", req, ctx.requestHeader);
        return { entry: entry(2, req.userId, 42), neighbourhood: [entry(1, "bob", 41), entry(2, req.userId, 42)], season, total: 7n };
      },
      getBoardEntries(req, ctx) {
        record("getBoardEntries", req, ctx.requestHeader);
        return { entries: [entry(3, "carol", 50)], season };
      },
      listSeasons(req, ctx) {
        record("listSeasons", req, ctx.requestHeader);
        return { seasons: [season, create(SeasonSchema, { id: "20261130T0000Z", current: false })] };
      },
    });
  });
  return {
    boardAdmin: createClient(BoardAdminService, transport),
    boardScore: createClient(BoardScoreService, transport),
    boardRead: createClient(BoardReadService, transport),
  } as unknown as Upstreams;
}

class AllowingLimiter implements RateLimiter {
  refuse = false;
  async check(rule: RateLimitRule): Promise<RateLimitDecision> {
    return (await this.checkAll([{ rule, key: "" }]))[0]!;
  }
  async checkAll(checks: readonly RateLimitCheck[]): Promise<RateLimitDecision[]> {
    return checks.map(({ rule }) => ({
      allowed: !(this.refuse && rule.name === "board-scores-user"),
      limit: rule.limit,
      remaining: 1,
      retryAfterMs: 30_000,
      resetMs: 60_000,
      degraded: false,
    }));
  }
}

const limiter = new AllowingLimiter();
const upstreams = fakeUpstreams();
const verifier = new TokenVerifier(auth);
const guard = new WriteGuard({ verifier, limiter, ipRule: rules.ip, trustedProxyHops: 0, logger: createLogger("boards-api-test", "silent") });
const readGate = new ReadGate({ requireScope: false, verifier });
const streamableBoards = new StreamableBoards({ regions: new Set(), retention: { daily: 0, weekly: 0, monthly: 0 } }, async () => false);
let server: Server;
let base: string;
let player: string;

beforeAll(async () => {
  const feeds = { subscribe: () => () => {}, current: () => undefined } as unknown as LeaderboardFeeds;
  const page: DemoPage = { serve: () => false };
  const handler = createRestHandler({
    upstreams,
    feeds,
    page,
    guard,
    rules,
    maxIncrement: 5,
    readGate,
    shutdownSignal: () => new AbortController().signal,
    streamHeartbeatMs: 15_000,
    logger: createLogger("boards-api-test", "silent"),
    streamQuota: new StreamQuota(0),
    boards: streamableBoards,
    live: {
      feeds,
      standings: { subscribe: () => () => {} } as unknown as StandingWatchers,
      readGate,
      verifier,
      guard,
      boards: streamableBoards,
      streamQuota: new StreamQuota(0),
      heartbeatMs: 15_000,
    },
  });
  server = createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  player = await mintToken(auth, "alice");
});
afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));
beforeEach(() => {
  calls.length = 0;
  limiter.refuse = false;
});

const getJson = async (path: string, headers: Record<string, string> = {}) => {
  const res = await fetch(base + path, { headers });
  return { status: res.status, body: (await res.json()) as Json };
};
const submit = async (body: unknown, headers: Record<string, string> = {}) => {
  const res = await fetch(`${base}/api/boards/laps/scores`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${player}`, ...headers },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
  return { status: res.status, headers: res.headers, body: (await res.json()) as Json };
};

describe("REST reads", () => {
  it("lists definitions, with ?includeArchived=true passed on and the caller's token forwarded", async () => {
    const { status, body } = await getJson("/api/boards?includeArchived=true", { authorization: `Bearer ${player}` });
    expect(status).toBe(200);
    expect(body.boards).toEqual([
      expect.objectContaining({
        boardId: "laps",
        sortOrder: "ascending",
        operator: "best",
        resetSchedule: "weekly",
        tieRule: "first",
        minScore: 1,
        maxScore: null,
        revision: 3,
      }),
    ]);
    expect(calls[0]).toMatchObject({ method: "listBoards", request: { includeArchived: true }, authorization: `Bearer ${player}` });
  });

  it("answers a definition with its current season, and an unknown board with 404", async () => {
    const { body } = await getJson("/api/boards/laps");
    expect(body.board.title).toBe("Best lap");
    expect(body.season).toEqual({ id: "20261207T0000Z", startsAt: "2026-12-07T00:00:00.000Z", endsAt: "2026-12-14T00:00:00.000Z", current: true });
    const missing = await getJson("/api/boards/nope");
    expect(missing).toEqual({ status: 404, body: { success: false, message: 'no board "nope"', code: "not_found" } });
  });

  it("pages the current season with total and nextCursor, scores as numbers and metadata as an object", async () => {
    const { body } = await getJson("/api/boards/laps/entries?limit=2");
    expect(calls[0]!.request).toMatchObject({ boardId: "laps", season: "", limit: 2, cursor: "" });
    expect(body).toMatchObject({ total: 7, nextCursor: "c2", season: { id: "20261207T0000Z" } });
    expect(body.entries[1]).toEqual({
      rank: 2,
      userId: "alice",
      username: "ALICE",
      score: 42,
      subscore: 0,
      metadata: { car: "red" },
      reachedAt: "2026-12-07T10:00:00.000Z",
    });
    const last = await getJson("/api/boards/laps/entries?limit=2&cursor=c2");
    expect(last.body.nextCursor).toBeNull();
  });

  it("reads a past season's page and lists seasons", async () => {
    await getJson("/api/boards/laps/seasons/20261130T0000Z?limit=5");
    expect(calls[0]!.request).toMatchObject({ boardId: "laps", season: "20261130T0000Z", limit: 5 });
    const { body } = await getJson("/api/boards/laps/seasons");
    expect(body.seasons.map((s: { id: string }) => s.id)).toEqual(["20261207T0000Z", "20261130T0000Z"]);
    expect(body.seasons[1].endsAt).toBeNull();
  });

  it("answers rank around a user and friends' standings", async () => {
    const rank = await getJson("/api/boards/laps/rank/alice?around=1&season=20261130T0000Z");
    expect(calls[0]!.request).toMatchObject({ userId: "alice", around: 1, season: "20261130T0000Z" });
    expect(rank.body).toMatchObject({ total: 7, entry: { rank: 2, userId: "alice" } });
    expect(rank.body.neighbourhood).toHaveLength(2);
    const friends = await getJson("/api/boards/laps/users?ids=carol,dan,carol");
    expect(calls[1]!.request).toMatchObject({ userIds: ["carol", "dan"], season: "" });
    expect(friends.body.entries).toEqual([expect.objectContaining({ rank: 3, userId: "carol", score: 50 })]);
  });

  it.each([
    ["/api/boards/laps/entries?limit=0", "limit must be an integer 1..100"],
    ["/api/boards/laps/entries?limit=101", "limit must be an integer 1..100"],
    ["/api/boards/laps/entries?limit=abc", "limit must be an integer 1..100"],
    [`/api/boards/laps/entries?cursor=${"x".repeat(2000)}`, "cursor is not one this API returned"],
    ["/api/boards/laps/rank/alice?around=51", "around must be an integer 0..50"],
    ["/api/boards/laps/users", "ids is required: comma-separated user ids"],
    [`/api/boards/laps/users?ids=${Array.from({ length: 101 }, (_, i) => `u${i}`).join(",")}`, "ids takes at most 100 user ids"],
    ["/api/boards/laps/seasons/2026-12-07", 'season must be a season id like 20261207T0000Z, or "all"'],
    ["/api/boards?includeArchived=yes", "includeArchived must be true or false"],
    ["/api/boards/%E0%A4%A", "board id in the path is not valid percent-encoding"],
  ])("refuses %s with 400 before calling upstream", async (path, message) => {
    const { status, body } = await getJson(path);
    expect([status, body]).toEqual([400, { success: false, message, code: "invalid_argument" }]);
    expect(calls).toEqual([]);
  });

  it("answers 405 for a method a boards path does not take", async () => {
    const res = await fetch(`${base}/api/boards/laps/entries`, { method: "POST" });
    expect(res.status).toBe(405);
  });
});

describe("REST submissions", () => {
  it("submits score, subscore, metadata, ticket and Idempotency-Key, and answers the entry", async () => {
    const { status, body, headers } = await submit({ score: 42, subscore: 7, metadata: { car: "red" }, actionTicket: "t.k.n" }, { "idempotency-key": "lap-1" });
    expect(status).toBe(200);
    expect(calls[0]).toMatchObject({
      method: "submitScore",
      request: { boardId: "laps", score: 42n, subscore: 7n, metadata: '{"car":"red"}', idempotencyKey: "lap-1", actionTicket: "t.k.n" },
      authorization: `Bearer ${player}`,
    });
    expect(body).toMatchObject({ success: true, boardId: "laps", season: "20261207T0000Z", changed: true, requestId: "r-1", replayed: false });
    expect(body.entry).toMatchObject({ userId: "alice", score: 42, metadata: { car: "red" } });
    expect(headers.get("ratelimit-limit")).toBe("100");
  });

  it.each([
    [{}, "score is required"],
    [{ score: "42" }, "score must be an integer within ±9007199254740991"],
    [{ score: 1.5 }, "score must be an integer within ±9007199254740991"],
    [{ score: 2 ** 53 }, "score must be an integer within ±9007199254740991"],
    [{ score: 1, subscore: "x" }, "subscore must be an integer within ±9007199254740991"],
    [{ score: 1, metadata: [1] }, "metadata must be a JSON object"],
    [{ score: 1, metadata: "x" }, "metadata must be a JSON object"],
  ])("refuses %j with 400", async (body, message) => {
    const answer = await submit(body);
    expect([answer.status, answer.body]).toEqual([400, { success: false, message, code: "invalid_argument" }]);
    expect(calls).toEqual([]);
  });

  it("refuses a body that is not JSON (415), too large (413) or without a token (401)", async () => {
    const typed = await fetch(`${base}/api/boards/laps/scores`, { method: "POST", headers: { authorization: `Bearer ${player}` }, body: '{"score":1}' });
    expect(typed.status).toBe(415);
    expect((await submit({ score: 1, metadata: { pad: "x".repeat(17_000) } })).status).toBe(413);
    const anonymous = await fetch(`${base}/api/boards/laps/scores`, { method: "POST", headers: { "content-type": "application/json" }, body: '{"score":1}' });
    expect(anonymous.status).toBe(401);
    expect(calls).toEqual([]);
  });

  it("applies the board-scores rate limit (429 with Retry-After)", async () => {
    limiter.refuse = true;
    const { status, headers, body } = await submit({ score: 1 });
    expect(status).toBe(429);
    expect(headers.get("retry-after")).toBe("30");
    expect(body.code).toBe("resource_exhausted");
    expect(calls).toEqual([]);
  });

  it("refuses a malformed Idempotency-Key with 400", async () => {
    expect((await submit({ score: 1 }, { "idempotency-key": "x".repeat(300) })).status).toBe(400);
  });
});

describe("RPC proxy", () => {
  const gateway = createRouterTransport((router) =>
    registerRpcProxy(router, {
      upstreams,
      feeds: {} as LeaderboardFeeds,
      guard,
      writeRule: rules.rpc,
      readGate,
      heartbeatMs: 15_000,
      boards: streamableBoards,
      streamQuota: new StreamQuota(0),
    }),
  );

  it("passes reads to ranking and definitions to score with the caller's token", async () => {
    const read = createClient(BoardReadService, gateway);
    const page = await read.getBoardPage({ boardId: "laps", limit: 2 });
    expect(page.total).toBe(7n);
    const admin = createClient(BoardAdminService, gateway);
    await admin.createBoard({ board: laps }, { headers: { authorization: `Bearer ${player}` } });
    expect(calls.map((c) => [c.method, c.authorization])).toEqual([
      ["getBoardPage", null],
      ["createBoard", `Bearer ${player}`],
    ]);
  });

  it("keeps UpdateBoard's ABORTED for a stale revision (other upstream ABORTEDs become UNAVAILABLE)", async () => {
    const admin = createClient(BoardAdminService, gateway);
    const headers = { authorization: `Bearer ${player}` };
    await expect(admin.updateBoard({ board: laps, expectedRevision: 1n }, { headers })).rejects.toMatchObject({ code: Code.Aborted });
    await expect(admin.updateBoard({ board: laps, expectedRevision: 3n }, { headers })).resolves.toMatchObject({ board: { boardId: "laps" } });
  });

  it("admits SubmitScore like a write: a token is required and the retry key goes along", async () => {
    const scores = createClient(BoardScoreService, gateway);
    await expect(scores.submitScore({ boardId: "laps", score: 1n })).rejects.toMatchObject({ code: Code.Unauthenticated });
    const answer = await scores.submitScore({ boardId: "laps", score: 5n }, { headers: { authorization: `Bearer ${player}`, "idempotency-key": "k-1" } });
    expect(answer.entry?.score).toBe(5n);
    expect(calls).toHaveLength(1);
  });
});
