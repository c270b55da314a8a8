import { describe, expect, it } from "vitest";
import { ROOT_CONTEXT, context, createContextKey } from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import { GroupCommit } from "./group-commit.js";

describe("GroupCommit", () => {
  it("sends the first item at once and batches what arrives while batches are in flight", async () => {
    const batches: number[][] = [];
    const releases: Array<() => void> = [];
    const group = new GroupCommit<number, number>(
      (items) => {
        batches.push(items);
        return new Promise((resolve) => releases.push(() => resolve(items.map((i) => i * 10))));
      },
      1,
      100,
    );
    const first = group.submit(1);
    const rest = [2, 3, 4].map((i) => group.submit(i));
    expect(batches).toEqual([[1]]); // no waiting when nothing is in flight
    releases.shift()!();
    expect(await first).toBe(10);
    await new Promise((r) => setImmediate(r));
    expect(batches).toEqual([[1], [2, 3, 4]]); // the queue went as one batch
    releases.shift()!();
    expect(await Promise.all(rest)).toEqual([20, 30, 40]);
  });

  it("retries a failed batch item by item, so only the culprit fails", async () => {
    const calls: number[][] = [];
    const group = new GroupCommit<number, number>(
      async (items) => {
        calls.push(items);
        if (items.includes(3)) throw new Error("bad item 3");
        return items;
      },
      1,
      100,
    );
    const blocker = group.submit(0);
    const results = [1, 2, 3, 4].map((i) =>
      group.submit(i).then(
        (v) => `ok ${v}`,
        (e: Error) => e.message,
      ),
    );
    await blocker;
    expect(await Promise.all(results)).toEqual(["ok 1", "ok 2", "bad item 3", "ok 4"]);
    expect(calls[1]).toEqual([1, 2, 3, 4]);
  });

  it("caps a batch at its maximum size", async () => {
    const sizes: number[] = [];
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const group = new GroupCommit<number, number>(
      async (items) => {
        sizes.push(items.length);
        await gate;
        return items;
      },
      1,
      3,
    );
    const all = Array.from({ length: 8 }, (_, i) => group.submit(i));
    release();
    await Promise.all(all);
    expect(sizes).toEqual([1, 3, 3, 1]);
  });

  it("fails every item of a failed batch, resending none, when told a failure may be partial", async () => {
    const calls: number[][] = [];
    const group = new GroupCommit<number, number>(
      async (items) => {
        calls.push(items);
        if (items.length > 1) throw new Error("deadline exceeded");
        return items;
      },
      1,
      100,
      { retryEachOnFailure: false },
    );
    const blocker = group.submit(0);
    const results = [1, 2, 3].map((i) =>
      group.submit(i).then(
        (v) => `ok ${v}`,
        (e: Error) => e.message,
      ),
    );
    await blocker;
    expect(await Promise.all(results)).toEqual(["deadline exceeded", "deadline exceeded", "deadline exceeded"]);
    expect(calls).toEqual([[0], [1, 2, 3]]);
  });

  it("runs a batch of one in its caller's trace context and a batch of several in none", async () => {
    const manager = new AsyncLocalStorageContextManager().enable();
    context.setGlobalContextManager(manager);
    try {
      const caller = createContextKey("caller");
      const seen: Array<[number[], unknown]> = [];
      let release!: () => void;
      const gate = new Promise<void>((r) => (release = r));
      const group = new GroupCommit<number, number>(
        async (items) => {
          seen.push([items, context.active().getValue(caller)]);
          if (items[0] === 0) await gate;
          if (items.length > 1) throw new Error("deadlock");
          return items;
        },
        1,
        100,
      );
      const as = <T>(name: string, fn: () => T) => context.with(ROOT_CONTEXT.setValue(caller, name), fn);
      const first = as("a", () => group.submit(0));
      const rest = [as("b", () => group.submit(1)), as("c", () => group.submit(2))];
      release();
      await Promise.all([first, ...rest]);
      // The pair failed together in no trace, then each was retried in its own.
      expect(seen).toEqual([
        [[0], "a"],
        [[1, 2], undefined],
        [[1], "b"],
        [[2], "c"],
      ]);
    } finally {
      context.disable();
    }
  });
});
