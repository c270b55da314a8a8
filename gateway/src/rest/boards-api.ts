import type { CallOptions } from "@connectrpc/connect";
import type { BoardEntry, Season } from "@scoreboard/gen/scoreboard/v1/boards_pb";
import { isValidId } from "@scoreboard/platform/auth";
import { boardDefinitionJson, int64Json, timestampJson } from "@scoreboard/platform/board-json";
import { MAX_LIMIT } from "@scoreboard/platform/board-params";
import { HttpError, readJsonObject, sendFailure, sendJson, type Request, type Response } from "../http.js";
import type { Upstreams } from "../upstreams.js";
import { idempotencyKeyOf, type WriteGuard } from "../write-guard.js";
import { ticketOf } from "./actions-api.js";
import type { ReadGate } from "./leaderboard-reads.js";
import type { WriteRules } from "./write-rules.js";

/** Largest GET /api/boards/{id}/users?ids= list (BoardReadService.GetBoardEntries' own bound). */
export const MAX_FRIENDS = 100;
const MAX_AROUND = 50;
const MAX_CURSOR_LENGTH = 1_024;
// A season id is "YYYYMMDDTHHMMZ" or "all"; ranking decides which exist. This only keeps junk out of the call.
const SEASON_SHAPE = /^[0-9A-Za-z]{1,32}$/;
// Scores and their bounds are within ±2^53-1 (boards.proto), so JSON numbers carry them exactly.
const MAX_SCORE = Number.MAX_SAFE_INTEGER;

type Params = Record<string, string>;

/**
 * The boards API: JSON over REST for any defined board. Definitions and
 * submissions go to score (BoardAdminService, BoardScoreService), pages,
 * ranks and seasons to ranking (BoardReadService). A submission is a write
 * like a grant (token, per-address and per-user limits, Idempotency-Key);
 * reads follow the gateway's read rule, and the caller's token goes along
 * (listing definitions needs one with read:leaderboard or admin:score).
 * Failures carry {"success":false,"message","code"} like every REST answer.
 */
export function createBoardsApi(upstreams: Upstreams, guard: WriteGuard, rules: WriteRules, readGate: ReadGate) {
  /** Checks the read rule (a refused token spends its address's quota) and answers the call options for upstream. */
  const admitRead = async (req: Request): Promise<CallOptions> => {
    const authorization = typeof req.headers.authorization === "string" ? req.headers.authorization : undefined;
    await guard.throttlingRefusedTokens(guard.clientAddress(req), () => readGate.check(authorization));
    return { headers: authorization ? { authorization } : {}, timeoutMs: 5_000 };
  };
  const read =
    (answer: (req: Request, params: Params, query: URLSearchParams, call: CallOptions) => Promise<Record<string, unknown>>) =>
    async (req: Request, res: Response, params: Params): Promise<void> => {
      try {
        const query = new URL(req.url ?? "/", "http://gateway").searchParams;
        const call = await admitRead(req);
        sendJson(res, 200, { success: true, ...(await answer(req, params, query, call)) });
      } catch (err) {
        sendFailure(res, err);
      }
    };

  return {
    /** GET /api/boards[?includeArchived=true]: every definition. */
    list: read(async (_req, _params, query, call) => {
      const { boards } = await upstreams.boardAdmin.listBoards({ includeArchived: booleanParam(query, "includeArchived") }, call);
      return { boards: boards.map(boardDefinitionJson) };
    }),

    /** GET /api/boards/{id}: the definition and its current season. */
    get: read(async (_req, params, _query, call) => {
      const { board, currentSeason } = await upstreams.boardAdmin.getBoard({ boardId: boardIdOf(params) }, call);
      return { board: board && boardDefinitionJson(board), season: seasonJson(currentSeason) };
    }),

    /** GET /api/boards/{id}/entries and /seasons/{season}: a page in rank order, continued by ?cursor=. */
    page: read(async (_req, params, query, call) => {
      const page = await upstreams.boardRead.getBoardPage(
        { boardId: boardIdOf(params), season: seasonOf(params.season), limit: limitParam(query), cursor: cursorParam(query) },
        call,
      );
      return { season: seasonJson(page.season), total: int64Json(page.total), entries: page.entries.map(entryJson), nextCursor: page.nextCursor || null };
    }),

    /** GET /api/boards/{id}/seasons: the current season and the retained past ones, newest first. */
    seasons: read(async (_req, params, _query, call) => {
      const { seasons } = await upstreams.boardRead.listSeasons({ boardId: boardIdOf(params) }, call);
      return { seasons: seasons.map(seasonJson) };
    }),

    /** GET /api/boards/{id}/rank/{userId}?around=&season=: a user's entry and neighbours. */
    rank: read(async (_req, params, query, call) => {
      const userId = pathId(params.userId ?? "", "userId");
      const around = integerParam(query, "around", 0, MAX_AROUND, 0);
      const answer = await upstreams.boardRead.getBoardRank({ boardId: boardIdOf(params), season: seasonOf(query.get("season")), userId, around }, call);
      return {
        season: seasonJson(answer.season),
        total: int64Json(answer.total),
        entry: answer.entry ? entryJson(answer.entry) : null,
        neighbourhood: answer.neighbourhood.map(entryJson),
      };
    }),

    /** GET /api/boards/{id}/users?ids=a,b,c&season=: friends' entries in rank order (users without one left out). */
    users: read(async (_req, params, query, call) => {
      const answer = await upstreams.boardRead.getBoardEntries(
        { boardId: boardIdOf(params), season: seasonOf(query.get("season")), userIds: idsParam(query) },
        call,
      );
      return { season: seasonJson(answer.season), entries: answer.entries.map(entryJson) };
    }),

    /** POST /api/boards/{id}/scores {"score","subscore"?,"metadata"?,"actionTicket"?} with an optional Idempotency-Key. */
    async submit(req: Request, res: Response, params: Params): Promise<void> {
      try {
        const boardId = boardIdOf(params);
        const body = await readJsonObject(req);
        const admitted = await guard.admit(req, "rest:boards", rules.boardScores);
        const submitted = await upstreams.boardScore.submitScore(
          {
            boardId,
            score: BigInt(scoreField(body, "score", true)),
            subscore: BigInt(scoreField(body, "subscore", false)),
            metadata: metadataField(body),
            idempotencyKey: idempotencyKeyOf(req),
            actionTicket: ticketOf(body),
          },
          admitted.call,
        );
        sendJson(
          res,
          200,
          {
            success: true,
            boardId: submitted.boardId,
            season: submitted.season,
            entry: submitted.entry ? entryJson(submitted.entry) : null,
            changed: submitted.changed,
            requestId: submitted.requestId,
            replayed: submitted.replayed,
          },
          admitted.headers,
        );
      } catch (err) {
        sendFailure(res, err);
      }
    },
  };
}

