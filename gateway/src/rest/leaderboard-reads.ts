import { createHash } from "node:crypto";
import { timestampDate, timestampNow } from "@bufbuild/protobuf/wkt";
import type { LeaderboardEntry } from "@scoreboard/gen/scoreboard/v1/leaderboard_pb";
import { Scopes, requireScope, type TokenVerifier } from "@scoreboard/platform/auth";
import { MAX_LIMIT } from "@scoreboard/platform/board-params";
import type { LeaderboardUpdate } from "@scoreboard/gen/scoreboard/v1/push_pb";
import type { LeaderboardFeeds } from "../streaming/leaderboard-feed.js";
import type { Upstreams } from "../upstreams.js";
import { HttpError, sendFailure, type Request, type Response } from "../http.js";

export interface ReadOptions {
  /** Require a token with read:leaderboard on every read (seed 000's OAuth2 scope). */
  requireScope: boolean;
  verifier: TokenVerifier;
}

/**
 * Reads are public unless READS_REQUIRE_SCOPE is set; then every read (REST,
 * SSE, RPC) needs a token with read:leaderboard.
 */
export class ReadGate {
  constructor(private readonly options: ReadOptions) {}

  get required(): boolean {
    return this.options.requireScope;
  }

  async check(authorization: string | null | undefined): Promise<void> {
    if (!this.options.requireScope) return;
    const principal = await this.options.verifier.authenticate(authorization);
    requireScope(principal, Scopes.readLeaderboard);
  }
}

/**
 * The seeds' leaderboard reads: 000 GET /api/scores/leaderboard, 001 GET
 * /api/scores, 003 GET /leaderboard?limit=N and 004 GET /api/leaderboard.
 * Every answer carries an ETag of the entries and Cache-Control: no-cache,
 * so short polling (004's fallback) revalidates and gets 304 when nothing
 * moved.
 */
type Render = (entries: LeaderboardEntry[], asOf: Date) => unknown;

interface Rendered {
  source: LeaderboardUpdate;
  body: Buffer;
  etag: string;
}

/**
 * Reads are answered from the gateway's live feed of the global top 100 (the
 * same stream SSE and WebSocket clients get, at most ~100 ms behind ranking),
 * rendered once per change and dialect; without a live feed (push away, or
 * just started) they go to ranking, which itself falls back to PostgreSQL.
 */
export function createLeaderboardReads(upstreams: Upstreams, gate: ReadGate, feeds: LeaderboardFeeds) {
  // Keep the feed open for the life of the gateway.
  feeds.subscribe("global", MAX_LIMIT, () => {});
  const rendered = new Map<string, Rendered>();

  const serve = async (req: Request, res: Response, dialect: string, limit: number, render: Render) => {
    await gate.check(header(req, "authorization"));
    const live = feeds.current("global", MAX_LIMIT);
    let answer: Rendered | undefined;
    if (live && dialect === "001") {
      // cache_time says how old the data is: a live feed is current now.
      answer = renderOnce(live, live.entries.slice(0, limit), render, timestampNow());
    } else if (live) {
      const key = `${dialect}/${limit}`;
      answer = rendered.get(key);
      if (answer?.source !== live) {
        answer = renderOnce(live, live.entries.slice(0, limit), render);
        rendered.set(key, answer);
      }
    } else {
      const page = await upstreams.ranking.getLeaderboard({ board: "global", limit }, { timeoutMs: 5_000 });
      answer = renderOnce(undefined, page.entries, render, page.asOf);
    }
    const headers = { etag: answer.etag, "cache-control": gate.required ? "private, no-cache" : "no-cache" };
    const known = header(req, "if-none-match");
    if (known?.split(",").some((tag) => tag.trim() === answer.etag || tag.trim() === "*")) {
      res.writeHead(304, headers);
      res.end();
      return;
    }
    res.writeHead(200, { "content-type": "application/json; charset=utf-8", "content-length": String(answer.body.length), ...headers });
    res.end(answer.body);
  };

  const handler =
    (dialect: string, render: Render, limitOf: (req: Request) => number = () => 10) =>
    async (req: Request, res: Response): Promise<void> => {
      try {
        await serve(req, res, dialect, limitOf(req), render);
      } catch (err) {
        sendFailure(res, err);
      }
    };

  return {
    /** Seed 004: {"success":true,"data":[{"userId","score"}]}. */
    actions: handler("004", (entries) => ({
      success: true,
      data: entries.map((e) => ({ userId: e.userId, score: Number(e.score) })),
    })),
    /** Seed 000: {"leaderboard":[{"rank","userId","score"}]}. */
    scores: handler("000", (entries) => ({
      leaderboard: entries.map((e) => ({ rank: Number(e.rank), userId: e.userId, score: Number(e.score) })),
    })),
    /** Seed 001: {"data":[{"userId","username","rank","score"}],"cache_time"}. */
    scoresWithNames: handler("001", (entries, asOf) => ({
      data: entries.map((e) => ({ userId: e.userId, username: e.username, rank: Number(e.rank), score: Number(e.score) })),
      cache_time: asOf.toISOString(),
    })),
    /** Seed 003: [{"playerId","score"}], ?limit=1..100 (default 10). */
    players: handler("003", (entries) => entries.map((e) => ({ playerId: e.userId, score: Number(e.score) })), limitOf),
  };
}

function renderOnce(source: LeaderboardUpdate | undefined, entries: LeaderboardEntry[], render: Render, asOf = source?.asOf): Rendered {
  const etag = `W/"${createHash("sha1")
    .update(entries.map((e) => `${e.userId}\u0000${e.username}\u0000${e.score}`).join("\u0001"))
    .digest("base64url")}"`;
  const body = Buffer.from(JSON.stringify(render(entries, asOf ? timestampDate(asOf) : new Date())));
  return { source: source as LeaderboardUpdate, body, etag };
}

function limitOf(req: Request): number {
  const raw = new URL(req.url ?? "/", "http://gateway").searchParams.get("limit");
  if (raw === null || raw === "") return 10;
  const limit = Number(raw);
  if (!/^\d+$/.test(raw) || limit < 1 || limit > MAX_LIMIT) throw new HttpError(400, `limit must be an integer 1..${MAX_LIMIT}`, "invalid_argument");
  return limit;
}

function header(req: Request, name: string): string | undefined {
  const value = req.headers[name];
  return typeof value === "string" ? value : undefined;
}
