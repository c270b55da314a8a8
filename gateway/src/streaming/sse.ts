import { timestampDate } from "@bufbuild/protobuf/wkt";
import type { StreamPosition } from "@scoreboard/gen/scoreboard/v1/leaderboard_pb";
import type { LeaderboardUpdate } from "@scoreboard/gen/scoreboard/v1/push_pb";
import type { OpenCount } from "@scoreboard/platform/metrics";
import { sendFailure, type Request, type Response } from "../http.js";
import type { ReadGate } from "../rest/leaderboard-reads.js";
import type { WriteGuard } from "../write-guard.js";
import { boardIdOfPath, boardStreamId, boardStreamResume, boardUpdateJson, streamLimitOf } from "./board-streams.js";
import { LatestOnlyWriter } from "./latest-only.js";
import type { LeaderboardFeeds } from "./leaderboard-feed.js";
import { singleResumeToken } from "./resume-vector.js";
import type { StreamQuota } from "./stream-quota.js";
import { stopOnCloseOrShutdown } from "./stream-registry.js";
import { streamToken } from "./stream-token.js";
import type { StreamableBoards } from "./streamable-boards.js";

// Every client of a feed gets the same update object: render its frame once,
// not once per client (10,000 clients would mean 10,000 JSON.stringify calls
// per change).
const frames = new WeakMap<LeaderboardUpdate, Buffer>();
function frameOf(update: LeaderboardUpdate): Buffer {
  let frame = frames.get(update);
  if (!frame) {
    const payload = {
      topUsers: update.entries.map((e) => ({ userId: e.userId, score: Number(e.score) })),
      timestamp: (update.asOf ? timestampDate(update.asOf) : new Date()).toISOString(),
    };
    // No id: line: seed 004's clients read everything after "data: " as the
    // payload. Its resumable twin is /api/boards/global/stream.
    frame = Buffer.from(`event: score:update\ndata: ${JSON.stringify(payload)}\n\n`);
    frames.set(update, frame);
  }
  return frame;
}

const boardFrames = new WeakMap<LeaderboardUpdate, Buffer>();
function boardFrameOf(board: string, update: LeaderboardUpdate): Buffer {
  let frame = boardFrames.get(update);
  if (!frame) {
    frame = Buffer.from(`event: board:update\ndata: ${boardUpdateJson(board, update)}\n${idLineOf(board, update)}\n`);
    boardFrames.set(update, frame);
  }
  return frame;
}

/** Seed 004's stream shows the global board. */
const SEED_BOARD = "global";

/**
 * `id: top:<board>@<epoch>~<version>`: EventSource sends it back as
 * Last-Event-ID when it reconnects, and the stream resumes from there. It
 * comes after `data:` (the order of an event's fields is free), so a frame
 * still starts `event: …\ndata: …` as seed 004's clients parse it.
 */
function idLineOf(board: string, update: LeaderboardUpdate): string {
  return update.position ? `id: ${singleResumeToken(boardStreamId(board), update.position)}\n` : "";
}

function resumeOf(req: Request, board: string): StreamPosition | undefined {
  return boardStreamResume(req, new URL(req.url ?? "/", "http://gateway").searchParams, board);
}

export interface SseRouteDeps {
  feeds: LeaderboardFeeds;
  readGate: ReadGate;
  /** Counts refused tokens against their address; knows the client's address. */
  guard: WriteGuard;
  streamQuota: StreamQuota;
  /** The boards /api/boards/{id}/stream may name: seed boards and defined boards' ids. */
  boards: StreamableBoards;
  heartbeatMs: number;
  shutdownSignal: () => AbortSignal;
  /** Counts the SSE streams open right now. */
  openStreams?: OpenCount;
}

type RouteHandler = (req: Request, res: Response, params: Record<string, string>) => Promise<void>;

