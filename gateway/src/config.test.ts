import { describe, expect, it } from "vitest";
import { type ConfigError, EnvReader } from "@scoreboard/platform/config";
import { loadGatewayConfig } from "./config.js";

const base = { JWT_SECRET: "s".repeat(32) };

function problemsOf(vars: Record<string, string>): string[] {
  try {
    loadGatewayConfig(new EnvReader({ ...base, ...vars }));
    return [];
  } catch (err) {
    return (err as ConfigError).problems;
  }
}

describe("the gateway's edge settings", () => {
  it("defaults: timeouts, caps, no CORS origin, no region", () => {
    const config = loadGatewayConfig(new EnvReader(base));
    expect(config.limits).toEqual({ headersTimeoutMs: 10_000, requestTimeoutMs: 30_000, idleTimeoutMs: 65_000, maxConnectionsPerAddress: 256 });
    expect(config.maxStreamsPerAddress).toBe(32);
    expect(config.corsAllowedOrigins).toEqual([]);
    expect([...config.boards.regions]).toEqual([]);
  });

  it("reads origins and regions as lists", () => {
    const config = loadGatewayConfig(
      new EnvReader({ ...base, CORS_ALLOWED_ORIGINS: "https://game.example.com, http://localhost:3000", REGIONS: "eu,us-east" }),
    );
    expect(config.corsAllowedOrigins).toEqual(["https://game.example.com", "http://localhost:3000"]);
    expect([...config.boards.regions]).toEqual(["eu", "us-east"]);
  });

  it.each([
    [{ CORS_ALLOWED_ORIGINS: "https://game.example.com/" }, /not an origin/],
    [{ CORS_ALLOWED_ORIGINS: "*" }, /not an origin/],
    [{ CORS_ALLOWED_ORIGINS: "ftp://x.example" }, /not an origin/],
    [{ REGIONS: "EU" }, /REGIONS: "EU"/],
    [{ GATEWAY_HEADERS_TIMEOUT_MS: "20000", GATEWAY_REQUEST_TIMEOUT_MS: "10000" }, /at least GATEWAY_HEADERS_TIMEOUT_MS/],
    [{ GATEWAY_MAX_CONNECTIONS_PER_IP: "-1" }, /GATEWAY_MAX_CONNECTIONS_PER_IP/],
  ])("refuses %j", (vars, problem) => {
    expect(problemsOf(vars)).toEqual([expect.stringMatching(problem)]);
  });
});
