import { BoardReadService } from "@scoreboard/gen/scoreboard/v1/boards_pb";
import { RankingService } from "@scoreboard/gen/scoreboard/v1/ranking_pb";
import { createDb } from "@scoreboard/platform/db";
import { isTransientStoreError } from "@scoreboard/platform/errors";
import { EventSealer } from "@scoreboard/platform/event-seal";
import { exitOnStartupError, onShutdown } from "@scoreboard/platform/lifecycle";
import { createLogger } from "@scoreboard/platform/logger";
import { startTracing } from "@scoreboard/platform/tracing";
import {
  DeadLettersStream,
  RankingConsumer,
  ScoresStream,
  Subjects,
  configuredStream,
  connectNats,
  ensureConsumer,
  ensureStream,
} from "@scoreboard/platform/nats";
import { createRedis } from "@scoreboard/platform/redis";
import { serve, startRpcServer } from "@scoreboard/platform/rpc-server";
import { ProcessMetrics } from "@scoreboard/platform/metrics";
import { Readiness, natsCheck, postgresCheck, redisCheck } from "@scoreboard/platform/probes";
import { Startup } from "@scoreboard/platform/startup";
import type { NatsConnection } from "nats";
import { BoardChangeAnnouncer } from "./announcer.js";
import { RedisBoards } from "./boards.js";
import { BoardEpochs } from "./epochs.js";
import { BoardMoveAnnouncer } from "./move-announcer.js";
import { keepBoardsBuilt, rebuiltDefinedBoards, rebuiltSeedBoards } from "./rebuild.js";
import { reconcile, scheduleReconciliation, type ReconcileResult } from "./reconcile.js";
import { migrationsCheck } from "./schema.js";
import { PostgresStandings, ResilientBoards } from "./standings.js";
import { loadRankingConfig } from "./config.js";
import { ScoreEventConsumer } from "./consumer.js";
import { watchConsumerLag } from "./consumer-lag.js";
import { createRankingService } from "./service.js";
import { Leaderboards } from "./leaderboards.js";
import { PostgresDefinedBoards } from "./defined-boards/postgres-store.js";
import { DefinedBoardReads } from "./defined-boards/reads.js";
import { createBoardReadService } from "./defined-boards/service.js";

const logger = createLogger("ranking");

