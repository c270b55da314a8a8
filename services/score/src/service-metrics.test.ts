// What the score service counts: the ledger's outcomes (sb_grants_total) and failed ledger calls (sb_postgres_errors_total).
import { beforeEach, describe, expect, it } from "vitest";
import { createClient, createRouterTransport } from "@connectrpc/connect";
import { ScoreService } from "@scoreboard/gen/scoreboard/v1/score_pb";
import { TokenVerifier, mintToken } from "@scoreboard/platform/auth";
import type { AuthConfig } from "@scoreboard/platform/config";
import { createLogger } from "@scoreboard/platform/logger";
import { ProcessMetrics } from "@scoreboard/platform/metrics";
import type { GrantOutcome, Ledger } from "./ledger.js";
import { createScoreService } from "./service.js";

const auth: AuthConfig = { jwtSecret: "score-metrics-test-secret-0123456789", issuer: "scoreboard", audience: "scoreboard-api" };

function seriesValue(text: string, series: string): number | undefined {
  const line = text.split("\n").find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

const granted = (replayed: boolean): GrantOutcome => ({
  kind: "granted",
  grant: { ledgerId: 1, requestId: "r1", userId: "alice", actionId: "a", points: 5, newScore: 5, version: 1, replayed },
});

let next: () => Promise<GrantOutcome>;
let metrics: ProcessMetrics;
let client: ReturnType<typeof createClient<typeof ScoreService>>;

beforeEach(() => {
  const ledger: Ledger = {
    grantAction: () => next(),
    addScore: () => next(),
    apiKeyMatches: async () => false,
    audit: async () => {},
  };
  metrics = new ProcessMetrics();
  const service = createScoreService({
    ledger,
    verifier: new TokenVerifier(auth),
    logger: createLogger("score-metrics-test", "silent"),
    maxIncrement: 5,
    requireRegistration: false,
    onGranted: () => {},
    metrics: { grants: metrics.grants, postgresErrors: metrics.postgresErrors },
  });
  client = createClient(
    ScoreService,
    createRouterTransport((router) => router.service(ScoreService, service)),
  );
});

describe("score service metrics", () => {
  it("counts grants by result: granted, replayed, or the ledger's refusal", async () => {
    const headers = { authorization: `Bearer ${await mintToken(auth, "alice")}` };
    next = async () => granted(false);
    await client.submitAction({ actionId: "a" }, { headers });
    next = async () => granted(true);
    await client.submitAction({ actionId: "a" }, { headers });
    next = async () => ({ kind: "already_granted" });
    await client.submitAction({ actionId: "a" }, { headers }).catch(() => undefined);
    const text = await metrics.registry.metrics();
    expect(seriesValue(text, 'sb_grants_total{result="granted"}')).toBe(1);
    expect(seriesValue(text, 'sb_grants_total{result="replayed"}')).toBe(1);
    expect(seriesValue(text, 'sb_grants_total{result="already_granted"}')).toBe(1);
    expect(seriesValue(text, "sb_postgres_errors_total")).toBe(0);
  });

  it("counts a failed ledger call as a PostgreSQL error, not as a grant", async () => {
    const headers = { authorization: `Bearer ${await mintToken(auth, "alice")}` };
    next = async () => {
      throw Object.assign(new Error("connect ECONNREFUSED"), { code: "ECONNREFUSED" });
    };
    await expect(client.addScore({ delta: 1n }, { headers })).rejects.toThrow(/unavailable/);
    const text = await metrics.registry.metrics();
    expect(seriesValue(text, "sb_postgres_errors_total")).toBe(1);
    expect(text).not.toMatch(/sb_grants_total\{/);
  });
});
