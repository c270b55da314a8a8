// Every process serves Prometheus /metrics, /healthz and /readyz on its main
// port; the series a dashboard is built on move with real traffic; /readyz
// names a dependency that stops answering.
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { connect } from "nats";
import { Subjects } from "@scoreboard/platform/nats";
import { startRedis, type RedisInstance } from "./harness/infra.js";
import { eventually, startMesh, type Mesh, type ServiceName } from "./harness/mesh.js";

const processes: ServiceName[] = ["score", "ranking", "push", "gateway"];
let redis: RedisInstance;
let mesh: Mesh;

beforeAll(async () => {
  // Its own Redis, so this file can take it away without touching the others.
  redis = await startRedis();
  mesh = await startMesh({ ...inject("infra"), redisUrl: redis.url });
  await mesh.sql("INSERT INTO actions (action_id, points) VALUES ('daily-login', 5), ('first-win', 100)");
});
afterAll(async () => {
  await mesh?.stop();
  await redis?.stop();
});

const scrape = async (name: ServiceName) => {
  const res = await fetch(`${mesh.urls[name]}/metrics`);
  expect(res.status).toBe(200);
  expect(res.headers.get("content-type")).toMatch(/^text\/plain; version=0\.0\.4/);
  return res.text();
};

/**
 * The value of the series `name` whose labels include `labels` (in any
 * order), or undefined when the process has no such series.
 */
function seriesValue(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split("\n")) {
    const match = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!match || match[1] !== name) continue;
    const have = Object.fromEntries([...(match[2] ?? "").matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((m) => [m[1], m[2]]));
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) return Number(match[3]);
  }
  return undefined;
}

/** Polls a process's /metrics until `check` returns a value. */
const eventuallyMetric = <T>(name: ServiceName, check: (text: string) => T | undefined, what: string) =>
  eventually(async () => check(await scrape(name)), 15_000, what);

async function grant(userId: string, actionId: string): Promise<string> {
  const token = await mesh.token(userId);
  const res = await fetch(`${mesh.urls.gateway}/api/actions`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
    body: JSON.stringify({ actionId }),
  });
  expect(res.status).toBe(200);
  return token;
}

const readyz = async (name: ServiceName) => {
  const res = await fetch(`${mesh.urls[name]}/readyz`);
  return { status: res.status, body: (await res.json()) as { status: string; failed: string[]; degraded?: string[]; checks: Record<string, string> } };
};

describe("probes", () => {
  it("/healthz and /readyz answer 200 on all four processes, naming what was checked", async () => {
    // "startup": the datastores its start-up waits for (see test/postgres-restart.test.ts).
    const expectedChecks: Record<ServiceName, string[]> = {
      score: ["startup", "postgres", "migrations", "nats"],
      ranking: ["startup", "postgres", "migrations", "redis", "nats"],
      push: ["startup", "nats"],
      gateway: ["redis"],
    };
    for (const name of processes) {
      const health = await fetch(`${mesh.urls[name]}/healthz`);
      expect(health.status, name).toBe(200);
      expect(await health.json()).toEqual({ status: "ok" });
      const ready = await readyz(name);
      expect(ready, name).toMatchObject({ status: 200, body: { status: "ready", failed: [] } });
      expect(Object.keys(ready.body.checks).sort(), name).toEqual(expectedChecks[name].sort());
    }
  });
});

