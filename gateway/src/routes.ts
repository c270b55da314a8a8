import type { Logger } from "@scoreboard/platform/logger";
import type { ProcessMetrics } from "@scoreboard/platform/metrics";
import { inRouteSpan } from "@scoreboard/platform/tracing";
import type { DemoPage } from "./demo-page.js";
import { RouteMeter } from "./http-metrics.js";
import { sendJson, type Request, type Response } from "./http.js";
import type { LeaderboardFeeds } from "./streaming/leaderboard-feed.js";
import { createActionsApi } from "./rest/actions-api.js";
import { createBoardsApi } from "./rest/boards-api.js";
import { createLeaderboardReads, type ReadGate } from "./rest/leaderboard-reads.js";
import { createScoreIncrementApi } from "./rest/score-increment-api.js";
import { createScoreUpdateApi } from "./rest/score-update-api.js";
import { createScoresApi } from "./rest/scores-api.js";
import { createUpdateScoreApi } from "./rest/update-score-api.js";
import type { WriteRules } from "./rest/write-rules.js";
import { createLiveSseRoutes } from "./streaming/live-sse.js";
import { createSseRoutes } from "./streaming/sse.js";
import type { StreamableBoards } from "./streaming/streamable-boards.js";
import type { Upstreams } from "./upstreams.js";
import type { WriteGuard } from "./write-guard.js";
import type { StreamQuota } from "./streaming/stream-quota.js";
import type { LiveDeps } from "./streaming/live.js";

export interface RestDeps {
  upstreams: Upstreams;
  feeds: LeaderboardFeeds;
  page: DemoPage;
  guard: WriteGuard;
  rules: WriteRules;
  maxIncrement: number;
  readGate: ReadGate;
  shutdownSignal: () => AbortSignal;
  streamHeartbeatMs: number;
  logger: Logger;
  /** Counts and times every route below, and the open SSE streams. */
  metrics?: ProcessMetrics;
  streamQuota: StreamQuota;
  /** The boards streams may name: seed boards and defined boards' ids. */
  boards: StreamableBoards;
  /** Live streams' SSE dialect (GET /api/live, /api/boards/{id}/standing); open streams are counted here as "sse". */
  live: Omit<LiveDeps, "openStreams">;
}

type Handler = (req: Request, res: Response, params: Record<string, string>) => void | Promise<void>;
interface Route {
  method: string;
  path: string;
  handler: Handler;
  /** A long-lived answer (SSE): Envoy must give it no timeout (scripts/check-envoy-routes.ts reads this flag). */
  stream?: true;
}

/**
 * Every non-RPC route of the gateway: the seeds' REST dialects, the boards
 * API, SSE (seed 004's, any board's, and live streams') and the demo page. (/healthz, /readyz and /metrics are answered before these, by
 * the RPC server, the same way on every process.)
 */
