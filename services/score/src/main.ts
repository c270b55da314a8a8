import { BoardAdminService, BoardScoreService } from "@scoreboard/gen/scoreboard/v1/boards_pb";
import { CatalogService } from "@scoreboard/gen/scoreboard/v1/catalog_pb";
import { ScoreService } from "@scoreboard/gen/scoreboard/v1/score_pb";
import { ScoreBatchService } from "@scoreboard/gen/scoreboard/v1/score_batch_pb";
import { ActionTicketVerifier } from "@scoreboard/platform/action-ticket";
import { TokenVerifier } from "@scoreboard/platform/auth";
import { createDb } from "@scoreboard/platform/db";
import { isTransientStoreError } from "@scoreboard/platform/errors";
import { EventSealer } from "@scoreboard/platform/event-seal";
import { exitOnStartupError, onShutdown } from "@scoreboard/platform/lifecycle";
import { createLogger } from "@scoreboard/platform/logger";
import { outsideAnyTrace, startTracing } from "@scoreboard/platform/tracing";
import { ScoresStream, configuredStream, connectNats, ensureStream } from "@scoreboard/platform/nats";
import { serve, serverInterceptors, startRpcServer } from "@scoreboard/platform/rpc-server";
import { ProcessMetrics } from "@scoreboard/platform/metrics";
import { Readiness, natsCheck, postgresCheck } from "@scoreboard/platform/probes";
import { Startup } from "@scoreboard/platform/startup";
import type { NatsConnection } from "nats";
import { createBoardAdminService } from "./boards/board-admin-service.js";
import { createBoardScoreService } from "./boards/board-score-service.js";
import { PostgresBoardStore } from "./boards/board-store.js";
import { PostgresBoardSubmissions } from "./boards/board-submissions.js";
import { CatalogRepository, createCatalogService } from "./catalog.js";
import { loadScoreConfig } from "./config.js";
import { JetStreamPublisher } from "./events.js";
import { PostgresLedger } from "./ledger.js";
import { OutboxRelay } from "./outbox.js";
import { ensureAuditPartitions, migrateToLatest, migrationsCheck } from "./schema.js";
import { readOutboxBacklog, watchOutboxBacklog } from "./outbox-backlog.js";
import { createScoreService } from "./service.js";
import { createScoreBatchService } from "./write-batch.js";

const logger = createLogger("score");

async function main(): Promise<void> {
  await startTracing("score");
  const config = loadScoreConfig();
  const metrics = new ProcessMetrics();
  const db = createDb(config.databaseUrl, 10, logger);
  // Made once NATS answers; grants commit to the outbox before then and go out when it runs.
  let nats: NatsConnection | undefined;
  let relay: OutboxRelay | undefined;

  const verifier = new TokenVerifier(config.auth);
  const ledger = new PostgresLedger(db);
  const tickets = config.tickets ? new ActionTicketVerifier(config.tickets) : undefined;
  const boards = new PostgresBoardStore(db);
  const service = createScoreService({
    ledger,
    verifier,
    tickets,
    logger,
    maxIncrement: config.maxIncrement,
    requireRegistration: config.requireRegistration,
    // The relay's batches serve many grants; each publish span finds its grant through the outbox row.
    onGranted: () => outsideAnyTrace(() => relay?.kick()),
    metrics: { grants: metrics.grants, postgresErrors: metrics.postgresErrors },
  });
  // Listening before the datastores answer: alive, not ready, until start-up completes.
  const startup = new Startup(logger);
  const server = await startRpcServer({
    name: "score",
    host: config.host,
    port: config.port,
    grpcPort: config.grpcPort,
    grpc: config.grpc,
    logger,
    services: [
      serve(ScoreService, service),
      serve(CatalogService, createCatalogService(new CatalogRepository(db), verifier)),
      serve(ScoreBatchService, createScoreBatchService(service, serverInterceptors(metrics))),
      serve(BoardAdminService, createBoardAdminService({ boards, verifier })),
      serve(
        BoardScoreService,
        createBoardScoreService({
          boards,
          submissions: new PostgresBoardSubmissions(db),
          verifier,
          apiKeys: ledger,
          tickets,
          audit: (entry) => ledger.audit(entry),
          logger,
          requireRegistration: config.requireRegistration,
          onSubmitted: () => outsideAnyTrace(() => relay?.kick()),
        }),
      ),
    ],
    metrics,
    startup,
    readiness: new Readiness({
      checks: { startup: startup.check, postgres: postgresCheck(db), migrations: migrationsCheck(db), nats: natsCheck(() => nats) },
      logger,
    }),
  });

  // Also while start-up still waits: what exists by then is closed.
  let stopSamplingBacklog: (() => void) | undefined;
  onShutdown(logger, async () => {
    await server.close();
    stopSamplingBacklog?.();
    await relay?.stop();
    await nats?.drain();
    await db.destroy();
  });

  const applied = await startup.waitFor("postgres", () => migrateToLatest(db), { retryable: isTransientStoreError });
  if (applied.length > 0) logger.info({ migrations: applied }, "migrations applied");
  await startup.waitFor("postgres", () => ensureAuditPartitions(db), { retryable: isTransientStoreError });
  // connectNats itself retries its first connection for as long as NATS is away.
  const nc = await startup.waitFor("nats", () => connectNats(config.natsUrl, "score", logger));
  nats = nc;
  const declareStream = async () => ensureStream(await nc.jetstreamManager(), configuredStream(ScoresStream, config.jetstream), logger);
  await startup.waitFor("nats", declareStream);
  const publisher = new JetStreamPublisher(nc.jetstream(), declareStream, new EventSealer(config.eventSeal));
  relay = new OutboxRelay(db, publisher, logger, config.outbox);
  relay.start();
  stopSamplingBacklog = watchOutboxBacklog(
    () => readOutboxBacklog(db),
    { rows: metrics.outboxBacklog, oldestAgeSeconds: metrics.outboxOldestAge },
    metrics.postgresErrors,
    logger,
  );
  startup.complete();
}

main().catch((err: unknown) => exitOnStartupError(logger, err));
