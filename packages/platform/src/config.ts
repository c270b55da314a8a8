// One config loader for every process: typed readers over process.env that
// collect every problem, so a bad deployment fails once with the full list.

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n  - ${problems.join("\n  - ")}`);
    this.name = "ConfigError";
  }
}

export type Env = Record<string, string | undefined>;

export class EnvReader {
  private readonly problems: string[] = [];

  constructor(private readonly env: Env = process.env) {}

  string(name: string, fallback?: string): string {
    const raw = this.env[name]?.trim();
    if (raw) return raw;
    if (fallback !== undefined) return fallback;
    this.problems.push(`${name} is required`);
    return "";
  }

  optional(name: string): string | undefined {
    const raw = this.env[name]?.trim();
    return raw ? raw : undefined;
  }

  int(name: string, fallback: number, min = Number.MIN_SAFE_INTEGER, max = Number.MAX_SAFE_INTEGER): number {
    const raw = this.env[name]?.trim();
    if (!raw) return fallback;
    const value = Number(raw);
    if (!Number.isInteger(value) || value < min || value > max) {
      this.problems.push(`${name} must be an integer in ${min}..${max}, got "${raw}"`);
      return fallback;
    }
    return value;
  }

  port(name: string, fallback: number): number {
    return this.int(name, fallback, 0, 65535);
  }

  url(name: string, fallback: string | undefined, protocols: string[]): string {
    const raw = this.string(name, fallback);
    if (raw) this.checkUrl(name, raw, protocols);
    return raw;
  }

  /** One or more URLs, comma-separated (a cluster's seed servers), returned as written. */
  urls(name: string, fallback: string | undefined, protocols: string[]): string {
    const raw = this.string(name, fallback);
    for (const one of raw ? raw.split(",") : []) this.checkUrl(name, one.trim(), protocols);
    return raw;
  }

  private checkUrl(name: string, raw: string, protocols: string[]): void {
    try {
      const parsed = new URL(raw);
      if (!protocols.includes(parsed.protocol)) {
        this.problems.push(`${name} must use ${protocols.join(" or ")}, got "${parsed.protocol}"`);
      }
    } catch {
      this.problems.push(`${name} is not a URL`);
    }
  }

  oneOf<T extends string>(name: string, fallback: T, allowed: readonly T[]): T {
    const raw = this.env[name]?.trim();
    if (!raw) return fallback;
    if (!(allowed as readonly string[]).includes(raw)) {
      this.problems.push(`${name} must be one of ${allowed.join(", ")}, got "${raw}"`);
      return fallback;
    }
    return raw as T;
  }

  /** Adds a problem found by a cross-field check. */
  problem(message: string): void {
    this.problems.push(message);
  }

  /** Throws a ConfigError listing every problem seen so far. */
  done(): void {
    if (this.problems.length > 0) throw new ConfigError(this.problems);
  }
}

export type RuntimeMode = "development" | "production";

export interface CommonConfig {
  mode: RuntimeMode;
  logLevel: string;
  grpc: GrpcConfig;
}

/** Connections between our services (grpc-js), as servers and as clients. */
export interface GrpcConfig {
  /** A server ends each connection after this long, so clients re-resolve and spread over new pods. */
  maxConnectionAgeMs: number;
  /** Ping interval on idle connections, both ways: a dead peer is found within it plus 5 s. */
  keepaliveTimeMs: number;
}

export function readCommon(env: EnvReader): CommonConfig {
  return {
    mode: env.oneOf<RuntimeMode>("NODE_ENV", "development", ["development", "production"]),
    logLevel: env.oneOf("LOG_LEVEL", "info", ["trace", "debug", "info", "warn", "error", "fatal", "silent"]),
    grpc: {
      maxConnectionAgeMs: env.int("GRPC_MAX_CONNECTION_AGE_MS", 300_000, 1_000, 86_400_000),
      keepaliveTimeMs: env.int("GRPC_KEEPALIVE_TIME_MS", 10_000, 1_000, 3_600_000),
    },
  };
}

/**
 * NATS_URL: one server, or several comma-separated (connectNats tries each);
 * a client learns the rest of a cluster from whichever answers. "" as the
 * fallback makes it optional.
 */
export function readNatsUrl(env: EnvReader, fallback = "nats://127.0.0.1:4222"): string {
  return env.urls("NATS_URL", fallback, ["nats:", "tls:"]);
}

/**
 * How score and ranking create the JetStream streams on a NATS that has none.
 * A stream that exists keeps what it has (ensureStream): these never rewrite
 * an operator's choice.
 */
export interface JetStreamConfig {
  /** Copies of each stream across the NATS cluster: 3 survives the loss of one server; above 1 needs a cluster. */
  replicas: number;
  /** "memory": a restart of NATS loses the events ranking had not applied yet; only a reconciliation puts them on the boards. */
  storage: "file" | "memory";
}

export function readJetStream(env: EnvReader): JetStreamConfig {
  return {
    // nats-server refuses more than 5 replicas.
    replicas: env.int("JETSTREAM_REPLICAS", 1, 1, 5),
    storage: env.oneOf("JETSTREAM_STORAGE", "file", ["file", "memory"]),
  };
}

/** Where a service's gRPC port is reached: `dns:///host:port` (round robin over every address) or `http://host:port`. */
export const grpcTargetProtocols = ["dns:", "http:", "https:"];

