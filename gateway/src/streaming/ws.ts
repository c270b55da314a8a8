import { EventEmitter } from "node:events";
import type { IncomingMessage } from "node:http";
import type { Socket } from "node:net";
import { WebSocketServer, type WebSocket } from "ws";
import type { LeaderboardEntry, StreamPosition } from "@scoreboard/gen/scoreboard/v1/leaderboard_pb";
import type { LeaderboardUpdate } from "@scoreboard/gen/scoreboard/v1/push_pb";
import type { TokenVerifier } from "@scoreboard/platform/auth";
import type { Logger } from "@scoreboard/platform/logger";
import type { OpenCount } from "@scoreboard/platform/metrics";
import { boardIdOfPath, boardStreamResume, boardUpdateJson, streamLimitOf } from "./board-streams.js";
import { describeError } from "../http.js";
import type { LeaderboardFeeds } from "./leaderboard-feed.js";
import { admitLive, type LiveDeps, type LiveSubscription, streamLive } from "./live.js";
import { liveMessageJson } from "./live-json.js";
import { standingSubscriptionOf, subscriptionsOfQuery } from "./live-query.js";
import { resumeVectorOf } from "./resume-vector.js";
import type { ReadGate } from "../rest/leaderboard-reads.js";
import { SECURITY_HEADERS, type EdgePolicy } from "../edge-policy.js";
import type { StreamQuota } from "./stream-quota.js";
import type { StreamableBoards } from "./streamable-boards.js";
import { asRpcError, type WriteGuard } from "../write-guard.js";
import { Heartbeat } from "./heartbeat.js";
import { LatestOnlyWriter } from "./latest-only.js";
import { streamToken } from "./stream-token.js";

export interface WebSocketOptions {
  feeds: LeaderboardFeeds;
  verifier: TokenVerifier;
  readGate: ReadGate;
  shutdownSignal: () => AbortSignal;
  logger: Logger;
  /** The streams' heartbeat interval: a ping goes out every interval. */
  heartbeatMs: number;
  /** Counts the WebSocket streams open right now. */
  openStreams?: OpenCount;
  /** Refuses pages of origins outside CORS_ALLOWED_ORIGINS. */
  edge: EdgePolicy;
  streamQuota: StreamQuota;
  /** Counts refused tokens against their address; knows the client's address. */
  guard: WriteGuard;
  /** The boards /ws/boards/{id} may name: seed boards and defined boards' ids. */
  boards: StreamableBoards;
  /** Live streams' WebSocket dialect (/ws/live, /ws/boards/{id}/standing); counted in openStreams above. */
  live: Omit<LiveDeps, "openStreams">;
}

/** A WebSocket dialect: how to turn board changes into its messages (JSON text). */
interface Dialect {
  /** Seed 002 requires a JWT; seed 003's stream and the boards' follow READS_REQUIRE_SCOPE. */
  requiresToken: boolean;
  messages(board: string, update: LeaderboardUpdate, previous: LeaderboardEntry[] | undefined): string[];
}

const dialects: Record<string, Dialect> = {
  // Seed 002: {"event":"leaderboardUpdate","top10":[{"userId","username","score"}]}.
  "/ws/scoreboard": {
    requiresToken: true,
    messages: (_board, update) => [
      JSON.stringify({ event: "leaderboardUpdate", top10: update.entries.map((e) => ({ userId: e.userId, username: e.username, score: Number(e.score) })) }),
    ],
  },
  // Seed 003: the top scores, and a scoreUpdate for each listed player whose
  // score moved (players outside the top 10 are not followed).
  "/live-updates": {
    requiresToken: false,
    messages: (_board, update, previous) => {
      const before = new Map((previous ?? []).map((e) => [e.userId, e.score]));
      const moved = previous
        ? update.entries.filter((e) => before.get(e.userId) !== e.score).map((e) => ({ type: "scoreUpdate", playerId: e.userId, newScore: Number(e.score) }))
        : [];
      return [{ type: "leaderboardUpdate", topScores: update.entries.map((e) => ({ playerId: e.userId, score: Number(e.score) })) }, ...moved].map((m) =>
        JSON.stringify(m),
      );
    },
  },
};

