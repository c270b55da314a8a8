import { EnvReader, defaultPorts, grpcTargetProtocols, readAuth, readCommon, type AuthConfig, type CommonConfig } from "@scoreboard/platform/config";
import { readWriteRules, type WriteRules } from "./rest/write-rules.js";

export interface GatewayConfig extends CommonConfig {
  host: string;
  port: number;
  upstreams: { score: string; ranking: string; push: string };
  sseHeartbeatMs: number;
  /** Verifies tokens of writes so rate limits key on proven users. */
  auth: AuthConfig;
  redisUrl: string;
  rateLimits: WriteRules;
  /** Proxies in front that append to X-Forwarded-For (Envoy: 1). */
  trustedProxyHops: number;
  maxIncrement: number;
  /** Reads (REST, SSE, RPC) need a token with read:leaderboard (seed 000); public by default. */
  readsRequireScope: boolean;
}

export function loadGatewayConfig(env = new EnvReader()): GatewayConfig {
  const common = readCommon(env);
  const config: GatewayConfig = {
    ...common,
    host: env.string("GATEWAY_HOST", "0.0.0.0"),
    port: env.port("GATEWAY_PORT", defaultPorts.gateway),
    upstreams: {
      score: env.url("SCORE_URL", `http://127.0.0.1:${defaultPorts.scoreGrpc}`, grpcTargetProtocols),
      ranking: env.url("RANKING_URL", `http://127.0.0.1:${defaultPorts.rankingGrpc}`, grpcTargetProtocols),
      push: env.url("PUSH_URL", `http://127.0.0.1:${defaultPorts.pushGrpc}`, grpcTargetProtocols),
    },
    sseHeartbeatMs: env.int("SSE_HEARTBEAT_MS", 15_000, 1_000, 300_000),
    auth: readAuth(env, common.mode),
    redisUrl: env.url("REDIS_URL", "redis://127.0.0.1:6379", ["redis:", "rediss:"]),
    rateLimits: readWriteRules(env),
    trustedProxyHops: env.int("TRUSTED_PROXY_HOPS", 0, 0, 10),
    maxIncrement: env.int("SCORE_MAX_INCREMENT", 5, 1, 1_000_000),
    readsRequireScope: env.oneOf("READS_REQUIRE_SCOPE", "false", ["true", "false"]) === "true",
  };
  env.done();
  return config;
}
