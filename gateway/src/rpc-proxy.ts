import { Code, ConnectError, type ConnectRouter, type HandlerContext } from "@connectrpc/connect";
import { IDEMPOTENCY_KEY_HEADER } from "@scoreboard/platform/idempotency-key";
import type { RateLimitRule } from "@scoreboard/platform/rate-limit";
import { fromUpstream } from "./http.js";
import type { ReadGate } from "./rest/leaderboard-reads.js";
import { asRpcError, isRateLimited, type WriteGuard } from "./write-guard.js";
import { PushService } from "@scoreboard/gen/scoreboard/v1/push_pb";
import { BoardAdminService, BoardReadService, BoardScoreService } from "@scoreboard/gen/scoreboard/v1/boards_pb";
import { CatalogService } from "@scoreboard/gen/scoreboard/v1/catalog_pb";
import { RankingService } from "@scoreboard/gen/scoreboard/v1/ranking_pb";
import { ScoreService } from "@scoreboard/gen/scoreboard/v1/score_pb";
import type { OpenCount } from "@scoreboard/platform/metrics";
import type { LeaderboardFeeds } from "./streaming/leaderboard-feed.js";
import type { StreamableBoards } from "./streaming/streamable-boards.js";
import type { Upstreams } from "./upstreams.js";
import { clientAddressKey, type StreamQuota } from "./streaming/stream-quota.js";
import { watchLeaderboardMessages } from "./streaming/watch-leaderboard.js";

export interface RpcProxyOptions {
  upstreams: Upstreams;
  feeds: LeaderboardFeeds;
  guard: WriteGuard;
  writeRule: RateLimitRule;
  readGate: ReadGate;
  heartbeatMs: number;
  /** Seed boards and defined boards' ids: what RankingService reads and WatchLeaderboard name. */
  boards: StreamableBoards;
  streamQuota: StreamQuota;
  /** Counts the WatchLeaderboard streams (Connect, gRPC-Web, gRPC) open right now. */
  openStreams?: OpenCount;
}

/**
 * The public face of the services for browsers (Connect, gRPC-Web) and
 * gRPC clients: unary calls go straight through with the caller's
 * credentials; streams share the gateway's leaderboard feeds.
 */