export function createRestHandler(deps: RestDeps) {
  const { upstreams, guard, rules } = deps;
  const actions = createActionsApi(upstreams, guard, rules);
  const scores = createScoresApi(upstreams, guard, rules);
  const increment = createScoreIncrementApi(upstreams, guard, rules, deps.maxIncrement);
  const scoreUpdate = createScoreUpdateApi(upstreams, guard, rules, deps.maxIncrement);
  const updateScore = createUpdateScoreApi(upstreams, guard, rules);
  const reads = createLeaderboardReads(upstreams, deps.readGate, deps.feeds);
  const boards = createBoardsApi(upstreams, guard, rules, deps.readGate);
  const sse = createSseRoutes({
    feeds: deps.feeds,
    readGate: deps.readGate,
    guard,
    streamQuota: deps.streamQuota,
    boards: deps.boards,
    heartbeatMs: deps.streamHeartbeatMs,
    shutdownSignal: deps.shutdownSignal,
    openStreams: deps.metrics?.openStreamsOf("sse"),
  });
  const liveSse = createLiveSseRoutes({ ...deps.live, openStreams: deps.metrics?.openStreamsOf("sse") }, deps.shutdownSignal);

  // First match wins: seed 002's /api/score/update shadows seed 001's
  // /api/score/{user_id} for a user literally named "update".
  const routes: Route[] = [
    { method: "POST", path: "/api/actions", handler: actions.submitAction },
    { method: "GET", path: "/api/leaderboard", handler: reads.actions },
    { method: "GET", path: "/api/scores/leaderboard", handler: reads.scores },
    { method: "GET", path: "/api/scores", handler: reads.scoresWithNames },
    { method: "GET", path: "/leaderboard", handler: reads.players },
    { method: "GET", path: "/api/leaderboard/stream", handler: sse.leaderboard, stream: true },
    { method: "POST", path: "/api/scores/update", handler: scores.update },
    { method: "POST", path: "/api/score/update", handler: scoreUpdate.update },
    { method: "POST", path: "/api/score/:userId", handler: (req, res, p) => increment.increment(req, res, { userId: p.userId! }) },
    { method: "POST", path: "/update-score", handler: updateScore.update },
    // Defined boards (rest/boards-api.ts); no seed path starts with /api/boards.
    { method: "GET", path: "/api/boards", handler: boards.list },
    { method: "GET", path: "/api/boards/:boardId", handler: boards.get },
    { method: "POST", path: "/api/boards/:boardId/scores", handler: boards.submit },
    { method: "GET", path: "/api/boards/:boardId/entries", handler: boards.page },
    { method: "GET", path: "/api/boards/:boardId/seasons", handler: boards.seasons },
    { method: "GET", path: "/api/boards/:boardId/seasons/:season", handler: boards.page },
    { method: "GET", path: "/api/boards/:boardId/rank/:userId", handler: boards.rank },
    { method: "GET", path: "/api/boards/:boardId/users", handler: boards.users },
    { method: "GET", path: "/api/boards/:boardId/stream", handler: sse.board, stream: true },
    // Live streams (LiveService's SSE dialect): several subscriptions, standings.
    { method: "GET", path: "/api/live", handler: liveSse.live, stream: true },
    { method: "GET", path: "/api/boards/:boardId/standing", handler: liveSse.standing, stream: true },
  ];
  const metrics = deps.metrics;
  const meters = new Map(metrics ? routes.map((route) => [route, new RouteMeter(metrics, route.path, route.method)]) : []);

  return (req: Request, res: Response): void => {
    const path = (req.url ?? "/").split("?")[0] ?? "/";
    let pathMatched = false;
    for (const route of routes) {
      const params = match(route.path, path);
      if (!params) continue;
      pathMatched = true;
      if (route.method !== req.method) continue;
      meters.get(route)?.track(res);
      const run = () => route.handler(req, res, params);
      Promise.resolve(inRouteSpan(req, res, route.path, run)).catch((err: unknown) => {
        deps.logger.error({ err, method: req.method, path }, "route failed");
        if (!res.headersSent) sendJson(res, 500, { success: false, message: "internal error", code: "internal" });
        else res.end();
      });
      return;
    }
    if (deps.page.serve(req, res)) return;
    if (pathMatched) {
      sendJson(res, 405, { success: false, message: `${req.method} is not allowed on ${path}`, code: "method_not_allowed" });
      return;
    }
    sendJson(res, 404, { success: false, message: `no route for ${req.method} ${path}`, code: "not_found" });
  };
}

function match(pattern: string, path: string): Record<string, string> | undefined {
  const want = pattern.split("/");
  const have = path.split("/");
  if (want.length !== have.length) return undefined;
  const params: Record<string, string> = {};
  for (let i = 0; i < want.length; i++) {
    const segment = want[i]!;
    if (segment.startsWith(":")) {
      if (!have[i]) return undefined;
      params[segment.slice(1)] = have[i]!;
    } else if (segment !== have[i]) {
      return undefined;
    }
  }
  return params;
}
