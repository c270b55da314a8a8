import { describe, expect, it } from "vitest";
import { ConfigError, EnvReader, readAuth, readCommon, readJetStream, readNatsUrl, type Env } from "./config.js";

const SECRET = "s".repeat(32);

/** The problems a reader collected, or [] when done() did not throw. */
function problemsOf(reader: EnvReader): string[] {
  try {
    reader.done();
    return [];
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).problems;
  }
}

describe("EnvReader defaults", () => {
  it("uses fallbacks for missing and blank variables and trims values", () => {
    const env = new EnvReader({ BLANK: "   ", NAME: "  scoreboard  " });
    expect(env.string("MISSING", "fallback")).toBe("fallback");
    expect(env.string("BLANK", "fallback")).toBe("fallback");
    expect(env.string("NAME")).toBe("scoreboard");
    expect(env.optional("MISSING")).toBeUndefined();
    expect(env.optional("BLANK")).toBeUndefined();
    expect(env.int("MISSING", 7)).toBe(7);
    expect(env.port("MISSING", 8080)).toBe(8080);
    expect(env.url("MISSING", "redis://localhost:6379", ["redis:"])).toBe("redis://localhost:6379");
    expect(env.oneOf("MISSING", "b", ["a", "b"])).toBe("b");
    expect(problemsOf(env)).toEqual([]);
  });

  it("reads process.env when given no env", () => {
    process.env.SCOREBOARD_CONFIG_TEST = "from-process";
    try {
      expect(new EnvReader().string("SCOREBOARD_CONFIG_TEST")).toBe("from-process");
    } finally {
      delete process.env.SCOREBOARD_CONFIG_TEST;
    }
  });
});

