import { EnvReader, defaultPorts, readCommon, readJetStream, readNatsUrl, type CommonConfig, type JetStreamConfig } from "@scoreboard/platform/config";
import { readEventSealConfig, type EventSealConfig } from "@scoreboard/platform/event-seal";
import { readPeriodRetention, type PeriodRetention } from "@scoreboard/platform/periods";

export interface RankingConfig extends CommonConfig {
  host: string;
  port: number;
  /** HTTP/2-only port for gRPC from the other services. */
  grpcPort: number;
  redisUrl: string;
  /** Read-only: the fallback for reads while Redis is down, and the source of rebuilds. */
  databaseUrl: string;
  /** How often one replica compares PostgreSQL with Redis and repairs drift. */
  reconcileIntervalMs: number;
  natsUrl: string;
  /** Replicas and storage of SCORES and SCORES_DLQ when ranking creates them. */
  jetstream: JetStreamConfig;
  /** Verifies (and decrypts) score events; the keys score seals them with. */
  eventSeal: EventSealConfig;
  /** Deliveries of one score event before ranking gives up and dead-letters it. */
  maxDeliver: number;
  /** How long daily, weekly and monthly boards stay readable after their period ended. */
  periodRetention: PeriodRetention;
}

export function loadRankingConfig(env = new EnvReader()): RankingConfig {
  const common = readCommon(env);
  const config: RankingConfig = {
    ...common,
    host: env.string("RANKING_HOST", "127.0.0.1"),
    port: env.port("RANKING_PORT", defaultPorts.ranking),
    grpcPort: env.port("RANKING_GRPC_PORT", defaultPorts.rankingGrpc),
    redisUrl: env.url("REDIS_URL", "redis://127.0.0.1:6379", ["redis:", "rediss:"]),
    databaseUrl: env.url("DATABASE_URL", undefined, ["postgres:", "postgresql:"]),
    reconcileIntervalMs: env.int("RECONCILE_INTERVAL_MS", 24 * 3_600_000, 60_000),
    natsUrl: readNatsUrl(env),
    jetstream: readJetStream(env),
    eventSeal: readEventSealConfig(env, common.mode),
    maxDeliver: env.int("RANKING_MAX_DELIVER", 20, 1, 10_000),
    periodRetention: readPeriodRetention(env),
  };
  env.done();
  return config;
}