// --- request parts ---

function pathId(raw: string, name: string): string {
  let value: string;
  try {
    value = decodeURIComponent(raw);
  } catch {
    throw new HttpError(400, `${name} in the path is not valid percent-encoding`, "invalid_argument");
  }
  if (!isValidId(value)) throw new HttpError(400, `${name} must be 1..64 characters without control characters`, "invalid_argument");
  return value;
}

// Which ids name a board is score's rule (boards.proto); the path only has to carry one.
const boardIdOf = (params: Params) => pathId(params.boardId ?? "", "board id");

/** A season from the path or ?season= ("" = the current one). */
function seasonOf(raw: string | null | undefined): string {
  if (raw === null || raw === undefined || raw === "") return "";
  if (!SEASON_SHAPE.test(raw)) throw new HttpError(400, 'season must be a season id like 20261207T0000Z, or "all"', "invalid_argument");
  return raw;
}

function integerParam(query: URLSearchParams, name: string, min: number, max: number, fallback: number): number {
  const raw = query.get(name);
  if (raw === null || raw === "") return fallback;
  const value = Number(raw);
  if (!/^\d{1,9}$/.test(raw) || value < min || value > max) throw new HttpError(400, `${name} must be an integer ${min}..${max}`, "invalid_argument");
  return value;
}

const limitParam = (query: URLSearchParams) => integerParam(query, "limit", 1, MAX_LIMIT, 0);

function cursorParam(query: URLSearchParams): string {
  const cursor = query.get("cursor") ?? "";
  if (cursor.length > MAX_CURSOR_LENGTH) throw new HttpError(400, "cursor is not one this API returned", "invalid_argument");
  return cursor;
}

function booleanParam(query: URLSearchParams, name: string): boolean {
  const raw = query.get(name);
  if (raw === null || raw === "" || raw === "false") return false;
  if (raw === "true") return true;
  throw new HttpError(400, `${name} must be true or false`, "invalid_argument");
}

function idsParam(query: URLSearchParams): string[] {
  const ids = (query.get("ids") ?? "")
    .split(",")
    .map((id) => id.trim())
    .filter(Boolean);
  if (ids.length === 0) throw new HttpError(400, "ids is required: comma-separated user ids", "invalid_argument");
  if (ids.length > MAX_FRIENDS) throw new HttpError(400, `ids takes at most ${MAX_FRIENDS} user ids`, "invalid_argument");
  const bad = ids.find((id) => !isValidId(id));
  if (bad !== undefined) throw new HttpError(400, "each id must be 1..64 characters without control characters", "invalid_argument");
  return [...new Set(ids)];
}

function scoreField(body: Record<string, unknown>, name: string, required: boolean): number {
  const value = body[name];
  if (value === undefined || value === null) {
    if (required) throw new HttpError(400, `${name} is required`, "invalid_argument");
    return 0;
  }
  if (typeof value !== "number" || !Number.isSafeInteger(value)) {
    throw new HttpError(400, `${name} must be an integer within ±${MAX_SCORE}`, "invalid_argument");
  }
  return value;
}

/** The metadata object as JSON text ("" for none); the board's size cap is score's to check. */
function metadataField(body: Record<string, unknown>): string {
  const value = body.metadata;
  if (value === undefined || value === null) return "";
  if (typeof value !== "object" || Array.isArray(value)) throw new HttpError(400, "metadata must be a JSON object", "invalid_argument");
  return JSON.stringify(value);
}

// --- answers ---

function seasonJson(s: Season | undefined) {
  if (!s) return null;
  return { id: s.id, startsAt: timestampJson(s.startsAt), endsAt: timestampJson(s.endsAt), current: s.current };
}

function entryJson(e: BoardEntry) {
  return {
    rank: int64Json(e.rank),
    userId: e.userId,
    username: e.username,
    score: int64Json(e.score),
    subscore: int64Json(e.subscore),
    metadata: metadataJson(e.metadata),
    reachedAt: timestampJson(e.reachedAt),
  };
}

function metadataJson(text: string): unknown {
  if (text === "") return null;
  try {
    return JSON.parse(text);
  } catch {
    // Score stores only objects it parsed; anything else is shown as it is rather than failing the page.
    return text;
  }
}
