import { describe, expect, it } from "vitest";
import { Code, ConnectError } from "@connectrpc/connect";
import { DatastoreUnavailable, Startup, waitForDatastore } from "./startup.js";

const quiet = { warn: () => {}, info: () => {} };
const fast = { initialDelayMs: 1, maxDelayMs: 2 };

/** Fails `times` times with `error`, then answers "ok". */
function failing(times: number, error: Error = Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:5432"), { code: "ECONNREFUSED" })) {
  let calls = 0;
  return {
    attempt: async () => {
      calls += 1;
      if (calls <= times) throw error;
      return "ok";
    },
    calls: () => calls,
  };
}

describe("waitForDatastore", () => {
  it("retries until the datastore answers, logging each new reason once", async () => {
    const warnings: string[] = [];
    const store = failing(5);
    const logger = { warn: (_fields: object, msg: string) => void warnings.push(msg), info: () => {} } as unknown as typeof quiet;
    const result = await waitForDatastore("postgres", store.attempt, logger, fast);
    expect(result).toBe("ok");
    expect(store.calls()).toBe(6);
    expect(warnings).toEqual(["waiting for postgres"]);
  });

  it("throws an error it should not wait out at once", async () => {
    const store = failing(5, new Error('relation "ledger" does not exist'));
    await expect(waitForDatastore("postgres", store.attempt, quiet, { ...fast, retryable: () => false })).rejects.toThrow(/does not exist/);
    expect(store.calls()).toBe(1);
  });

  it("gives up after maxWaitMs, naming the store and its last error", async () => {
    const store = failing(Number.POSITIVE_INFINITY);
    const gaveUp = waitForDatastore("PostgreSQL", store.attempt, quiet, { ...fast, maxWaitMs: 0 });
    await expect(gaveUp).rejects.toBeInstanceOf(DatastoreUnavailable);
    await expect(gaveUp).rejects.toThrow("PostgreSQL did not answer within 0 s (last error: connect ECONNREFUSED 127.0.0.1:5432)");
  });
});

describe("Startup", () => {
  it("is not ready, saying what it waits for, and refuses RPCs until complete", async () => {
    const startup = new Startup(quiet);
    const call = startup.interceptor(async () => "served" as never);
    const request = (typeName: string) => ({ service: { typeName } }) as never;
    await expect(startup.check()).rejects.toThrow("starting");

    const store = failing(3);
    let seen: string | undefined;
    const waiting = startup.waitFor(
      "postgres",
      async () => {
        if (store.calls() === 2)
          seen = await startup.check().then(
            () => "ready",
            (err: Error) => err.message,
          );
        return store.attempt();
      },
      fast,
    );
    await waiting;
    expect(seen).toBe("waiting for postgres: connect ECONNREFUSED 127.0.0.1:5432");
    await expect(call(request("scoreboard.v1.ScoreService"))).rejects.toSatisfy((err) => err instanceof ConnectError && err.code === Code.Unavailable);
    await expect(call(request("grpc.health.v1.Health"))).resolves.toBe("served");

    let completed = false;
    void startup.completed.then(() => (completed = true));
    startup.complete();
    await startup.completed;
    expect(completed).toBe(true);
    await expect(startup.check()).resolves.toBeUndefined();
    await expect(call(request("scoreboard.v1.ScoreService"))).resolves.toBe("served");
  });
});