/** The SSE routes' handlers: seed 004's stream and any board's. */
export function createSseRoutes(deps: SseRouteDeps): { leaderboard: RouteHandler; board: RouteHandler } {
  const options = () => ({ heartbeatMs: deps.heartbeatMs, shutdownSignal: deps.shutdownSignal() });
  /**
   * An SSE route: the read gate (streamToken: EventSource cannot send headers, so a
   * browser may pass ?access_token=), then `open` (which board; refusals
   * answered as JSON), then the address's stream quota.
   */
  const route =
    (open: (req: Request, params: Record<string, string>) => Promise<(res: Response) => void>): RouteHandler =>
    async (req, res, params) => {
      const address = deps.guard.clientAddress(req);
      let serve: (res: Response) => void;
      let release: () => void;
      try {
        await deps.guard.throttlingRefusedTokens(address, () => deps.readGate.check(streamToken(req)));
        serve = await open(req, params);
        release = deps.streamQuota.take(address);
      } catch (err) {
        sendFailure(res, err);
        return;
      }
      deps.openStreams?.inc();
      res.once("close", () => {
        deps.openStreams?.dec();
        release();
      });
      serve(res);
    };
  return {
    leaderboard: route(async (req) => {
      const resume = resumeOf(req, SEED_BOARD);
      return (res) => serveLeaderboardStream(req, res, deps.feeds, { ...options(), resume });
    }),
    board: route(async (req, params) => {
      const board = await deps.boards.resolve(boardIdOfPath(params.boardId!));
      const limit = streamLimitOf(new URL(req.url ?? "/", "http://gateway").searchParams);
      const resume = resumeOf(req, board);
      return (res) => serveBoardStream(req, res, deps.feeds, board, limit, { ...options(), resume });
    }),
  };
}

export interface SseOptions {
  heartbeatMs: number;
  shutdownSignal: AbortSignal;
  /** The position the client last got (Last-Event-ID, ?resume=): nothing is sent until the board is past it. */
  resume?: StreamPosition;
}

/**
 * GET /api/leaderboard/stream (seed 004): `event: connected`, then
 * `event: score:update` with the top 10 at once and on every change, each
 * with its `id:` (resume token).
 */
export function serveLeaderboardStream(req: Request, res: Response, feeds: LeaderboardFeeds, options: SseOptions): void {
  serveStream(req, res, feeds, options, {
    board: SEED_BOARD,
    limit: 10,
    connected: { message: "Connected to leaderboard stream" },
    frameOf,
  });
}

/**
 * GET /api/boards/{id}/stream: `event: connected` with the board, then
 * `event: board:update` (boardUpdateJson, with its `id:`) with the top
 * `limit` at once and on every change. A defined board's stream follows its
 * current season.
 */
export function serveBoardStream(req: Request, res: Response, feeds: LeaderboardFeeds, board: string, limit: number, options: SseOptions): void {
  serveStream(req, res, feeds, options, { board, limit, connected: { board }, frameOf: (update) => boardFrameOf(board, update) });
}

interface SseStream {
  board: string;
  limit: number;
  connected: object;
  frameOf: (update: LeaderboardUpdate) => Buffer;
}

/**
 * A client that cannot keep up is sent only the newest state once its socket
 * drains (LatestOnlyWriter), so no per-client queue grows.
 */
function serveStream(req: Request, res: Response, feeds: LeaderboardFeeds, options: SseOptions, stream: SseStream): void {
  openEventStream(req, res, stream.connected);
  const writer = new LatestOnlyWriter<LeaderboardUpdate | undefined>(res, (update) => (update ? stream.frameOf(update) : HEARTBEAT_FRAME), {
    heartbeat: { intervalMs: options.heartbeatMs, value: undefined },
  });
  const unsubscribe = feeds.subscribe(stream.board, stream.limit, (update) => writer.send(update), options.resume);

  stopOnCloseOrShutdown(
    res,
    options.shutdownSignal,
    () => {
      unsubscribe();
      writer.stop();
    },
    () => res.end(),
  );
}

/** Heartbeats are comments: they keep proxies from closing an idle stream. */
export const HEARTBEAT_FRAME = ": heartbeat\n\n";

/**
 * Starts an SSE answer: its headers, the reconnect delay EventSource waits
 * (2 s), and `event: connected` with `connected` as data.
 */
export function openEventStream(req: Request, res: Response, connected: object): void {
  res.writeHead(200, {
    "content-type": "text/event-stream; charset=utf-8",
    "cache-control": "no-cache, no-transform",
    ...(req.httpVersionMajor === 1 ? { connection: "keep-alive" } : {}),
    "x-accel-buffering": "no",
  });
  res.write(`retry: 2000\nevent: connected\ndata: ${JSON.stringify(connected)}\n\n`);
}
