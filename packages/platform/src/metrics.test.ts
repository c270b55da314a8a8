import { describe, expect, it } from "vitest";
import { ProcessMetrics, sampleEvery } from "./metrics.js";

/** The value of one series in the text exposition, or undefined when absent. */
function seriesValue(text: string, series: string): number | undefined {
  const line = text.split("\n").find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

const tick = (ms = 10) => new Promise((resolve) => setTimeout(resolve, ms));

describe("ProcessMetrics", () => {
  it("exposes Node's default process metrics in the Prometheus text format", async () => {
    const { contentType, body } = await new ProcessMetrics().exposition();
    expect(contentType).toMatch(/^text\/plain; version=0\.0\.4/);
    expect(body).toContain("# TYPE process_cpu_user_seconds_total counter");
    expect(body).toContain("nodejs_eventloop_lag_seconds");
  });

  it("registers a family on first use only, once, under its documented name", async () => {
    const metrics = new ProcessMetrics();
    expect(await metrics.registry.metrics()).not.toContain("sb_");
    expect(metrics.redisErrors).toBe(metrics.redisErrors);
    metrics.redisErrors.inc();
    metrics.redisErrors.inc();
    metrics.outboxBacklog.set(7);
    const body = (await metrics.exposition()).body;
    expect(seriesValue(body, "sb_redis_errors_total")).toBe(2);
    expect(seriesValue(body, "sb_outbox_backlog")).toBe(7);
    expect(body).not.toContain("sb_postgres_errors_total");
  });

  it("keeps two processes' registries apart", async () => {
    const a = new ProcessMetrics();
    const b = new ProcessMetrics();
    a.postgresErrors.inc();
    expect(seriesValue(await b.registry.metrics(), "sb_postgres_errors_total")).toBeUndefined();
    expect(seriesValue(await a.registry.metrics(), "sb_postgres_errors_total")).toBe(1);
  });

  it("shows every dead-letter reason and each wired stream kind from 0", async () => {
    const metrics = new ProcessMetrics();
    metrics.deadLetters.inc({ reason: "undecodable" });
    const sse = metrics.openStreamsOf("sse");
    metrics.openStreamsOf("websocket");
    sse.inc();
    sse.inc();
    sse.dec();
    const body = (await metrics.exposition()).body;
    expect(seriesValue(body, 'sb_dead_letters_total{reason="verification"}')).toBe(0);
    expect(seriesValue(body, 'sb_dead_letters_total{reason="undecodable"}')).toBe(1);
    expect(seriesValue(body, 'sb_dead_letters_total{reason="max_deliveries"}')).toBe(0);
    expect(seriesValue(body, 'sb_open_streams{kind="sse"}')).toBe(1);
    expect(seriesValue(body, 'sb_open_streams{kind="websocket"}')).toBe(0);
    expect(body).not.toContain('kind="connect"');
  });

  it("times RPCs, REST routes and fan-out in seconds", async () => {
    const metrics = new ProcessMetrics();
    metrics.rpcDuration.labels("scoreboard.v1.ScoreService", "SubmitAction").observe(0.003);
    metrics.fanoutLatency.observe(0.04);
    const body = (await metrics.exposition()).body;
    expect(seriesValue(body, 'sb_rpc_duration_seconds_bucket{le="0.005",service="scoreboard.v1.ScoreService",method="SubmitAction"}')).toBe(1);
    expect(seriesValue(body, 'sb_rpc_duration_seconds_bucket{le="0.0025",service="scoreboard.v1.ScoreService",method="SubmitAction"}')).toBe(0);
    expect(seriesValue(body, 'sb_fanout_latency_seconds_bucket{le="0.05"}')).toBe(1);
    expect(seriesValue(body, "sb_fanout_latency_seconds_count")).toBe(1);
  });
});

describe("sampleEvery", () => {
  it("samples at once, then on every interval, never two at once", async () => {
    let started = 0;
    let release: (() => void) | undefined;
    const stop = sampleEvery(
      5,
      () => {
        started += 1;
        return new Promise<void>((resolve) => (release = resolve));
      },
      () => {},
    );
    expect(started).toBe(1);
    await tick(30);
    expect(started).toBe(1); // the first sample still runs
    release!();
    await tick(30);
    expect(started).toBeGreaterThanOrEqual(2);
    stop();
    release!();
    const after = started;
    await tick(30);
    expect(started).toBe(after);
  });

  it("reports a failed sample and keeps sampling", async () => {
    const errors: unknown[] = [];
    let calls = 0;
    const stop = sampleEvery(
      5,
      async () => {
        calls += 1;
        if (calls === 1) throw new Error("store down");
      },
      (err) => errors.push(err),
    );
    await tick(40);
    stop();
    expect(errors).toHaveLength(1);
    expect((errors[0] as Error).message).toBe("store down");
    expect(calls).toBeGreaterThan(1);
  });

  it("marks only the first failure of a streak, so a caller logs it once", async () => {
    const firsts: boolean[] = [];
    let calls = 0;
    const stop = sampleEvery(
      5,
      async () => {
        calls += 1;
        if (calls !== 3) throw new Error("store down"); // fail, fail, succeed, fail...
      },
      (_err, first) => firsts.push(first),
    );
    await tick(60);
    stop();
    expect(firsts.slice(0, 3)).toEqual([true, false, true]);
  });
});