export interface AuthConfig {
  /** HS256 secret (dev, first-party tools), at least 32 bytes. Optional when jwksUrl is set. */
  jwtSecret?: string;
  /** An IdP's JWKS (RS256, PS256, ES256, ES384, EdDSA tokens). Optional when jwtSecret is set. */
  jwksUrl?: string;
  issuer: string;
  audience: string;
  /**
   * Allowed clock skew for exp and nbf, in seconds. readAuth always sets it
   * (JWT_CLOCK_TOLERANCE_S, 0..300, default 30); optional so hand-written
   * configs keep compiling, and TokenVerifier then uses 30.
   */
  clockToleranceS?: number;
  /**
   * The longest token lifetime accepted (exp − iat, or exp − now without
   * iat), in seconds. readAuth sets it from JWT_MAX_LIFETIME_S (default 24 h);
   * TokenVerifier defaults to the same.
   */
  maxLifetimeS?: number;
}

// Tokens are verified with an HS256 secret, a remote JWKS, or both; one of
// them is required. The dev secret generated by `npm start` is never
// acceptable in production, and neither is a short one: HS256 keys shorter
// than the hash are guessable.
export function readAuth(env: EnvReader, mode: RuntimeMode): AuthConfig {
  const jwtSecret = env.optional("JWT_SECRET");
  const jwksUrl = env.optional("JWT_JWKS_URL") ? env.url("JWT_JWKS_URL", undefined, ["https:", "http:"]) : undefined;
  if (!jwtSecret && !jwksUrl) {
    env.problem(
      mode === "production"
        ? "JWT_SECRET or JWT_JWKS_URL is required in production"
        : "JWT_SECRET is required (npm start generates one into .env.local), or set JWT_JWKS_URL",
    );
  } else if (jwtSecret && Buffer.byteLength(jwtSecret) < 32) {
    env.problem("JWT_SECRET must be at least 32 bytes");
  }
  return {
    jwtSecret,
    jwksUrl,
    issuer: env.string("JWT_ISSUER", "scoreboard"),
    audience: env.string("JWT_AUDIENCE", "scoreboard-api"),
    clockToleranceS: env.int("JWT_CLOCK_TOLERANCE_S", 30, 0, 300),
    maxLifetimeS: env.int("JWT_MAX_LIFETIME_S", 86_400, 60, 31_536_000),
  };
}

export const defaultPorts = {
  gateway: 8080,
  score: 50051,
  ranking: 50052,
  push: 50053,
  // HTTP/2-only ports for calls between our services (see rpc-server.ts).
  scoreGrpc: 50061,
  rankingGrpc: 50062,
  pushGrpc: 50063,
} as const;
