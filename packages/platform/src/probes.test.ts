import { afterEach, describe, expect, it } from "vitest";
import { createLogger } from "./logger.js";
import { ProcessMetrics } from "./metrics.js";
import { DependencyDown, Readiness, createProbeHandler, natsCheck, redisCheck } from "./probes.js";
import { startRpcServer, type RpcServer } from "./rpc-server.js";
import type { Redis } from "ioredis";
import type { NatsConnection } from "nats";

const logger = createLogger("probes-test", "silent");
const tick = (ms = 10) => new Promise((resolve) => setTimeout(resolve, ms));

describe("Readiness", () => {
  it("is ready when every check answers, and names each one", async () => {
    const readiness = new Readiness({ checks: { postgres: async () => {}, nats: async () => {} } });
    expect(await readiness.report()).toEqual({ status: "ready", failed: [], checks: { postgres: "ok", nats: "ok" } });
  });

  it("names the failed checks, showing only safe reasons", async () => {
    const readiness = new Readiness({
      checks: {
        postgres: async () => {},
        redis: async () => {
          throw new DependencyDown("not connected (reconnecting)");
        },
        nats: async () => {
          throw new Error("connect ECONNREFUSED 10.0.0.7:4222");
        },
      },
    });
    const report = await readiness.report();
    expect(report.status).toBe("not ready");
    expect(report.failed).toEqual(["redis", "nats"]);
    // An arbitrary error may carry hosts and ports; /readyz can be public.
    expect(report.checks).toEqual({ postgres: "ok", redis: "not connected (reconnecting)", nats: "error" });
  });

  it("stays ready when only a degradable check fails, and says it is degraded", async () => {
    const down = async () => {
      throw new DependencyDown("not connected (reconnecting)");
    };
    const readiness = new Readiness({ checks: { redis: down, nats: async () => {} }, degradable: ["redis"] });
    expect(await readiness.report()).toEqual({
      status: "ready",
      failed: [],
      degraded: ["redis"],
      checks: { redis: "not connected (reconnecting)", nats: "ok" },
    });
    const strict = new Readiness({ checks: { redis: down, nats: down }, degradable: ["redis"] });
    expect(await strict.report()).toMatchObject({ status: "not ready", failed: ["nats"], degraded: ["redis"] });
  });

  it("sets sb_degraded for each degradable dependency: 0 from the start, 1 while its check fails", async () => {
    const metrics = new ProcessMetrics();
    let redisUp = true;
    let now = 0;
    const readiness = new Readiness({
      checks: {
        redis: async () => {
          if (!redisUp) throw new DependencyDown("down");
        },
        nats: async () => {},
      },
      degradable: ["redis"],
      degradedGauge: metrics.degraded,
      cacheMs: 1,
      now: () => now,
    });
    const value = async () => (await metrics.registry.getSingleMetric("sb_degraded")!.get()).values.map((v) => [v.labels.dependency, v.value]);
    expect(await value()).toEqual([["redis", 0]]);
    redisUp = false;
    await readiness.report();
    expect(await value()).toEqual([["redis", 1]]);
    redisUp = true;
    now = 10;
    await readiness.report();
    expect(await value()).toEqual([["redis", 0]]);
  });

  it("fails a check that does not answer within the timeout", async () => {
    const readiness = new Readiness({ checks: { postgres: () => new Promise(() => {}) }, timeoutMs: 20 });
    const started = Date.now();
    const report = await readiness.report();
    expect(Date.now() - started).toBeLessThan(1_000);
    expect(report).toMatchObject({ status: "not ready", failed: ["postgres"], checks: { postgres: "no answer within 20 ms" } });
  });

  it("reuses a result for cacheMs, so probes cannot hammer a datastore", async () => {
    let now = 0;
    let calls = 0;
    const readiness = new Readiness({
      checks: {
        redis: async () => {
          calls += 1;
        },
      },
      cacheMs: 1_000,
      now: () => now,
    });
    await Promise.all([readiness.report(), readiness.report(), readiness.report()]);
    now = 999;
    await readiness.report();
    expect(calls).toBe(1);
    now = 1_000;
    await readiness.report();
    expect(calls).toBe(2);
  });

  it("joins a check still running instead of starting another", async () => {
    let now = 0;
    let calls = 0;
    const readiness = new Readiness({
      checks: {
        postgres: () => {
          calls += 1;
          return new Promise(() => {});
        },
      },
      timeoutMs: 10,
      cacheMs: 1,
      now: () => now,
    });
    await readiness.report();
    now = 5;
    await readiness.report();
    now = 10;
    await readiness.report();
    expect(calls).toBe(1);
  });

  it("says shutting down at once when drained, without asking anything", async () => {
    let calls = 0;
    const readiness = new Readiness({
      checks: {
        nats: async () => {
          calls += 1;
        },
      },
    });
    readiness.drain();
    expect(readiness.draining).toBe(true);
    expect(await readiness.report()).toEqual({ status: "shutting down", failed: [], checks: {} });
    expect(calls).toBe(0);
  });
});

