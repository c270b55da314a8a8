import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { afterEach, describe, expect, it } from "vitest";
import { Health, HealthCheckResponse_ServingStatus as ServingStatus } from "@scoreboard/gen/grpc/health/v1/health_pb";
import { createServiceTransport, type ServiceTransport } from "./clients.js";
import { serve, startGrpcServer, type GrpcServer } from "./grpc-server.js";

describe("grpc-js server adapter", () => {
  let server: GrpcServer | undefined;
  let transport: ServiceTransport | undefined;
  afterEach(async () => {
    transport?.close();
    await server?.close(100);
  });

  async function start(impl: Parameters<typeof serve<typeof Health>>[1], shutdown = new AbortController()) {
    server = await startGrpcServer({
      host: "127.0.0.1",
      port: 0,
      services: [serve(Health, impl)],
      interceptors: [],
      shutdownSignal: shutdown.signal,
      maxRequestBytes: 1024,
      maxConnectionAgeMs: 60_000,
      keepaliveTimeMs: 10_000,
    });
    transport = createServiceTransport(`http://127.0.0.1:${server.port}`, [Health]);
    return createClient(Health, transport.transport);
  }

  it("hands a unary handler the request headers, and the caller the response headers it set", async () => {
    const client = await start({
      check: (req, ctx) => {
        ctx.responseHeader.set("x-seen", ctx.requestHeader.get("authorization") ?? "none");
        return { status: req.service === "up" ? ServingStatus.SERVING : ServingStatus.NOT_SERVING };
      },
    });
    let seen: string | null = null;
    const res = await client.check({ service: "up" }, { headers: { authorization: "Bearer t" }, onHeader: (h) => (seen = h.get("x-seen")) });
    expect(res.status).toBe(ServingStatus.SERVING);
    expect(seen).toBe("Bearer t");
  });

  it("aborts a unary handler's signal when its caller cancels", async () => {
    let aborted: unknown;
    let started!: () => void;
    const running = new Promise<void>((r) => (started = r));
    const client = await start({
      check: (_req, ctx) =>
        new Promise((_resolve, reject) => {
          started();
          ctx.signal.addEventListener("abort", () => {
            aborted = ctx.signal.reason;
            reject(ctx.signal.reason);
          });
        }),
    });
    const caller = new AbortController();
    const call = client.check({ service: "" }, { signal: caller.signal });
    await running;
    caller.abort();
    await expect(call).rejects.toMatchObject({ code: Code.Canceled });
    await expect.poll(() => aborted).toBeInstanceOf(ConnectError);
  });

  it("ends a server stream when shutdown begins", async () => {
    const shutdown = new AbortController();
    const client = await start(
      {
        async *watch(_req, ctx) {
          yield { status: ServingStatus.SERVING };
          await new Promise((r) => ctx.signal.addEventListener("abort", r));
        },
      },
      shutdown,
    );
    const seen: ServingStatus[] = [];
    const reading = (async () => {
      for await (const update of client.watch({ service: "" })) {
        seen.push(update.status);
        shutdown.abort();
      }
    })();
    await reading;
    expect(seen).toEqual([ServingStatus.SERVING]);
  });

  it("refuses a request over the size limit before the handler runs", async () => {
    let ran = false;
    const client = await start({
      check: () => {
        ran = true;
        return { status: ServingStatus.SERVING };
      },
    });
    await expect(client.check({ service: "x".repeat(2048) })).rejects.toMatchObject({ code: Code.ResourceExhausted });
    expect(ran).toBe(false);
  });
});
