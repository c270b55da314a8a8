import { REGION } from "@scoreboard/platform/auth";
import type { BoardRules } from "@scoreboard/platform/board-params";
import { EnvReader, defaultPorts, grpcTargetProtocols, readAuth, readCommon, type AuthConfig, type CommonConfig } from "@scoreboard/platform/config";
import { readPeriodRetention } from "@scoreboard/platform/periods";
import type { ConnectionLimits } from "@scoreboard/platform/rpc-server";
import { readWriteRules, type WriteRules } from "./rest/write-rules.js";

export interface GatewayConfig extends CommonConfig {
  host: string;
  port: number;
  upstreams: { score: string; ranking: string; push: string };
  /** Every stream's heartbeat interval (streaming/heartbeat.ts): SSE comments, Connect and gRPC heartbeats, WebSocket pings. */
  /** Every gateway stream's heartbeat (SSE, WebSocket pings, Connect, gRPC-Web, gRPC). */
  streamHeartbeatMs: number;
  /** Verifies tokens of writes so rate limits key on proven users. */
  auth: AuthConfig;
  redisUrl: string;
  rateLimits: WriteRules;
  /** Proxies in front that append to X-Forwarded-For (Envoy: 1). */
  trustedProxyHops: number;
  maxIncrement: number;
  /** Reads (REST, SSE, RPC) need a token with read:leaderboard (seed 000); public by default. */
  readsRequireScope: boolean;
  /** Timeouts and the per-address connection cap of port 8080. */
  limits: ConnectionLimits;
  /** Open leaderboard streams per client address (0: no cap). */
  maxStreamsPerAddress: number;
  /** Origins whose pages may call the API from a browser (CORS, WebSocket Origin). */
  corsAllowedOrigins: string[];
  /** The boards clients may read and watch: declared regions, periods within retention. */
  boards: BoardRules;
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
    // One name with push's; SSE_HEARTBEAT_MS is what releases before 0.10 read (every stream's, despite the name).
    streamHeartbeatMs: env.int("STREAM_HEARTBEAT_MS", env.int("SSE_HEARTBEAT_MS", 15_000, 100, 300_000), 100, 300_000),
    auth: readAuth(env, common.mode),
    redisUrl: env.url("REDIS_URL", "redis://127.0.0.1:6379", ["redis:", "rediss:"]),
    rateLimits: readWriteRules(env),
    trustedProxyHops: env.int("TRUSTED_PROXY_HOPS", 0, 0, 10),
    maxIncrement: env.int("SCORE_MAX_INCREMENT", 5, 1, 1_000_000),
    readsRequireScope: env.oneOf("READS_REQUIRE_SCOPE", "false", ["true", "false"]) === "true",
    limits: {
      headersTimeoutMs: env.int("GATEWAY_HEADERS_TIMEOUT_MS", 10_000, 100, 120_000),
      requestTimeoutMs: env.int("GATEWAY_REQUEST_TIMEOUT_MS", 30_000, 100, 600_000),
      idleTimeoutMs: env.int("GATEWAY_IDLE_TIMEOUT_MS", 65_000, 1_000, 3_600_000),
      maxConnectionsPerAddress: env.int("GATEWAY_MAX_CONNECTIONS_PER_IP", 256, 0, 1_000_000),
    },
    maxStreamsPerAddress: env.int("GATEWAY_MAX_STREAMS_PER_IP", 32, 0, 1_000_000),
    corsAllowedOrigins: readOrigins(env),
    boards: { regions: new Set(readRegions(env)), retention: readPeriodRetention(env) },
  };
  if (config.limits.requestTimeoutMs < config.limits.headersTimeoutMs) {
    env.problem("GATEWAY_REQUEST_TIMEOUT_MS must be at least GATEWAY_HEADERS_TIMEOUT_MS");
  }
  env.done();
  return config;
}

/** CORS_ALLOWED_ORIGINS: comma-separated origins, each scheme://host[:port] with nothing after it. */
function readOrigins(env: EnvReader): string[] {
  const origins: string[] = [];
  for (const raw of (env.optional("CORS_ALLOWED_ORIGINS") ?? "")
    .split(",")
    .map((o) => o.trim())
    .filter(Boolean)) {
    let url: URL | undefined;
    try {
      url = new URL(raw);
    } catch {
      // reported below
    }
    if (!url || (url.protocol !== "https:" && url.protocol !== "http:") || url.origin !== raw) {
      env.problem(`CORS_ALLOWED_ORIGINS: "${raw}" is not an origin like https://game.example.com (no path, no trailing slash)`);
    } else {
      origins.push(url.origin);
    }
  }
  return origins;
}

/** REGIONS: the comma-separated regions whose boards (region:<r>) clients may read. */
function readRegions(env: EnvReader): string[] {
  const regions = (env.optional("REGIONS") ?? "")
    .split(",")
    .map((r) => r.trim())
    .filter(Boolean);
  for (const region of regions) {
    if (!REGION.test(region)) env.problem(`REGIONS: "${region}" must be 1..16 of a-z, 0-9 and '-', starting with a letter`);
  }
  return regions;
}
