import {
  EnvReader,
  defaultPorts,
  readAuth,
  readCommon,
  readJetStream,
  readNatsUrl,
  type AuthConfig,
  type CommonConfig,
  type JetStreamConfig,
} from "@scoreboard/platform/config";
import { readEventSealConfig, type EventSealConfig } from "@scoreboard/platform/event-seal";
import { readTicketConfig, type TicketConfig } from "@scoreboard/platform/action-ticket";

export interface ScoreConfig extends CommonConfig {
  host: string;
  port: number;
  /** HTTP/2-only port for gRPC from the other services. */
  grpcPort: number;
  databaseUrl: string;
  natsUrl: string;
  /** Replicas and storage of the SCORES stream when score creates it. */
  jetstream: JetStreamConfig;
  auth: AuthConfig;
  /** Signs (and encrypts) every score event; ranking holds the same keys. */
  eventSeal: EventSealConfig;
  /** Largest AddScore delta without admin:score (seed 001: increments 1..5). */
  maxIncrement: number;
  /** Refuse grants for users not in the users table (seed 001) instead of creating them. */
  requireRegistration: boolean;
  outbox: { batchSize: number; pollIntervalMs: number; coalesceMs: number };
  /** Game server keys for signed action tickets; without them no catalog entry may require one. */
  tickets: TicketConfig | undefined;
}

export function loadScoreConfig(env = new EnvReader()): ScoreConfig {
  const common = readCommon(env);
  const config: ScoreConfig = {
    ...common,
    host: env.string("SCORE_HOST", "127.0.0.1"),
    port: env.port("SCORE_PORT", defaultPorts.score),
    grpcPort: env.port("SCORE_GRPC_PORT", defaultPorts.scoreGrpc),
    databaseUrl: env.url("DATABASE_URL", undefined, ["postgres:", "postgresql:"]),
    natsUrl: readNatsUrl(env),
    jetstream: readJetStream(env),
    auth: readAuth(env, common.mode),
    eventSeal: readEventSealConfig(env, common.mode),
    maxIncrement: env.int("SCORE_MAX_INCREMENT", 5, 1, 1_000_000),
    requireRegistration: env.oneOf("REQUIRE_REGISTRATION", "false", ["true", "false"]) === "true",
    tickets: env.optional("GAME_SERVER_PUBLIC_KEYS") || env.optional("GAME_SERVER_JWKS_URL") ? readTicketConfig(env) : undefined,
    outbox: {
      batchSize: env.int("OUTBOX_BATCH_SIZE", 256, 1, 10_000),
      pollIntervalMs: env.int("OUTBOX_POLL_INTERVAL_MS", 1_000, 10, 60_000),
      coalesceMs: env.int("OUTBOX_COALESCE_MS", 10, 0, 1_000),
    },
  };
  env.done();
  return config;
}
