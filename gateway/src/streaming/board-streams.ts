import { timestampDate } from "@bufbuild/protobuf/wkt";
import type { LeaderboardUpdate } from "@scoreboard/gen/scoreboard/v1/push_pb";
import { DEFAULT_LIMIT, MAX_LIMIT } from "@scoreboard/platform/board-params";
import type { StreamPosition } from "@scoreboard/gen/scoreboard/v1/leaderboard_pb";
import { HttpError, type Request } from "../http.js";
import { entryJson, positionJson } from "./live-json.js";
import { resumeVectorOf } from "./resume-vector.js";

// What the boards API's live streams share: SSE /api/boards/{id}/stream and
// the WebSocket /ws/boards/{id}, for any board the gateway serves (a defined
// board by its id, following its current season, or a seed board).

/** The board id of a path segment, percent-decoded. */
export function boardIdOfPath(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    throw new HttpError(400, "board id in the path is not valid percent-encoding", "invalid_argument");
  }
}

/** ?limit=: the entries each update carries, 1..100 (10 when absent). */
export function streamLimitOf(query: URLSearchParams): number {
  const raw = query.get("limit");
  if (raw === null || raw === "") return DEFAULT_LIMIT;
  const value = Number(raw);
  if (!/^\d{1,3}$/.test(raw) || value < 1 || value > MAX_LIMIT) throw new HttpError(400, `limit must be an integer 1..${MAX_LIMIT}`, "invalid_argument");
  return value;
}

/** A board stream is one subscription, named as a live stream's top of the board is: its resume token's item. */
export function boardStreamId(board: string): string {
  return `top:${board}`;
}

/** Where a board stream's client resumes from: its item of Last-Event-ID or ?resume= (400 when too long). */
export function boardStreamResume(req: Pick<Request, "headers">, query: URLSearchParams, board: string): StreamPosition | undefined {
  return resumeVectorOf(req, query).get(boardStreamId(board));
}

// Every client of a feed gets the same update object: its JSON is rendered
// once, not once per client. A feed is one board, so the update says which.
const rendered = new WeakMap<LeaderboardUpdate, string>();

/**
 * `{"board","epoch","version","entries":[{"rank","userId","username","score"}…],"asOf"}`:
 * an update as the boards API's streams send it (epoch and version: its
 * StreamPosition, version a decimal string, as on live streams).
 */
export function boardUpdateJson(board: string, update: LeaderboardUpdate): string {
  let json = rendered.get(update);
  if (json === undefined) {
    json = JSON.stringify({
      board,
      ...positionJson(update.position),
      entries: update.entries.map(entryJson),
      asOf: (update.asOf ? timestampDate(update.asOf) : new Date()).toISOString(),
    });
    rendered.set(update, json);
  }
  return json;
}
