import { createClient } from "@connectrpc/connect";
import { PushService } from "@scoreboard/gen/scoreboard/v1/push_pb";
import { RankingService } from "@scoreboard/gen/scoreboard/v1/ranking_pb";
import { createServiceTransport } from "@scoreboard/platform/clients";
import { exitOnStartupError, onShutdown } from "@scoreboard/platform/lifecycle";
import { createLogger } from "@scoreboard/platform/logger";
import { startTracing } from "@scoreboard/platform/tracing";
import { connectNats } from "@scoreboard/platform/nats";
import { serve, startRpcServer } from "@scoreboard/platform/rpc-server";
import { ProcessMetrics } from "@scoreboard/platform/metrics";
import { Readiness, natsCheck } from "@scoreboard/platform/probes";
import { loadPushConfig } from "./config.js";
import { TopNFanout } from "./fanout.js";
import { createPushService } from "./service.js";

const logger = createLogger("push");

async function main(): Promise<void> {
  await startTracing("push");
  const config = loadPushConfig();
  const metrics = new ProcessMetrics();
  const ranking = createServiceTransport(config.rankingUrl, [RankingService], { keepaliveTimeMs: config.grpc.keepaliveTimeMs });
  const rankingClient = createClient(RankingService, ranking.transport);
  const nats = await connectNats(config.natsUrl, "push", logger);

  const fanout = new TopNFanout(
    nats,
    async (board) => {
      const page = await rankingClient.getLeaderboard({ board, limit: 100 }, { timeoutMs: 5_000 });
      return { top: page.entries, asOf: page.asOf };
    },
    logger,
    config.refreshIntervalMs,
    undefined, // the default coalescing window
    metrics.fanoutLatency,
  );
  fanout.start();

  const server = await startRpcServer({
    name: "push",
    host: config.host,
    port: config.port,
    grpcPort: config.grpcPort,
    grpc: config.grpc,
    logger,
    services: [serve(PushService, createPushService(fanout, config.heartbeatMs, metrics.openStreamsOf("watch")))],
    metrics,
    readiness: new Readiness({ checks: { nats: natsCheck(nats) }, logger }),
  });

  onShutdown(logger, async () => {
    await server.close();
    fanout.stop();
    await nats.drain();
    ranking.close();
  });
}

main().catch((err: unknown) => exitOnStartupError(logger, err));