export function registerRpcProxy(router: ConnectRouter, options: RpcProxyOptions): void {
  const { upstreams, feeds, guard, writeRule, readGate, heartbeatMs, boards, streamQuota, openStreams } = options;
  const forward = (ctx: HandlerContext, passed: readonly string[] = READ_HEADERS) => {
    const headers: Record<string, string> = {};
    for (const name of passed) {
      const value = ctx.requestHeader.get(name);
      // An empty authorization is no credential; an empty retry key must reach score to be refused.
      if (value !== null && (value !== "" || name !== "authorization")) headers[name] = value;
    }
    return { signal: ctx.signal, timeoutMs: ctx.timeoutMs() ?? 10_000, headers };
  };
  // Writes are rate limited per proven user, like the REST routes.
  const admit = async (ctx: HandlerContext) => {
    try {
      await guard.admitUser(ctx.requestHeader.get("authorization"), ctx.values.get(clientAddressKey), writeRule, "rpc");
    } catch (err) {
      if (isRateLimited(err)) {
        for (const [name, value] of Object.entries(err.headers)) ctx.responseHeader.set(name, value);
        throw new ConnectError(err.message, Code.ResourceExhausted);
      }
      throw err;
    }
    return forward(ctx, WRITE_HEADERS);
  };
  router.service(ScoreService, {
    submitAction: async (req, ctx) => upstreams.score.submitAction(req, await admit(ctx)).catch(rethrowClean),
    addScore: async (req, ctx) => upstreams.score.addScore(req, await admit(ctx)).catch(rethrowClean),
  });
  // Score verifies catalog tokens; a refusal it answers counts against the address like ours.
  const throttled = <T>(ctx: HandlerContext, call: () => Promise<T>, rethrow: (err: unknown) => never = rethrowClean) =>
    guard
      .throttlingRefusedTokens(ctx.values.get(clientAddressKey), () => call().catch(rethrow))
      .catch((err: unknown) => {
        throw asRpcError(err);
      });
  const gateRead = (ctx: HandlerContext) =>
    guard
      .throttlingRefusedTokens(ctx.values.get(clientAddressKey), () => readGate.check(ctx.requestHeader.get("authorization")))
      .catch((err: unknown) => {
        throw asRpcError(err);
      });
  router.service(CatalogService, {
    listActions: (req, ctx) => throttled(ctx, () => upstreams.catalog.listActions(req, forward(ctx))),
    putAction: (req, ctx) => throttled(ctx, () => upstreams.catalog.putAction(req, forward(ctx))),
    deleteAction: (req, ctx) => throttled(ctx, () => upstreams.catalog.deleteAction(req, forward(ctx))),
  });
  router.service(RankingService, {
    getLeaderboard: async (req, ctx) => {
      await gateRead(ctx);
      await boards.resolve(req.board);
      return upstreams.ranking.getLeaderboard(req, forward(ctx)).catch(rethrowClean);
    },
    getRank: async (req, ctx) => {
      await gateRead(ctx);
      await boards.resolve(req.board);
      return upstreams.ranking.getRank(req, forward(ctx)).catch(rethrowClean);
    },
  });
  // Defined boards: submissions are writes, definitions are administered like
  // the catalog (score checks admin:score), pages and seasons are reads.
  router.service(BoardScoreService, {
    submitScore: async (req, ctx) => upstreams.boardScore.submitScore(req, await admit(ctx)).catch(rethrowClean),
  });
  router.service(BoardAdminService, {
    createBoard: (req, ctx) => throttled(ctx, () => upstreams.boardAdmin.createBoard(req, forward(ctx))),
    updateBoard: (req, ctx) => throttled(ctx, () => upstreams.boardAdmin.updateBoard(req, forward(ctx)), rethrowRevisionConflict),
    archiveBoard: (req, ctx) => throttled(ctx, () => upstreams.boardAdmin.archiveBoard(req, forward(ctx))),
    listBoards: (req, ctx) => throttled(ctx, () => upstreams.boardAdmin.listBoards(req, forward(ctx))),
    getBoard: (req, ctx) => throttled(ctx, () => upstreams.boardAdmin.getBoard(req, forward(ctx))),
  });
  const boardRead = async <T>(ctx: HandlerContext, call: () => Promise<T>) => {
    await gateRead(ctx);
    return call().catch(rethrowClean);
  };
  router.service(BoardReadService, {
    getBoardPage: (req, ctx) => boardRead(ctx, () => upstreams.boardRead.getBoardPage(req, forward(ctx))),
    getBoardRank: (req, ctx) => boardRead(ctx, () => upstreams.boardRead.getBoardRank(req, forward(ctx))),
    getBoardEntries: (req, ctx) => boardRead(ctx, () => upstreams.boardRead.getBoardEntries(req, forward(ctx))),
    listSeasons: (req, ctx) => boardRead(ctx, () => upstreams.boardRead.listSeasons(req, forward(ctx))),
  });
  // The same WatchLeaderboard as the Connect fast path's, for what that leaves to connect-node.
  const watchDeps = { feeds, readGate, guard, boards, streamQuota, heartbeatMs, openStreams };
  router.service(PushService, {
    watchLeaderboard: (req, ctx) => watchLeaderboardMessages(watchDeps, req, ctx),
  });
}

// What a caller's request passes upstream: its credentials, and for writes
// what score checks too (the retry key, seed 001's API key), as REST does.
const READ_HEADERS = ["authorization"] as const;
const WRITE_HEADERS = ["authorization", IDEMPOTENCY_KEY_HEADER, "x-api-key"] as const;

/**
 * An upstream error carries the upstream's gRPC response headers
 * (content-type application/grpc, grpc-status...); connect would copy them
 * onto our Connect or gRPC-Web answer and make it unreadable. Keep only the
 * code and message.
 */
function rethrowClean(err: unknown): never {
  const upstream = fromUpstream(err);
  throw new ConnectError(upstream.rawMessage, upstream.code);
}

/**
 * UpdateBoard answers ABORTED itself when expected_revision is not the
 * board's (boards.proto): the admin must read the board again, so that one
 * keeps its code rather than becoming a retryable UNAVAILABLE.
 */
function rethrowRevisionConflict(err: unknown): never {
  const error = ConnectError.from(err);
  if (error.code === Code.Aborted) throw new ConnectError(error.rawMessage, Code.Aborted);
  return rethrowClean(err);
}
