import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { Heartbeat } from "./heartbeat.js";

describe("Heartbeat", () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  it("beats once per interval while nothing is written, and never while writes come", () => {
    const beats: number[] = [];
    const heartbeat = new Heartbeat(1_000, () => beats.push(Date.now()));
    const start = Date.now();
    vi.advanceTimersByTime(3_000);
    expect(beats.map((t) => t - start)).toEqual([1_000, 2_000, 3_000]);
    for (let i = 0; i < 10; i++) {
      vi.advanceTimersByTime(400);
      heartbeat.wrote();
    }
    expect(beats).toHaveLength(3);
    // Silent at most one interval after the last write.
    vi.advanceTimersByTime(1_000);
    expect(beats).toHaveLength(4);
    heartbeat.stop();
    vi.advanceTimersByTime(5_000);
    expect(beats).toHaveLength(4);
  });
});