describe("metrics", () => {
  let token: string;
  beforeAll(async () => {
    token = await grant("alice", "daily-login");
  });

  it("counts the grant at the gateway (by route pattern) and at score (by RPC), with process metrics on every process", async () => {
    const gateway = await eventuallyMetric(
      "gateway",
      (t) => ((seriesValue(t, "sb_http_requests_total", { route: "/api/actions", method: "POST", status: "200" }) ?? 0) >= 1 ? t : undefined),
      "the gateway to count POST /api/actions",
    );
    expect(seriesValue(gateway, "sb_http_duration_seconds_count", { route: "/api/actions", method: "POST" })).toBeGreaterThanOrEqual(1);

    const score = await scrape("score");
    expect(seriesValue(score, "sb_rpc_requests_total", { service: "scoreboard.v1.ScoreService", method: "SubmitAction", code: "ok" })).toBeGreaterThanOrEqual(
      1,
    );
    expect(seriesValue(score, "sb_rpc_duration_seconds_count", { service: "scoreboard.v1.ScoreService", method: "SubmitAction" })).toBeGreaterThanOrEqual(1);
    expect(seriesValue(score, "sb_grants_total", { result: "granted" })).toBeGreaterThanOrEqual(1);

    for (const name of processes) {
      const text = await scrape(name);
      expect(seriesValue(text, "process_cpu_user_seconds_total"), name).toBeGreaterThan(0);
      expect(seriesValue(text, "nodejs_heap_size_used_bytes"), name).toBeGreaterThan(0);
    }
  });

  it("reports the outbox backlog (drained to 0) and the ranking consumer's lag and dead letters", async () => {
    await eventuallyMetric("score", (t) => (seriesValue(t, "sb_outbox_backlog") === 0 ? true : undefined), "score's outbox backlog to read 0");
    expect(seriesValue(await scrape("score"), "sb_postgres_errors_total")).toBe(0);

    const ranking = await eventuallyMetric(
      "ranking",
      (t) => (seriesValue(t, "sb_jetstream_consumer_pending") === 0 && seriesValue(t, "sb_jetstream_consumer_ack_pending") === 0 ? t : undefined),
      "ranking's consumer lag to read 0",
    );
    expect(seriesValue(ranking, "sb_jetstream_redeliveries_total")).toBe(0);
    for (const reason of ["verification", "undecodable", "max_deliveries"]) {
      expect(seriesValue(ranking, "sb_dead_letters_total", { reason }), reason).toBe(0);
    }
    expect(seriesValue(ranking, "sb_redis_errors_total")).toBe(0);
  });

  it("times push's fan-out of the change and counts its watch streams", async () => {
    // The gateway keeps the global top 100 open for good, so push has a
    // watcher once that stream is up; a change before it would be fanned out
    // to nobody and never timed.
    await eventuallyMetric(
      "push",
      (t) => ((seriesValue(t, "sb_open_streams", { kind: "watch" }) ?? 0) >= 1 ? true : undefined),
      "the gateway's stream open on push",
    );
    await grant("bob", "first-win");
    const push = await eventuallyMetric(
      "push",
      (t) => ((seriesValue(t, "sb_fanout_latency_seconds_count") ?? 0) >= 1 ? t : undefined),
      "push to time a fan-out",
    );
    const total = seriesValue(push, "sb_fanout_latency_seconds_sum")!;
    const count = seriesValue(push, "sb_fanout_latency_seconds_count")!;
    expect(total / count).toBeLessThan(5);
    expect(seriesValue(push, "sb_open_streams", { kind: "watch" })).toBeGreaterThanOrEqual(1);
  });

  it("counts an SSE client while it is connected", async () => {
    const sse = (t: string) => seriesValue(t, "sb_open_streams", { kind: "sse" });
    const before = sse(await scrape("gateway"));
    expect(before).toBe(0);
    const abort = new AbortController();
    const res = await fetch(`${mesh.urls.gateway}/api/leaderboard/stream`, { signal: abort.signal });
    expect(res.status).toBe(200);
    try {
      await eventuallyMetric("gateway", (t) => (sse(t) === 1 ? true : undefined), "sb_open_streams{kind=sse} to reach 1");
    } finally {
      abort.abort();
    }
    await eventuallyMetric("gateway", (t) => (sse(t) === 0 ? true : undefined), "sb_open_streams{kind=sse} to go back to 0");
    const gateway = await scrape("gateway");
    expect(seriesValue(gateway, "sb_open_streams", { kind: "websocket" })).toBe(0);
    expect(seriesValue(gateway, "sb_open_streams", { kind: "connect" })).toBe(0);
  });

  it("labels REST routes by pattern, never by the raw path", async () => {
    const res = await fetch(`${mesh.urls.gateway}/api/score/carol-the-unique`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${await mesh.token("carol-the-unique")}` },
      body: JSON.stringify({ increment: 2 }),
    });
    expect(res.status).toBe(200);
    const gateway = await eventuallyMetric(
      "gateway",
      (t) => seriesValue(t, "sb_http_requests_total", { route: "/api/score/:userId", method: "POST", status: "200" }),
      "the increment route to be counted",
    );
    expect(gateway).toBeGreaterThanOrEqual(1);
    expect(await scrape("gateway")).not.toContain("carol-the-unique");
  });

  it("never exposes a token or a secret", async () => {
    for (const name of processes) {
      const text = await scrape(name);
      expect(text, name).not.toContain(token);
      expect(text, name).not.toContain(mesh.auth.jwtSecret!);
      expect(text, name).not.toMatch(/bearer|authorization|eyJ/i);
      expect(text, name).not.toContain("alice");
    }
  });
});

describe("dead letters", () => {
  it("counts an unsigned event ranking refused, by reason", async () => {
    const nc = await connect({ servers: inject("infra").natsUrl });
    try {
      await nc.jetstream().publish(Subjects.scoreChanged, new TextEncoder().encode("not a sealed event"));
    } finally {
      await nc.close();
    }
    await eventuallyMetric(
      "ranking",
      (t) => (seriesValue(t, "sb_dead_letters_total", { reason: "verification" }) === 1 ? true : undefined),
      'sb_dead_letters_total{reason="verification"} to reach 1',
    );
    const ranking = await scrape("ranking");
    expect(seriesValue(ranking, "sb_dead_letters_total", { reason: "undecodable" })).toBe(0);
  });
});

describe("when Redis stops", () => {
  it("/readyz reports redis as degraded but stays 200 where a PostgreSQL or per-replica fallback serves, and clears when it is back", async () => {
    await redis.kill("SIGKILL");
    for (const name of ["gateway", "ranking"] as const) {
      // Failing readiness here would take every replica out of its Service at once.
      const ready = await eventually(
        async () => {
          const r = await readyz(name);
          return r.body.degraded?.includes("redis") ? r : undefined;
        },
        15_000,
        `${name} /readyz to report redis as degraded`,
      );
      expect(ready.status).toBe(200);
      expect(ready.body.status).toBe("ready");
      expect(ready.body.failed).toEqual([]);
      expect(ready.body.degraded).toEqual(["redis"]);
      expect(ready.body.checks.redis).not.toBe("ok");
      expect((await fetch(`${mesh.urls[name]}/healthz`)).status).toBe(200);
    }
    for (const name of ["score", "push"] as const) {
      expect((await readyz(name)).status, name).toBe(200);
    }

    // Writes go on (the rate limits fall back per replica), and say so.
    await grant("dave", "daily-login");
    await eventuallyMetric("gateway", (t) => ((seriesValue(t, "sb_redis_errors_total") ?? 0) >= 1 ? true : undefined), "the gateway to count Redis errors");

    await redis.restart();
    for (const name of ["gateway", "ranking"] as const) {
      await eventually(async () => ((await readyz(name)).body.degraded === undefined ? true : undefined), 20_000, `${name} /readyz to drop the degraded redis`);
    }
  });
});