describe("EnvReader problems", () => {
  it("collects every problem into one ConfigError instead of stopping at the first", () => {
    const env = new EnvReader({
      PORT: "70000",
      WORKERS: "two",
      NATS_URL: "http://nats:4222",
      DATABASE_URL: "not a url",
      LOG_LEVEL: "loud",
    });
    env.string("REQUIRED");
    env.port("PORT", 8080);
    env.int("WORKERS", 1, 1, 16);
    env.url("NATS_URL", undefined, ["nats:", "tls:"]);
    env.url("DATABASE_URL", undefined, ["postgres:", "postgresql:"]);
    env.oneOf("LOG_LEVEL", "info", ["info", "debug"]);
    env.problem("cross-field check failed");

    let thrown: unknown;
    try {
      env.done();
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toBeInstanceOf(ConfigError);
    const error = thrown as ConfigError;
    expect(error.name).toBe("ConfigError");
    expect(error.problems).toEqual([
      "REQUIRED is required",
      'PORT must be an integer in 0..65535, got "70000"',
      'WORKERS must be an integer in 1..16, got "two"',
      'NATS_URL must use nats: or tls:, got "http:"',
      "DATABASE_URL is not a URL",
      'LOG_LEVEL must be one of info, debug, got "loud"',
      "cross-field check failed",
    ]);
    for (const problem of error.problems) expect(error.message).toContain(`  - ${problem}`);
  });

  it.each([
    ["0", 0, true],
    ["65535", 65535, true],
    ["65536", 8080, false],
    ["-1", 8080, false],
    ["1.5", 8080, false],
    ["80abc", 8080, false],
    ["Infinity", 8080, false],
  ])("port %j → %d (valid: %s)", (raw, expected, valid) => {
    const env = new EnvReader({ PORT: raw });
    expect(env.port("PORT", 8080)).toBe(expected);
    expect(problemsOf(env)).toHaveLength(valid ? 0 : 1);
  });

  it("checks both ends of an int range", () => {
    const env = new EnvReader({ LOW: "4", HIGH: "11", EDGE_LOW: "5", EDGE_HIGH: "10" });
    expect(env.int("LOW", 6, 5, 10)).toBe(6);
    expect(env.int("HIGH", 6, 5, 10)).toBe(6);
    expect(env.int("EDGE_LOW", 6, 5, 10)).toBe(5);
    expect(env.int("EDGE_HIGH", 6, 5, 10)).toBe(10);
    expect(problemsOf(env)).toEqual(['LOW must be an integer in 5..10, got "4"', 'HIGH must be an integer in 5..10, got "11"']);
  });

  it("accepts a URL with an allowed protocol and returns it unchanged", () => {
    const env = new EnvReader({ REDIS_URL: "rediss://cache:6380/0" });
    expect(env.url("REDIS_URL", undefined, ["redis:", "rediss:"])).toBe("rediss://cache:6380/0");
    expect(problemsOf(env)).toEqual([]);
  });

  it("reports a required URL that is missing once, as required", () => {
    const env = new EnvReader({});
    expect(env.url("DATABASE_URL", undefined, ["postgres:"])).toBe("");
    expect(problemsOf(env)).toEqual(["DATABASE_URL is required"]);
  });

  it("checks the protocol of a fallback URL too", () => {
    const env = new EnvReader({});
    env.url("NATS_URL", "http://localhost:4222", ["nats:"]);
    expect(problemsOf(env)).toEqual(['NATS_URL must use nats:, got "http:"']);
  });

  it("oneOf is case-sensitive and falls back after a problem", () => {
    const env = new EnvReader({ MODE: "Production" });
    expect(env.oneOf("MODE", "development", ["development", "production"])).toBe("development");
    expect(problemsOf(env)).toEqual(['MODE must be one of development, production, got "Production"']);
  });
});

describe("readCommon", () => {
  it("defaults to development, info, 5 min connection age and 10 s keepalive", () => {
    const env = new EnvReader({});
    expect(readCommon(env)).toEqual({ mode: "development", logLevel: "info", grpc: { maxConnectionAgeMs: 300_000, keepaliveTimeMs: 10_000 } });
    expect(problemsOf(env)).toEqual([]);
  });

  it("reads the gRPC connection age and keepalive, and refuses values out of range", () => {
    const env = new EnvReader({ GRPC_MAX_CONNECTION_AGE_MS: "60000", GRPC_KEEPALIVE_TIME_MS: "5000" });
    expect(readCommon(env).grpc).toEqual({ maxConnectionAgeMs: 60_000, keepaliveTimeMs: 5_000 });
    const bad = new EnvReader({ GRPC_MAX_CONNECTION_AGE_MS: "10", GRPC_KEEPALIVE_TIME_MS: "soon" });
    readCommon(bad);
    expect(problemsOf(bad)).toHaveLength(2);
  });

  it("rejects an unknown NODE_ENV and LOG_LEVEL", () => {
    const env = new EnvReader({ NODE_ENV: "staging", LOG_LEVEL: "verbose" });
    readCommon(env);
    expect(problemsOf(env)).toHaveLength(2);
  });
});

describe("readAuth", () => {
  const read = (vars: Env, mode: "development" | "production") => {
    const env = new EnvReader(vars);
    const auth = readAuth(env, mode);
    return { auth, problems: problemsOf(env) };
  };
  const JWKS = "https://idp.example.com/.well-known/jwks.json";

  it("reads the secret and defaults issuer, audience, clock tolerance and maximum lifetime", () => {
    const { auth, problems } = read({ JWT_SECRET: SECRET }, "production");
    expect(problems).toEqual([]);
    expect(auth).toEqual({ jwtSecret: SECRET, issuer: "scoreboard", audience: "scoreboard-api", clockToleranceS: 30, maxLifetimeS: 86_400 });
    expect(auth.jwksUrl).toBeUndefined();
  });

  it("reads a custom issuer and audience", () => {
    const { auth } = read({ JWT_SECRET: SECRET, JWT_ISSUER: "iss", JWT_AUDIENCE: "aud" }, "development");
    expect(auth.issuer).toBe("iss");
    expect(auth.audience).toBe("aud");
  });

  it("requires JWT_SECRET or JWT_JWKS_URL in production", () => {
    expect(read({}, "production").problems).toEqual(["JWT_SECRET or JWT_JWKS_URL is required in production"]);
    expect(read({ JWT_SECRET: "  " }, "production").problems).toEqual(["JWT_SECRET or JWT_JWKS_URL is required in production"]);
  });

  it("requires JWT_SECRET in development too, pointing at npm start", () => {
    expect(read({}, "development").problems).toEqual([expect.stringContaining("npm start")]);
  });

  it.each(["development", "production"] as const)("accepts a JWKS URL without a secret in %s", (mode) => {
    const { auth, problems } = read({ JWT_JWKS_URL: JWKS }, mode);
    expect(problems).toEqual([]);
    expect(auth).toEqual({ jwksUrl: JWKS, issuer: "scoreboard", audience: "scoreboard-api", clockToleranceS: 30, maxLifetimeS: 86_400 });
    expect(auth.jwtSecret).toBeUndefined();
  });

  it("accepts both a secret and a JWKS URL, http: included", () => {
    const { auth, problems } = read({ JWT_SECRET: SECRET, JWT_JWKS_URL: "http://127.0.0.1:9000/jwks" }, "production");
    expect(problems).toEqual([]);
    expect(auth).toMatchObject({ jwtSecret: SECRET, jwksUrl: "http://127.0.0.1:9000/jwks" });
  });

  it("refuses a JWKS URL that is not http(s)", () => {
    expect(read({ JWT_JWKS_URL: "file:///etc/jwks.json" }, "production").problems).toEqual(['JWT_JWKS_URL must use https: or http:, got "file:"']);
    expect(read({ JWT_JWKS_URL: "not a url" }, "production").problems).toEqual(["JWT_JWKS_URL is not a URL"]);
  });

  it("still checks a secret's length when a JWKS URL is set", () => {
    expect(read({ JWT_SECRET: "short", JWT_JWKS_URL: JWKS }, "production").problems).toEqual(["JWT_SECRET must be at least 32 bytes"]);
  });

  it("reads JWT_MAX_LIFETIME_S in 60..31536000", () => {
    expect(read({ JWT_SECRET: SECRET, JWT_MAX_LIFETIME_S: "3600" }, "production").auth.maxLifetimeS).toBe(3_600);
    for (const bad of ["59", "31536001", "1d"]) {
      expect(read({ JWT_SECRET: SECRET, JWT_MAX_LIFETIME_S: bad }, "production").problems, bad).toEqual([
        `JWT_MAX_LIFETIME_S must be an integer in 60..31536000, got "${bad}"`,
      ]);
    }
  });

  it("reads JWT_CLOCK_TOLERANCE_S in 0..300", () => {
    expect(read({ JWT_SECRET: SECRET, JWT_CLOCK_TOLERANCE_S: "0" }, "production").auth.clockToleranceS).toBe(0);
    expect(read({ JWT_SECRET: SECRET, JWT_CLOCK_TOLERANCE_S: "300" }, "production").auth.clockToleranceS).toBe(300);
    for (const bad of ["-1", "301", "1.5", "soon"]) {
      expect(read({ JWT_SECRET: SECRET, JWT_CLOCK_TOLERANCE_S: bad }, "production").problems, bad).toEqual([
        `JWT_CLOCK_TOLERANCE_S must be an integer in 0..300, got "${bad}"`,
      ]);
    }
  });

  it.each(["development", "production"] as const)("refuses a secret shorter than 32 bytes in %s", (mode) => {
    expect(read({ JWT_SECRET: "s".repeat(31) }, mode).problems).toEqual(["JWT_SECRET must be at least 32 bytes"]);
  });

  it("counts bytes, not characters", () => {
    // 16 two-byte characters are 32 bytes.
    expect(read({ JWT_SECRET: "é".repeat(16) }, "production").problems).toEqual([]);
    expect(read({ JWT_SECRET: `${"é".repeat(15)}e` }, "production").problems).toEqual(["JWT_SECRET must be at least 32 bytes"]);
  });
});

describe("readJetStream", () => {
  it("defaults to one file-stored replica, what a single dev NATS can hold", () => {
    const env = new EnvReader({});
    expect(readJetStream(env)).toEqual({ replicas: 1, storage: "file" });
    expect(problemsOf(env)).toEqual([]);
  });

  it("reads JETSTREAM_REPLICAS in 1..5 and JETSTREAM_STORAGE, reporting both when bad", () => {
    expect(readJetStream(new EnvReader({ JETSTREAM_REPLICAS: "3", JETSTREAM_STORAGE: "memory" }))).toEqual({ replicas: 3, storage: "memory" });
    const env = new EnvReader({ JETSTREAM_REPLICAS: "6", JETSTREAM_STORAGE: "disk" });
    readJetStream(env);
    expect(problemsOf(env)).toEqual(['JETSTREAM_REPLICAS must be an integer in 1..5, got "6"', 'JETSTREAM_STORAGE must be one of file, memory, got "disk"']);
  });
});

describe("readNatsUrl", () => {
  it("takes one server or a cluster's seeds, comma-separated, checking each", () => {
    const env = new EnvReader({ NATS_URL: "tls://nats-0.internal:4222, tls://nats-1.internal:4222" });
    expect(readNatsUrl(env)).toBe("tls://nats-0.internal:4222, tls://nats-1.internal:4222");
    expect(readNatsUrl(new EnvReader({}))).toBe("nats://127.0.0.1:4222");
    expect(readNatsUrl(new EnvReader({}), "")).toBe("");
    expect(problemsOf(env)).toEqual([]);

    const bad = new EnvReader({ NATS_URL: "nats://a:4222,http://b:4222" });
    readNatsUrl(bad);
    expect(problemsOf(bad)).toEqual(['NATS_URL must use nats: or tls:, got "http:"']);
  });
});