// /ws/boards/{id}?limit=&resume=: any board the gateway serves, a defined
// board following its current season; each message is boardUpdateJson's
// (rendered once per update for every client).
const boardDialect: Dialect = { requiresToken: false, messages: (board, update) => [boardUpdateJson(board, update)] };
// Live streams (LiveService's WebSocket dialect), each message live-json's:
// /ws/live?subscribe=…&resume=… and /ws/boards/{id}/standing?around=&resume=.
// (Every *_STREAM_PATH here is a route Envoy must pass: scripts/check-envoy-routes.ts reads them.)
const BOARD_STREAM_PATH = "/ws/boards/:boardId";
const STANDING_STREAM_PATH = "/ws/boards/:boardId/standing";
const LIVE_STREAM_PATH = "/ws/live";
const BOARD_PATH = patternOf(BOARD_STREAM_PATH);
const STANDING_PATH = patternOf(STANDING_STREAM_PATH);

function patternOf(path: string): RegExp {
  return new RegExp(`^${path.replace(":boardId", "([^/]+)")}$`);
}

/** A stream a WebSocket asked for, admitted: how it starts on the socket (returning its stop), and its place in the quota. */
interface AdmittedSocket {
  start(ws: WebSocket): () => void;
  release(): void;
}

/** How a path's streams are admitted (token, request, board, quota); refusals are thrown. */
type Admission = (req: IncomingMessage, url: URL, address: string) => Promise<AdmittedSocket>;

function admissionOf(pathname: string, options: WebSocketOptions): Admission | undefined {
  const seed = dialects[pathname];
  if (seed) return (req, _url, address) => admitFeed(req, address, options, seed, async () => ({ board: "global", limit: 10, resume: undefined }));
  const boardId = BOARD_PATH.exec(pathname)?.[1];
  if (boardId !== undefined) {
    return (req, url, address) =>
      admitFeed(req, address, options, boardDialect, async () => {
        const board = await options.boards.resolve(boardIdOfPath(boardId));
        return { board, limit: streamLimitOf(url.searchParams), resume: boardStreamResume(req, url.searchParams, board) };
      });
  }
  if (pathname === LIVE_STREAM_PATH) {
    return (req, url, address) =>
      admitLiveSocket(options.live, req, address, () => subscriptionsOfQuery(url.searchParams, resumeVectorOf(req, url.searchParams)));
  }
  const standingBoard = STANDING_PATH.exec(pathname)?.[1];
  if (standingBoard !== undefined) {
    return (req, url, address) =>
      admitLiveSocket(options.live, req, address, () =>
        standingSubscriptionOf(boardIdOfPath(standingBoard), url.searchParams, resumeVectorOf(req, url.searchParams)),
      );
  }
  return undefined;
}

/** What a feed stream shows: a board's top `limit`, from `resume` on (seed paths: the global top 10). */
interface FeedTarget {
  board: string;
  limit: number;
  resume: StreamPosition | undefined;
}

async function admitFeed(
  req: IncomingMessage,
  address: string,
  options: WebSocketOptions,
  dialect: Dialect,
  target: () => Promise<FeedTarget>,
): Promise<AdmittedSocket> {
  await options.guard.throttlingRefusedTokens(address, () => authorize(req, dialect, options));
  const { board, limit, resume } = await target();
  const release = options.streamQuota.take(address);
  return {
    release,
    start: (ws) => {
      let previous: LeaderboardEntry[] | undefined;
      const writer = new LatestOnlyWriter<LeaderboardUpdate, string[]>(new WebSocketBody(ws), (update) => {
        const messages = dialect.messages(board, update, previous);
        previous = update.entries;
        return messages;
      });
      const unsubscribe = options.feeds.subscribe(board, limit, (update) => writer.send(update), resume);
      return () => {
        writer.stop();
        unsubscribe();
      };
    },
  };
}

/** A live stream over a WebSocket: live.ts's admission and stream (latest per subscription), messages as live-json renders them. */
async function admitLiveSocket(
  deps: Omit<LiveDeps, "openStreams">,
  req: IncomingMessage,
  address: string,
  subscriptions: () => LiveSubscription[],
): Promise<AdmittedSocket> {
  const live = await admitLive(deps, address, streamToken(req), async () => subscriptions());
  return {
    release: live.release,
    // The writer's heartbeat writes nothing: a WebSocket's is the ping (serve).
    start: (ws) => streamLive(deps, live, new WebSocketBody(ws), (message) => (message ? [liveMessageJson(message)] : [])),
  };
}

// A client this far behind is sent the latest state once it catches up,
// never a queue of every intermediate one.
const MAX_BUFFERED_BYTES = 64 * 1024;

