import { EnvReader, defaultPorts, grpcTargetProtocols, readCommon, readNatsUrl, type CommonConfig } from "@scoreboard/platform/config";

export interface PushConfig extends CommonConfig {
  host: string;
  port: number;
  /** HTTP/2-only port for gRPC from the other services. */
  grpcPort: number;
  natsUrl: string;
  rankingUrl: string;
  refreshIntervalMs: number;
  /** A stream silent this long gets a heartbeat message. */
  heartbeatMs: number;
}

export function loadPushConfig(env = new EnvReader()): PushConfig {
  const config: PushConfig = {
    ...readCommon(env),
    host: env.string("PUSH_HOST", "127.0.0.1"),
    port: env.port("PUSH_PORT", defaultPorts.push),
    grpcPort: env.port("PUSH_GRPC_PORT", defaultPorts.pushGrpc),
    natsUrl: readNatsUrl(env),
    rankingUrl: env.url("RANKING_URL", `http://127.0.0.1:${defaultPorts.rankingGrpc}`, grpcTargetProtocols),
    refreshIntervalMs: env.int("PUSH_REFRESH_INTERVAL_MS", 5_000, 100, 600_000),
    heartbeatMs: env.int("STREAM_HEARTBEAT_MS", 15_000, 100, 300_000),
  };
  env.done();
  return config;
}