async function main(): Promise<void> {
  await startTracing("ranking");
  const config = loadRankingConfig();
  const metrics = new ProcessMetrics();
  // The consumer applies many events at once (see ScoreEventConsumer.handleAll).
  const redis = createRedis(config.redisUrl, logger, { autoPipelining: true });
  const db = createDb(config.databaseUrl, 4, logger);
  const redisBoards = new RedisBoards(redis, config.periodRetention);
  const boards = new ResilientBoards(redisBoards, redis, new PostgresStandings(db), logger, {
    redis: metrics.redisErrors,
    postgres: metrics.postgresErrors,
  });
  const definitions = new PostgresDefinedBoards(db);
  const definedBoards = new DefinedBoardReads(redisBoards.defined, redis, definitions, logger, {
    redis: metrics.redisErrors,
    postgres: metrics.postgresErrors,
  });
  // Names of seed and defined boards, for RankingService and the announcements alike.
  const leaderboards = new Leaderboards(boards, { definitions, reads: definedBoards });
  const epochs = new BoardEpochs(redis, leaderboards);
  // Set once NATS is up; a repair before that reaches streams with push's next refresh.
  let announcer: BoardChangeAnnouncer | undefined;
  let moves: BoardMoveAnnouncer | undefined;
  const afterReconciliation = (result: ReconcileResult | Error) => {
    if (result instanceof Error) {
      logger.warn({ err: result.message }, "reconciliation failed");
      return;
    }
    logger.info(
      {
        checked: result.checked,
        boards: result.boards.length,
        repaired: result.repaired.length,
        definedSeasons: result.definedBoards.seasons.length,
        definedRepaired: result.definedBoards.repaired.length,
      },
      "reconciliation done",
    );
    // Streams showing a repaired board get it now, not at push's next refresh.
    const repaired = [...new Set(result.repaired.map((drift) => drift.board))];
    if (repaired.length > 0) {
      announcer?.repaired(repaired);
      moves?.everything(repaired);
    }
    const definedSeasons = new Map(result.definedBoards.repaired.map((drift) => [`${drift.boardId}:${drift.season}`, drift]));
    for (const drift of definedSeasons.values()) {
      announcer?.definedBoardChanged(drift.boardId, drift.season);
      moves?.definedBoardRepaired(drift.boardId, drift.season);
    }
  };
  // A new generation: every board's epoch changed, and any standing may have.
  const afterRebuild = () => {
    epochs.forget();
    Promise.all([rebuiltSeedBoards(redisBoards, config.periodRetention), rebuiltDefinedBoards(db)]).then(
      ([seed, defined]) => {
        announcer?.repaired([...seed, ...defined]);
        moves?.everything([...seed, ...defined]);
      },
      (err: unknown) => logger.warn({ err: (err as Error).message }, "announcing the rebuilt boards failed"),
    );
  };
  const checkBoards = keepBoardsBuilt(db, redisBoards, redis, logger, {
    retention: config.periodRetention,
    onRebuilding: (running) => boards.setRebuilding(running),
    afterRestart: async () => afterReconciliation(await reconcile(db, redisBoards)),
    afterRebuild,
  });
  const stopReconciling = scheduleReconciliation(() => reconcile(db, redisBoards), redis, config.reconcileIntervalMs, afterReconciliation);

  // Listening before the datastores answer: alive, not ready, until start-up completes.
  let nats: NatsConnection | undefined;
  let consumer: ScoreEventConsumer | undefined;
  let stopSamplingLag: (() => void) | undefined;
  const startup = new Startup(logger);
  const server = await startRpcServer({
    name: "ranking",
    host: config.host,
    port: config.port,
    grpcPort: config.grpcPort,
    grpc: config.grpc,
    logger,
    services: [
      serve(RankingService, createRankingService(leaderboards, config.periodRetention, epochs)),
      serve(BoardReadService, createBoardReadService(definitions, definedBoards)),
    ],
    metrics,
    startup,
    readiness: new Readiness({
      checks: { startup: startup.check, postgres: postgresCheck(db), migrations: migrationsCheck(db), redis: redisCheck(redis), nats: natsCheck(() => nats) },
      // Reads answer from PostgreSQL while Redis is away: degraded, still ready.
      degradable: ["redis"],
      degradedGauge: metrics.degraded,
      logger,
    }),
  });
  // Also while start-up still waits: what exists by then is closed.
  onShutdown(logger, async () => {
    await server.close();
    stopSamplingLag?.();
    await consumer?.stop();
    await announcer?.stop();
    await moves?.stop();
    stopReconciling();
    await nats?.drain();
    redis.disconnect();
    await db.destroy();
  });

  // connectNats itself retries its first connection for as long as NATS is away.
  const nc = await startup.waitFor("nats", () => connectNats(config.natsUrl, "ranking", logger));
  nats = nc;
  const declare = async () => {
    const jsm = await nc.jetstreamManager();
    await ensureStream(jsm, configuredStream(ScoresStream, config.jetstream), logger);
    await ensureStream(jsm, configuredStream(DeadLettersStream, config.jetstream), logger);
    const before = await jsm.consumers.info(ScoresStream.name, RankingConsumer.durable_name).catch(() => undefined);
    await ensureConsumer(jsm, ScoresStream.name, RankingConsumer);
    if (before?.config.filter_subject === Subjects.scoreChanged) {
      // An earlier release's consumer read single events only: batches a
      // newer score published meanwhile were skipped, and a filter widened
      // now does not go back for them. PostgreSQL has them all.
      logger.warn("the ranking consumer now reads batches; reconciling what its earlier filter skipped");
      void reconcile(db, redisBoards).then(afterReconciliation, afterReconciliation);
    }
  };
  const changes = new BoardChangeAnnouncer(nc, leaderboards, logger, undefined, epochs);
  announcer = changes;
  const moved = new BoardMoveAnnouncer(nc, leaderboards, epochs, logger);
  moves = moved;
  const events = new ScoreEventConsumer({
    js: nc.jetstream(),
    boards,
    definedBoards: redisBoards.defined,
    logger,
    onBoardsChanged: (changed, event) => {
      changes.changed(changed);
      moved.granted(event, changed);
    },
    onDefinedBoardChanged: (boardId, season, event) => {
      changes.definedBoardChanged(boardId, season);
      moved.definedEntryChanged(event);
    },
    declare,
    opener: new EventSealer(config.eventSeal),
    maxDeliver: config.maxDeliver,
    metrics: { redeliveries: metrics.redeliveries, deadLetters: metrics.deadLetters, applyFailures: metrics.redisErrors },
  });
  consumer = events;
  await startup.waitFor("nats", () => events.start());
  stopSamplingLag = watchConsumerLag(
    await nc.jetstreamManager(),
    { pending: metrics.consumerPending, ackPending: metrics.consumerAckPending, deadLetters: metrics.deadLetterMessages },
    logger,
  );
  // A Redis found empty is rebuilt from PostgreSQL: once PostgreSQL answers.
  await startup.waitFor("postgres", postgresCheck(db), { retryable: isTransientStoreError });
  void checkBoards();
  startup.complete();
}

main().catch((err: unknown) => exitOnStartupError(logger, err));
