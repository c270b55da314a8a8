import { afterEach, describe, expect, it } from "vitest";
import { ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { Health } from "@scoreboard/gen/grpc/health/v1/health_pb";
import { createLogger } from "./logger.js";
import { ProcessMetrics } from "./metrics.js";
import { startRpcServer, type RpcServer } from "./rpc-server.js";

const logger = createLogger("rpc-metrics-test", "silent");
const HEALTH = "grpc.health.v1.Health";

function seriesValue(text: string, series: string): number | undefined {
  const line = text.split("\n").find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

let server: RpcServer | undefined;
afterEach(async () => {
  await server?.close(100);
  server = undefined;
});

/** A server with only grpc.health.v1 (always registered), counted by the interceptor. */
async function start() {
  const metrics = new ProcessMetrics();
  server = await startRpcServer({ name: "rpc-metrics-test", host: "127.0.0.1", port: 0, logger, services: [], metrics });
  const client = createClient(Health, createConnectTransport({ baseUrl: `http://127.0.0.1:${server.port}`, httpVersion: "1.1" }));
  return { metrics, client };
}

describe("rpcMetricsInterceptor", () => {
  it("counts unary calls by service, method and code, and times them", async () => {
    const { metrics, client } = await start();
    await client.check({ service: "" });
    await client.check({ service: "" });
    await expect(client.check({ service: "no.such.Service" })).rejects.toThrow(ConnectError);
    const text = await metrics.registry.metrics();
    expect(seriesValue(text, `sb_rpc_requests_total{service="${HEALTH}",method="Check",code="ok"}`)).toBe(2);
    expect(seriesValue(text, `sb_rpc_requests_total{service="${HEALTH}",method="Check",code="not_found"}`)).toBe(1);
    expect(seriesValue(text, `sb_rpc_duration_seconds_count{service="${HEALTH}",method="Check"}`)).toBe(3);
  });

  it("counts a stream when it ends, as canceled when the client hangs up", async () => {
    const { metrics, client } = await start();
    const abort = new AbortController();
    const stream = client.watch({ service: "" }, { signal: abort.signal });
    for await (const update of stream) {
      expect(update.status).toBeDefined();
      break; // the first status is enough; leaving the loop cancels the call
    }
    abort.abort();
    const counted = async () => seriesValue(await metrics.registry.metrics(), `sb_rpc_requests_total{service="${HEALTH}",method="Watch",code="canceled"}`);
    for (let i = 0; i < 50 && (await counted()) === undefined; i++) await new Promise((r) => setTimeout(r, 20));
    expect(await counted()).toBe(1);
    // Not counted while it was open: only one series, for its end.
    const text = await metrics.registry.metrics();
    expect(seriesValue(text, `sb_rpc_requests_total{service="${HEALTH}",method="Watch",code="ok"}`)).toBeUndefined();
  });

  it("counts a stream our own shutdown ended as ok", async () => {
    const { metrics, client } = await start();
    const received: unknown[] = [];
    const done = (async () => {
      try {
        for await (const update of client.watch({ service: "" })) received.push(update);
      } catch {
        // the connection closes with the server
      }
    })();
    for (let i = 0; i < 50 && received.length === 0; i++) await new Promise((r) => setTimeout(r, 20));
    await server!.close(500);
    server = undefined;
    await done;
    const text = await metrics.registry.metrics();
    expect(seriesValue(text, `sb_rpc_requests_total{service="${HEALTH}",method="Watch",code="ok"}`)).toBe(1);
  });

  it("never labels by what the client sent", async () => {
    const { metrics } = await start();
    const res = await fetch(`http://127.0.0.1:${server!.port}/grpc.health.v1.Health/Check`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ service: "secret-token-abc" }),
    });
    expect(res.status).toBe(404);
    const text = await metrics.registry.metrics();
    expect(text).not.toContain("secret-token-abc");
    expect(seriesValue(text, `sb_rpc_requests_total{service="${HEALTH}",method="Check",code="not_found"}`)).toBe(1);
  });
});
