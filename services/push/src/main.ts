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
import { Startup } from "@scoreboard/platform/startup";
import type { NatsConnection } from "nats";
import { loadPushConfig } from "./config.js";
import { BoardMovesRelay } from "./board-moves.js";
import { TopNFanout } from "./fanout.js";
import { createPushService } from "./service.js";

const logger = createLogger("push");

async function main(): Promise<void> {
  await startTracing("push");
  const config = loadPushConfig();
  const metrics = new ProcessMetrics();
  const ranking = createServiceTransport(config.rankingUrl, [RankingService], { keepaliveTimeMs: config.grpc.keepaliveTimeMs });
  const rankingClient = createClient(RankingService, ranking.transport);
  const fanout = new TopNFanout(
    async (board) => {
      const page = await rankingClient.getLeaderboard({ board, limit: 100 }, { timeoutMs: 5_000 });
      return { top: page.entries, asOf: page.asOf, epoch: page.epoch };
    },
    logger,
    config.refreshIntervalMs,
    undefined, // the default coalescing window
    metrics.fanoutLatency,
  );
  const moves = new BoardMovesRelay(fanout, logger);

  // Listening before NATS answers: alive, not ready, until start-up completes.
  let nats: NatsConnection | undefined;
  const startup = new Startup(logger);
  const server = await startRpcServer({
    name: "push",
    host: config.host,
    port: config.port,
    grpcPort: config.grpcPort,
    grpc: config.grpc,
    logger,
    services: [
      serve(
        PushService,
        createPushService(fanout, moves, {
          heartbeatMs: config.heartbeatMs,
          openStreams: metrics.openStreamsOf("watch"),
          openMoveStreams: metrics.openStreamsOf("moves"),
        }),
      ),
    ],
    metrics,
    startup,
    readiness: new Readiness({ checks: { startup: startup.check, nats: natsCheck(() => nats) }, logger }),
  });
  // Also while start-up still waits: what exists by then is closed.
  onShutdown(logger, async () => {
    await server.close();
    moves.stop();
    fanout.stop();
    await nats?.drain();
    ranking.close();
  });

  // connectNats itself retries its first connection for as long as NATS is away.
  nats = await startup.waitFor("nats", () => connectNats(config.natsUrl, "push", logger));
  fanout.start(nats);
  moves.start(nats);
  startup.complete();
}

main().catch((err: unknown) => exitOnStartupError(logger, err));