describe("dependency checks", () => {
  it("fails a Redis that is not connected without sending PING (it would sit in the offline queue)", async () => {
    let pinged = false;
    const redis = {
      status: "reconnecting",
      ping: async () => {
        pinged = true;
      },
    } as unknown as Redis;
    await expect(redisCheck(redis)()).rejects.toThrow(DependencyDown);
    expect(pinged).toBe(false);
    const ready = {
      status: "ready",
      ping: async () => {
        pinged = true;
      },
    } as unknown as Redis;
    await redisCheck(ready)();
    expect(pinged).toBe(true);
  });

  it("fails a closed NATS connection and flushes an open one", async () => {
    let flushed = false;
    const closed = { isClosed: () => true, flush: async () => {} } as unknown as NatsConnection;
    await expect(natsCheck(closed)()).rejects.toThrow("connection closed");
    const open = {
      isClosed: () => false,
      flush: async () => {
        flushed = true;
      },
    } as unknown as NatsConnection;
    await natsCheck(open)();
    expect(flushed).toBe(true);
  });
});

describe("probe endpoints on the RPC server", () => {
  let server: RpcServer | undefined;
  afterEach(async () => {
    await server?.close(100);
    server = undefined;
  });

  async function start(checks: Record<string, () => Promise<void>>, fallback?: Parameters<typeof startRpcServer>[0]["fallback"]) {
    const metrics = new ProcessMetrics();
    metrics.outboxBacklog.set(3);
    const readiness = new Readiness({ checks, cacheMs: 0, logger });
    server = await startRpcServer({ name: "probe-test", host: "127.0.0.1", port: 0, logger, services: [], metrics, readiness, fallback });
    return { base: `http://127.0.0.1:${server.port}`, readiness };
  }

  it("answers /healthz, /readyz and /metrics, and leaves other paths to the fallback", async () => {
    let redisUp = true;
    const { base } = await start(
      {
        redis: async () => {
          if (!redisUp) throw new DependencyDown("not connected (reconnecting)");
        },
      },
      (_req, res) => {
        res.writeHead(418);
        res.end();
      },
    );
    expect((await fetch(`${base}/healthz`)).status).toBe(200);
    const ready = await fetch(`${base}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toEqual({ status: "ready", failed: [], checks: { redis: "ok" } });

    redisUp = false;
    const notReady = await fetch(`${base}/readyz`);
    expect(notReady.status).toBe(503);
    expect(await notReady.json()).toMatchObject({ status: "not ready", failed: ["redis"] });
    expect((await fetch(`${base}/healthz`)).status).toBe(200); // alive all the same

    const scrape = await fetch(`${base}/metrics`);
    expect(scrape.status).toBe(200);
    expect(scrape.headers.get("content-type")).toMatch(/^text\/plain/);
    expect(await scrape.text()).toContain("sb_outbox_backlog 3");

    expect((await fetch(`${base}/anything-else`)).status).toBe(418);
    expect((await fetch(`${base}/readyz`, { method: "POST" })).status).toBe(418);
  });

  it("drains readiness as soon as shutdown begins", async () => {
    const { base, readiness } = await start({ nats: async () => {} });
    expect((await fetch(`${base}/readyz`)).status).toBe(200);
    const closing = server!.close(300);
    expect(readiness.draining).toBe(true);
    await closing;
    server = undefined;
  });
});

describe("probe handler while draining", () => {
  /** Just enough of a response to read what the handler wrote. */
  function fakeResponse() {
    const sent = { status: 0, body: "" };
    const res = {
      writeHead: (status: number) => {
        sent.status = status;
      },
      end: (body: string) => {
        sent.body = body;
      },
    };
    return { sent, res: res as unknown as Parameters<ReturnType<typeof createProbeHandler>>[1] };
  }
  const get = (url: string) => ({ method: "GET", url }) as unknown as Parameters<ReturnType<typeof createProbeHandler>>[0];

  it("answers 503 on /healthz and /readyz at once", async () => {
    const readiness = new Readiness({ checks: { nats: async () => {} } });
    const handle = createProbeHandler(readiness, undefined, logger);
    readiness.drain();
    const health = fakeResponse();
    expect(handle(get("/healthz"), health.res)).toBe(true);
    expect(health.sent).toEqual({ status: 503, body: JSON.stringify({ status: "shutting down" }) });
    const ready = fakeResponse();
    expect(handle(get("/readyz?verbose=1"), ready.res)).toBe(true);
    await tick();
    expect(ready.sent.status).toBe(503);
    expect(JSON.parse(ready.sent.body)).toMatchObject({ status: "shutting down" });
  });

  it("leaves /metrics to the fallback when the process has no registry", () => {
    const handle = createProbeHandler(undefined, undefined, logger);
    expect(handle(get("/metrics"), fakeResponse().res)).toBe(false);
    expect(handle(get("/readyz"), fakeResponse().res)).toBe(false);
  });
});