/**
 * A WebSocket as LatestOnlyWriter's body: an update's messages go out
 * together; the socket counts as full while more than MAX_BUFFERED_BYTES
 * wait, and drains when the last message of a write has left with no more
 * than that waiting. A socket no longer open takes (and drops) everything;
 * no messages (a live stream's heartbeat) never fill it.
 */
export class WebSocketBody extends EventEmitter {
  constructor(private readonly ws: WebSocket) {
    super();
  }

  write(messages: string[]): boolean {
    const ws = this.ws;
    if (ws.readyState !== ws.OPEN || messages.length === 0) return true;
    messages.forEach((message, i) => {
      ws.send(message, i === messages.length - 1 ? this.sent : undefined);
    });
    return ws.bufferedAmount <= MAX_BUFFERED_BYTES;
  }

  private readonly sent = () => {
    if (this.ws.bufferedAmount <= MAX_BUFFERED_BYTES) this.emit("drain");
  };
}

/**
 * WebSocket streams: the top 10 (seeds 002 and 003) and any board's top,
 * fed by the same shared leaderboard feed as SSE and Connect, and live
 * streams (boards' tops and the caller's standings). Browsers cannot set
 * headers on a WebSocket, so the token may also come as the subprotocol pair
 * ["bearer", "<jwt>"] or as ?access_token= (streamToken).
 */
export function createWebSocketUpgrade(options: WebSocketOptions) {
  const server = new WebSocketServer({ noServer: true, maxPayload: 4 * 1024, handleProtocols: (protocols) => (protocols.has("bearer") ? "bearer" : false) });

  return (req: IncomingMessage, socket: Socket, head: Buffer): void => {
    const url = new URL(req.url ?? "/", "http://gateway");
    const admit = admissionOf(url.pathname, options);
    if (!admit) {
      refuse(socket, 404, "no such stream", "not_found");
      return;
    }
    if (!options.edge.allowsUpgrade(req)) {
      refuse(socket, 403, `origin ${req.headers.origin} is not allowed (CORS_ALLOWED_ORIGINS)`, "permission_denied");
      return;
    }
    const address = options.guard.clientAddress(req);
    void admit(req, url, address).then(
      (admitted) => {
        // The socket, not the WebSocket: a handshake ws refuses never makes one.
        socket.once("close", admitted.release);
        server.handleUpgrade(req, socket, head, (ws) => serve(ws, admitted, options));
      },
      (err: unknown) => {
        const { status, code, message } = describeError(asRpcError(err));
        refuse(socket, status, message, code);
      },
    );
  };
}

async function authorize(req: IncomingMessage, dialect: Dialect, options: WebSocketOptions): Promise<void> {
  const token = streamToken(req);
  if (dialect.requiresToken) await options.verifier.authenticate(token);
  await options.readGate.check(token);
}

function serve(ws: WebSocket, admitted: AdmittedSocket, options: WebSocketOptions): void {
  const stop = admitted.start(ws);
  options.openStreams?.inc();
  // The heartbeat is a ping: it keeps proxies from closing an idle stream and
  // finds dead peers (no pong since the last one), so it goes every interval
  // whatever was written.
  let alive = true;
  const heartbeat = new Heartbeat(options.heartbeatMs, () => {
    if (!alive) return ws.terminate();
    alive = false;
    ws.ping();
  });
  ws.on("pong", () => (alive = true));
  // Clients only listen; anything they send is ignored (maxPayload bounds it).
  ws.on("message", () => {});
  const shutdown = options.shutdownSignal();
  const onShutdown = () => ws.close(1001, "server shutting down");
  shutdown.addEventListener("abort", onShutdown, { once: true });
  ws.once("close", () => {
    options.openStreams?.dec();
    heartbeat.stop();
    stop();
    shutdown.removeEventListener("abort", onShutdown);
  });
  ws.on("error", (err) => options.logger.debug({ err: err.message }, "websocket error"));
}

const REASONS: Record<number, string> = {
  400: "Bad Request",
  401: "Unauthorized",
  403: "Forbidden",
  404: "Not Found",
  429: "Too Many Requests",
  503: "Service Unavailable",
};
const SECURITY_LINES = Object.entries(SECURITY_HEADERS)
  .map(([name, value]) => `${name}: ${value}\r\n`)
  .join("");

function refuse(socket: Socket, status: number, message: string, code: string): void {
  const body = JSON.stringify({ success: false, code, message });
  socket.end(
    `HTTP/1.1 ${status} ${REASONS[status] ?? "Error"}\r\n` +
      `content-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n${SECURITY_LINES}connection: close\r\n\r\n${body}`,
  );
}
