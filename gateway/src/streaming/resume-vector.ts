import type { StreamPosition } from "@scoreboard/gen/scoreboard/v1/leaderboard_pb";
import { parsePositionToken, positionToken } from "@scoreboard/platform/stream-position";
import { HttpError, type Request } from "../http.js";

// Where a client is on each subscription of an SSE or WebSocket stream, as
// one token: space-separated "<subscriptionId>@<epoch>~<version>" items (the
// position part is positionToken's). SSE sends it as every frame's `id:`, so
// EventSource sends it back as Last-Event-ID on its own reconnects; a page
// reload or a WebSocket passes it as ?resume=.

/** Longer resume tokens are refused: ten subscriptions fit in ~1.4 KiB. */
export const MAX_RESUME_BYTES = 2 * 1024;

/** A resume token's positions by subscription id. */
export type ResumeVector = ReadonlyMap<string, StreamPosition>;

/**
 * The positions a token names. Malformed items are skipped (that
 * subscription starts fresh: the client is sent the latest state); a token
 * over MAX_RESUME_BYTES is a 400.
 */
export function parseResumeVector(token: string | null | undefined): ResumeVector {
  const positions = new Map<string, StreamPosition>();
  if (!token) return positions;
  if (Buffer.byteLength(token) > MAX_RESUME_BYTES) {
    throw new HttpError(400, `resume token is longer than ${MAX_RESUME_BYTES} bytes`, "invalid_argument");
  }
  for (const item of token.split(" ")) {
    const at = item.indexOf("@");
    if (at < 1) continue;
    const position = parsePositionToken(item.slice(at + 1));
    if (position) positions.set(item.slice(0, at), position);
  }
  return positions;
}

/**
 * The resume token of an SSE or WebSocket request: Last-Event-ID (what
 * EventSource sends on a reconnect: newer than the ?resume= its URL still
 * carries from the page load), else ?resume=.
 */
export function resumeVectorOf(req: Pick<Request, "headers">, query: URLSearchParams): ResumeVector {
  const header = req.headers["last-event-id"];
  const lastEventId = typeof header === "string" && header !== "" ? header : undefined;
  return parseResumeVector(lastEventId ?? query.get("resume"));
}

/**
 * The positions a stream has given its client, per subscription, starting
 * from those it resumed from: the token of every frame, so a reconnect
 * resumes each subscription from what the client has, not only the one a
 * frame was about.
 */
export class SentPositions {
  private readonly tokens = new Map<string, string>();

  constructor(resumed: Iterable<[string, StreamPosition | undefined]> = []) {
    for (const [id, position] of resumed) if (position) this.tokens.set(id, positionToken(position));
  }

  /** Records that `position` was sent for subscription `id`; returns the token of every position now. */
  sent(id: string, position: StreamPosition): string {
    this.tokens.set(id, positionToken(position));
    return this.token();
  }

  token(): string {
    return Array.from(this.tokens, ([id, token]) => `${id}@${token}`).join(" ");
  }
}

/** The token of a stream of one subscription at `position`. */
export function singleResumeToken(id: string, position: StreamPosition): string {
  return `${id}@${positionToken(position)}`;
}
