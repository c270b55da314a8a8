import { afterEach, describe, expect, it } from "vitest";
import { Code, ConnectError, createClient, createRouterTransport } from "@connectrpc/connect";
import { Health, type HealthCheckResponse } from "@scoreboard/gen/grpc/health/v1/health_pb";
import { RankingService } from "@scoreboard/gen/scoreboard/v1/ranking_pb";
import { HealthStatus, ServingStatus } from "./health.js";

const RANKING = RankingService.typeName;

function setup() {
  const health = new HealthStatus([RANKING]);
  const client = createClient(
    Health,
    createRouterTransport((router) => {
      const { service, impl } = health.service();
      router.service(service, impl);
    }),
  );
  return { health, client };
}

const tick = (ms = 10) => new Promise((resolve) => setTimeout(resolve, ms));

/** Resolves to the next value, or "timeout" if none arrives in time. */
function within<T>(promise: Promise<T>, ms = 200): Promise<T | "timeout"> {
  return Promise.race([promise, new Promise<"timeout">((resolve) => setTimeout(() => resolve("timeout"), ms))]);
}

const aborts: AbortController[] = [];
afterEach(() => {
  for (const a of aborts.splice(0)) a.abort();
});

function watch(client: ReturnType<typeof setup>["client"], service: string) {
  const abort = new AbortController();
  aborts.push(abort);
  const stream = client.watch({ service }, { signal: abort.signal })[Symbol.asyncIterator]();
  const next = async (): Promise<ServingStatus | "timeout" | "end"> => {
    const result = await within(stream.next());
    if (result === "timeout") return result;
    return result.done ? "end" : (result.value as HealthCheckResponse).status;
  };
  return { abort, stream, next };
}

describe("HealthStatus table", () => {
  it("starts NOT_SERVING for the server and every registered service", () => {
    const { health } = setup();
    expect(health.get("")).toBe(ServingStatus.NOT_SERVING);
    expect(health.get(RANKING)).toBe(ServingStatus.NOT_SERVING);
    expect(health.get("nope")).toBeUndefined();
    expect(health.isServing()).toBe(false);
  });

  it("setAll flips every entry", () => {
    const { health } = setup();
    health.setAll(true);
    expect([health.get(""), health.get(RANKING), health.isServing()]).toEqual([ServingStatus.SERVING, ServingStatus.SERVING, true]);
    health.setAll(false);
    expect([health.get(""), health.get(RANKING), health.isServing()]).toEqual([ServingStatus.NOT_SERVING, ServingStatus.NOT_SERVING, false]);
  });
});

describe("Health.Check", () => {
  it.each(["", RANKING])("reports %j as SERVING after setAll(true) and NOT_SERVING after setAll(false)", async (service) => {
    const { health, client } = setup();
    expect((await client.check({ service })).status).toBe(ServingStatus.NOT_SERVING);
    health.setAll(true);
    expect((await client.check({ service })).status).toBe(ServingStatus.SERVING);
    health.setAll(false);
    expect((await client.check({ service })).status).toBe(ServingStatus.NOT_SERVING);
  });

  it("answers NOT_FOUND for an unknown service", async () => {
    const { health, client } = setup();
    health.setAll(true);
    const err = await client.check({ service: "scoreboard.v1.Nope" }).catch((e: unknown) => ConnectError.from(e));
    expect(err).toBeInstanceOf(ConnectError);
    expect((err as ConnectError).code).toBe(Code.NotFound);
    expect((err as ConnectError).rawMessage).toContain("scoreboard.v1.Nope");
  });
});

describe("Health.List", () => {
  it("lists the server and every registered service with its status", async () => {
    const { health, client } = setup();
    health.setAll(true);
    const { statuses } = await client.list({});
    expect(Object.keys(statuses).sort()).toEqual(["", RANKING]);
    expect(statuses[RANKING]?.status).toBe(ServingStatus.SERVING);
    expect(statuses[""]?.status).toBe(ServingStatus.SERVING);
  });
});

describe("Health.Watch", () => {
  it("yields the current status at once, then each change", async () => {
    const { health, client } = setup();
    const w = watch(client, RANKING);
    expect(await w.next()).toBe(ServingStatus.NOT_SERVING);

    // Ask for the next message first, so the server is parked waiting for a change.
    const second = w.next();
    await tick();
    health.setAll(true);
    expect(await second).toBe(ServingStatus.SERVING);

    const third = w.next();
    await tick();
    health.setAll(false);
    expect(await third).toBe(ServingStatus.NOT_SERVING);
  });

  it("delivers a change made before the client asked for the next message", async () => {
    const { health, client } = setup();
    const w = watch(client, RANKING);
    expect(await w.next()).toBe(ServingStatus.NOT_SERVING);
    health.setAll(true); // the server is still parked at its last yield
    expect(await w.next()).toBe(ServingStatus.SERVING);
  });

  it("starts with SERVING when the server is already up", async () => {
    const { health, client } = setup();
    health.setAll(true);
    expect(await watch(client, "").next()).toBe(ServingStatus.SERVING);
  });

  it("sends nothing when setAll does not change the status", async () => {
    const { health, client } = setup();
    health.setAll(true);
    const w = watch(client, "");
    expect(await w.next()).toBe(ServingStatus.SERVING);
    const next = w.next();
    await tick();
    health.setAll(true);
    expect(await next).toBe("timeout");
  });

  it("reports SERVICE_UNKNOWN for an unknown service instead of failing", async () => {
    const { health, client } = setup();
    health.setAll(true);
    expect(await watch(client, "scoreboard.v1.Nope").next()).toBe(ServingStatus.SERVICE_UNKNOWN);
  });

  it("stops watching when the client cancels", async () => {
    const { health, client } = setup();
    const w = watch(client, "");
    expect(await w.next()).toBe(ServingStatus.NOT_SERVING);
    const pending = w.stream.next();
    await tick();
    w.abort.abort();
    const err = await pending.then(
      () => undefined,
      (e: unknown) => ConnectError.from(e),
    );
    expect(err?.code).toBe(Code.Canceled);
    await tick();
    // The handler unregistered itself: a later change reaches no stale watcher.
    expect((health as unknown as { watchers: Set<unknown> }).watchers.size).toBe(0);
  });
});
