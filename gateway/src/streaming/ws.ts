import { EventEmitter } from "node:events";
import type { IncomingMessage } from "node:http";
import type { Socket } from "node:net";
import { WebSocketServer, type WebSocket } from "ws";
import type { LeaderboardEntry } from "@scoreboard/gen/scoreboard/v1/leaderboard_pb";
import type { LeaderboardUpdate } from "@scoreboard/gen/scoreboard/v1/push_pb";
import type { TokenVerifier } from "@scoreboard/platform/auth";
import type { Logger } from "@scoreboard/platform/logger";
import type { OpenCount } from "@scoreboard/platform/metrics";
import { boardIdOfPath, boardUpdateJson, streamLimitOf } from "./board-streams.js";
import { describeError } from "../http.js";
import type { LeaderboardFeeds } from "./leaderboard-feed.js";
import type { LiveDeps } from "./live.js";
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

// /ws/boards/{id}?limit=: any board the gateway serves, a defined board
// following its current season; each message is boardUpdateJson's (rendered
// once per update for every client).
const boardDialect: Dialect = { requiresToken: false, messages: (board, update) => [boardUpdateJson(board, update)] };
const BOARD_STREAM_PATH = "/ws/boards/:boardId";
const BOARD_PATH = new RegExp(`^${BOARD_STREAM_PATH.replace(":boardId", "([^/]+)")}$`);

/** What a path streams: the dialect, and the board and limit it names (seed paths: the global top 10). */
interface WebSocketStream {
  dialect: Dialect;
  board: string;
  limit: number;
}

async function streamOf(url: URL, options: WebSocketOptions): Promise<WebSocketStream> {
  const seed = dialects[url.pathname];
  if (seed) return { dialect: seed, board: "global", limit: 10 };
  const id = BOARD_PATH.exec(url.pathname)![1]!;
  const board = await options.boards.resolve(boardIdOfPath(id));
  return { dialect: boardDialect, board, limit: streamLimitOf(url.searchParams) };
}

// A client this far behind is sent the latest state once it catches up,
// never a queue of every intermediate one.
const MAX_BUFFERED_BYTES = 64 * 1024;

/**
 * A WebSocket as LatestOnlyWriter's body: an update's messages go out
 * together; the socket counts as full while more than MAX_BUFFERED_BYTES
 * wait, and drains when the last message of a write has left with no more
 * than that waiting. A socket no longer open takes (and drops) everything.
 */
export class WebSocketBody extends EventEmitter {
  constructor(private readonly ws: WebSocket) {
    super();
  }

  write(messages: string[]): boolean {
    const ws = this.ws;
    if (ws.readyState !== ws.OPEN) return true;
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
 * WebSocket streams of the top 10 (seeds 002 and 003), fed by the same shared
 * leaderboard feed as SSE and Connect. Browsers cannot set headers on a
 * WebSocket, so the token may also come as the subprotocol pair
 * ["bearer", "<jwt>"] or as ?access_token= (streamToken).
 */
export function createWebSocketUpgrade(options: WebSocketOptions) {
  const server = new WebSocketServer({ noServer: true, maxPayload: 4 * 1024, handleProtocols: (protocols) => (protocols.has("bearer") ? "bearer" : false) });

  return (req: IncomingMessage, socket: Socket, head: Buffer): void => {
    const url = new URL(req.url ?? "/", "http://gateway");
    const dialect = dialects[url.pathname] ?? (BOARD_PATH.test(url.pathname) ? boardDialect : undefined);
    if (!dialect) {
      refuse(socket, 404, "no such stream", "not_found");
      return;
    }
    if (!options.edge.allowsUpgrade(req)) {
      refuse(socket, 403, `origin ${req.headers.origin} is not allowed (CORS_ALLOWED_ORIGINS)`, "permission_denied");
      return;
    }
    const address = options.guard.clientAddress(req);
    void options.guard
      .throttlingRefusedTokens(address, () => authorize(req, dialect, options))
      .then(() => streamOf(url, options))
      .then((stream) => ({ stream, release: options.streamQuota.take(address) }))
      .then(
        ({ stream, release }) => {
          // The socket, not the WebSocket: a handshake ws refuses never makes one.
          socket.once("close", release);
          server.handleUpgrade(req, socket, head, (ws) => serve(ws, stream, options));
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

function serve(ws: WebSocket, { dialect, board, limit }: WebSocketStream, options: WebSocketOptions): void {
  let previous: LeaderboardEntry[] | undefined;
  const writer = new LatestOnlyWriter<LeaderboardUpdate, string[]>(new WebSocketBody(ws), (update) => {
    const messages = dialect.messages(board, update, previous);
    previous = update.entries;
    return messages;
  });
  const unsubscribe = options.feeds.subscribe(board, limit, (update) => writer.send(update));
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
    writer.stop();
    unsubscribe();
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
