import { describe, expect, it } from "vitest";
import { BoardEpochs } from "./epochs.js";
import { REBUILT_MARKER } from "./rebuild.js";

/** A Redis holding the rebuild marker, counting GETs; `status` may be set to simulate an outage. */
function fixture(marker: string | null = "2026-12-06T10:00:00.000Z") {
  const redis = {
    status: "ready",
    marker,
    gets: 0,
    failing: false,
    async get(key: string) {
      expect(key).toBe(REBUILT_MARKER);
      this.gets += 1;
      if (this.failing) throw new Error("Connection is closed.");
      return this.marker;
    },
  };
  let nowMs = 1_000_000;
  const seasons = { currentSeasonOf: async (name: string) => (name === "laps" ? "20261206T0000Z" : undefined) };
  const epochs = new BoardEpochs(redis as never, seasons, () => nowMs);
  return { redis, epochs, tick: (ms: number) => (nowMs += ms) };
}

const REBUILT_MS = Date.parse("2026-12-06T10:00:00.000Z");

describe("BoardEpochs", () => {
  it("spells the generation of the last rebuild and the segment each board shows", async () => {
    const { epochs } = fixture();
    expect(await epochs.epochOf("global")).toBe(`${REBUILT_MS}.all`);
    expect(await epochs.epochOf("region:eu")).toBe(`${REBUILT_MS}.all`);
    expect(await epochs.epochOf("daily:2026-12-06")).toBe(`${REBUILT_MS}.20261206T0000Z`);
    expect(await epochs.epochOf("weekly:2026-w49")).toBe(`${REBUILT_MS}.20261130T0000Z`);
    expect(await epochs.epochOf("monthly:2026-12")).toBe(`${REBUILT_MS}.20261201T0000Z`);
    expect(await epochs.epochOf("laps")).toBe(`${REBUILT_MS}.20261206T0000Z`);
  });

  it("is generation 0 while Redis has no rebuild marker", async () => {
    const { epochs } = fixture(null);
    expect(await epochs.epochOf("global")).toBe("0.all");
  });

  it("reads the marker at most once a second, however many reads ask", async () => {
    const { redis, epochs, tick } = fixture();
    await Promise.all(Array.from({ length: 50 }, () => epochs.epochOf("global")));
    tick(999);
    await epochs.epochOf("global");
    expect(redis.gets).toBe(1);
    // Another replica rebuilt: seen within the second.
    redis.marker = "2026-12-06T11:00:00.000Z";
    tick(1);
    expect(await epochs.epochOf("global")).toBe(`${Date.parse(redis.marker)}.all`);
    expect(redis.gets).toBe(2);
  });

  it("reads the new generation at once after this process rebuilt", async () => {
    const { redis, epochs } = fixture();
    expect(await epochs.epochOf("global")).toBe(`${REBUILT_MS}.all`);
    redis.marker = "2026-12-06T12:00:00.000Z";
    epochs.forget();
    expect(await epochs.epochOf("global")).toBe(`${Date.parse(redis.marker)}.all`);
  });

  it("keeps the last generation while Redis is away (reads answer from PostgreSQL, the same standings)", async () => {
    const { redis, epochs, tick } = fixture();
    await epochs.epochOf("global");
    redis.status = "reconnecting";
    tick(5_000);
    expect(await epochs.epochOf("global")).toBe(`${REBUILT_MS}.all`);
    redis.status = "ready";
    redis.failing = true;
    expect(await epochs.epochOf("global")).toBe(`${REBUILT_MS}.all`);
    expect(redis.gets).toBe(2);
  });
});
