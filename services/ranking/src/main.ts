import { RankingService } from "@scoreboard/gen/scoreboard/v1/ranking_pb";
import { createDb } from "@scoreboard/platform/db";
import { EventSealer } from "@scoreboard/platform/event-seal";
import { exitOnStartupError, onShutdown } from "@scoreboard/platform/lifecycle";
import { createLogger } from "@scoreboard/platform/logger";
import { DeadLettersStream, RankingConsumer, ScoresStream, connectNats, ensureConsumer, ensureStream } from "@scoreboard/platform/nats";
import { createRedis } from "@scoreboard/platform/redis";
import { startRpcServer } from "@scoreboard/platform/rpc-server";
import { BoardChangeAnnouncer } from "./announcer.js";
import { RedisBoards } from "./boards.js";
import { keepBoardsBuilt } from "./rebuild.js";
import { reconcile, scheduleReconciliation } from "./reconcile.js";
import { PostgresStandings, ResilientBoards } from "./standings.js";
import { loadRankingConfig } from "./config.js";
import { ScoreEventConsumer } from "./consumer.js";
import { createRankingService } from "./service.js";

const logger = createLogger("ranking");

async function main(): Promise<void> {
  const config = loadRankingConfig();
  const redis = createRedis(config.redisUrl, logger);
  const db = createDb(config.databaseUrl, 4);
  const redisBoards = new RedisBoards(redis, config.periodRetention);
  const boards = new ResilientBoards(redisBoards, redis, new PostgresStandings(db), logger);
  const checkBoards = keepBoardsBuilt(db, redisBoards, redis, logger, config.periodRetention);
  const stopReconciling = scheduleReconciliation(() => reconcile(db, redisBoards), redis, config.reconcileIntervalMs, (result) => {
    if (result instanceof Error) logger.warn({ err: result.message }, "reconciliation failed");
    else logger.info({ checked: result.checked, repaired: result.repaired.length }, "reconciliation done");
  });

  const nats = await connectNats(config.natsUrl, "ranking", logger);
  const jsm = await nats.jetstreamManager();
  const declare = async () => {
    await ensureStream(jsm, ScoresStream);
    await ensureStream(jsm, DeadLettersStream);
    await ensureConsumer(jsm, ScoresStream.name, RankingConsumer);
  };
  const announcer = new BoardChangeAnnouncer(nats, boards, logger);
  const consumer = new ScoreEventConsumer({
    js: nats.jetstream(),
    boards,
    logger,
    onBoardsChanged: (changed) => announcer.changed(changed),
    declare,
    opener: new EventSealer(config.eventSeal),
    maxDeliver: config.maxDeliver,
  });
  await consumer.start();
  void checkBoards();

  const server = await startRpcServer({
    name: "ranking",
    host: config.host,
    port: config.port,
    grpcPort: config.grpcPort,
    logger,
    services: [RankingService],
    routes: (router) => router.service(RankingService, createRankingService(boards, config.periodRetention)),
  });

  onShutdown(logger, async () => {
    await server.close();
    await consumer.stop();
    await announcer.stop();
    stopReconciling();
    await nats.drain();
    redis.disconnect();
    await db.destroy();
  });
}

main().catch((err: unknown) => exitOnStartupError(logger, err));
