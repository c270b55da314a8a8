import { BoardAdminService, BoardReadService, BoardScoreService } from "@scoreboard/gen/scoreboard/v1/boards_pb";
import { CatalogService } from "@scoreboard/gen/scoreboard/v1/catalog_pb";
import { LiveService } from "@scoreboard/gen/scoreboard/v1/live_pb";
import { PushService } from "@scoreboard/gen/scoreboard/v1/push_pb";
import { RankingService } from "@scoreboard/gen/scoreboard/v1/ranking_pb";
import { ScoreService } from "@scoreboard/gen/scoreboard/v1/score_pb";
import { exitOnStartupError, onShutdown } from "@scoreboard/platform/lifecycle";
import { createLogger } from "@scoreboard/platform/logger";
import { startTracing } from "@scoreboard/platform/tracing";
import { startRpcServer, type RpcServer } from "@scoreboard/platform/rpc-server";
import { ProcessMetrics } from "@scoreboard/platform/metrics";
import { rpcRecorder } from "@scoreboard/platform/rpc-metrics";
import { Readiness, redisCheck } from "@scoreboard/platform/probes";
import { TokenVerifier } from "@scoreboard/platform/auth";
import { RedisSlidingWindowLimiter } from "@scoreboard/platform/rate-limit";
import { createRedis } from "@scoreboard/platform/redis";
import { loadGatewayConfig } from "./config.js";
import { ReadGate } from "./rest/leaderboard-reads.js";
import { WriteGuard } from "./write-guard.js";
import { createWebSocketUpgrade } from "./streaming/ws.js";
import { boundStreamBuffers } from "./streaming/latest-only.js";
import { loadDemoPage } from "./demo-page.js";
import { LeaderboardFeeds } from "./streaming/leaderboard-feed.js";
import type { LiveDeps } from "./streaming/live.js";
import { liveFastPaths, registerLiveService } from "./streaming/live-service.js";
import { StandingWatchers } from "./streaming/standings.js";
import { createRestHandler } from "./routes.js";
import { registerRpcProxy } from "./rpc-proxy.js";
import { createFastStreamHandler } from "./streaming/fast-streams.js";
import { watchLeaderboardFastPath } from "./streaming/watch-stream.js";
import { connectUpstreams } from "./upstreams.js";
import { EdgePolicy } from "./edge-policy.js";
import { StreamQuota, clientAddressKey } from "./streaming/stream-quota.js";
import { StreamableBoards, definedBoardProbe } from "./streaming/streamable-boards.js";
import { createContextValues } from "@connectrpc/connect";

const logger = createLogger("gateway");

async function main(): Promise<void> {
  boundStreamBuffers();
  await startTracing("gateway");
  const config = loadGatewayConfig();
  const metrics = new ProcessMetrics();
  const upstreams = connectUpstreams(config.upstreams, { keepaliveTimeMs: config.grpc.keepaliveTimeMs });
  // Concurrent requests' rate-limit checks leave in one write to Redis.
  const redis = createRedis(config.redisUrl, logger, { autoPipelining: true });
  const verifier = new TokenVerifier(config.auth);
  const readGate = new ReadGate({ requireScope: config.readsRequireScope, verifier });
  const guard = new WriteGuard({
    verifier,
    limiter: new RedisSlidingWindowLimiter(redis, { logger, redisErrors: metrics.redisErrors }),
    ipRule: config.rateLimits.ip,
    trustedProxyHops: config.trustedProxyHops,
    logger,
  });
  const feeds = new LeaderboardFeeds(upstreams.push, logger);
  const page = await loadDemoPage();
  const edge = new EdgePolicy(config.corsAllowedOrigins);
  const streamQuota = new StreamQuota(config.maxStreamsPerAddress);
  const boards = new StreamableBoards(config.boards, definedBoardProbe(upstreams.boardRead));
  const standings = new StandingWatchers(upstreams.ranking, upstreams.push, logger, { reads: metrics.standingReads });
  metrics.trackStandings(() => standings.trackedCount);
  const connectStreams = metrics.openStreamsOf("connect");
  const live: Omit<LiveDeps, "openStreams"> = { feeds, standings, readGate, verifier, guard, boards, streamQuota, heartbeatMs: config.streamHeartbeatMs };

  let server: RpcServer | undefined;
  const rest = createRestHandler({
    upstreams,
    feeds,
    page,
    guard,
    rules: config.rateLimits,
    maxIncrement: config.maxIncrement,
    readGate,
    logger,
    streamHeartbeatMs: config.streamHeartbeatMs,
    shutdownSignal: () => server!.shutdownSignal,
    metrics,
    streamQuota,
    boards,
    live,
  });
  const clientAddress = (req: Parameters<typeof guard.clientAddress>[0]) => guard.clientAddress(req);
  // Server streams for Connect and gRPC-Web without connect-node's per-message machinery.
  const fastStreams = createFastStreamHandler(
    [
      watchLeaderboardFastPath(
        { feeds, readGate, heartbeatMs: config.streamHeartbeatMs, boards, streamQuota, guard, openStreams: connectStreams },
        clientAddress,
      ),
      ...liveFastPaths({ ...live, openStreams: connectStreams }, clientAddress),
    ],
    rpcRecorder(metrics),
  );
  server = await startRpcServer({
    name: "gateway",
    host: config.host,
    port: config.port,
    logger,
    services: [],
    connectOnly: {
      services: [ScoreService, CatalogService, RankingService, PushService, BoardScoreService, BoardAdminService, BoardReadService, LiveService],
      routes: (router) => {
        registerLiveService(router, { ...live, openStreams: connectStreams });
        registerRpcProxy(router, {
          upstreams,
          feeds,
          guard,
          writeRule: config.rateLimits.rpc,
          readGate,
          heartbeatMs: config.streamHeartbeatMs,
          boards,
          streamQuota,
          openStreams: connectStreams,
        });
      },
    },
    contextValues: (req) => createContextValues().set(clientAddressKey, guard.clientAddress(req)),
    limits: config.limits,
    // Security and CORS headers on every answer (preflights answered here), then
    // the server streams' fast path (fast-streams.ts).
    preHandler: (req, res, shutdownSignal) => edge.apply(req, res) || fastStreams(req, res, shutdownSignal),
    fallback: rest,
    onUpgrade: createWebSocketUpgrade({
      feeds,
      verifier,
      readGate,
      shutdownSignal: () => server!.shutdownSignal,
      logger,
      heartbeatMs: config.streamHeartbeatMs,
      openStreams: metrics.openStreamsOf("websocket"),
      edge,
      streamQuota,
      guard,
      boards,
      live,
    }),
    metrics,
    // Redis holds the shared rate limits, which fall back per replica while it
    // is away: degraded, still ready. Upstream services have their own probes.
    readiness: new Readiness({ checks: { redis: redisCheck(redis) }, degradable: ["redis"], degradedGauge: metrics.degraded, logger }),
  });

  onShutdown(logger, async () => {
    feeds.close();
    standings.close();
    await server.close();
    upstreams.close();
    redis.disconnect();
  });
}

main().catch((err: unknown) => exitOnStartupError(logger, err));
