import { nanos, type JetStreamManager, type StreamConfig } from "nats";
import { describe, expect, it } from "vitest";
import { ScoresStream, configuredStream, ensureStream, streamDrift, subjectCovers, widenedSubjects } from "./nats.js";

describe("subjectCovers", () => {
  it("matches wildcards the way NATS does", () => {
    expect(subjectCovers("scoreboard.score.>", "scoreboard.score.batch")).toBe(true);
    expect(subjectCovers("scoreboard.>", "scoreboard.score.>")).toBe(true);
    expect(subjectCovers("scoreboard.score.>", "scoreboard.score.>")).toBe(true);
    expect(subjectCovers("scoreboard.*.changed", "scoreboard.score.changed")).toBe(true);
    // ">" needs at least one token; "*" exactly one.
    expect(subjectCovers("scoreboard.score.>", "scoreboard.score")).toBe(false);
    expect(subjectCovers("scoreboard.*", "scoreboard.score.batch")).toBe(false);
    // A narrower pattern never covers a wider one.
    expect(subjectCovers("scoreboard.score.changed", "scoreboard.score.>")).toBe(false);
    expect(subjectCovers("scoreboard.*.>", "scoreboard.>")).toBe(false);
  });
});

describe("widenedSubjects", () => {
  it("adds what an earlier release's stream lacks, replacing the narrower subjects it covers", () => {
    expect(widenedSubjects(["scoreboard.score.changed", "audit.>"], ["scoreboard.score.>"])).toEqual(["audit.>", "scoreboard.score.>"]);
  });

  it("adds nothing when the stream captures every declared subject, also through an operator's wider one", () => {
    expect(widenedSubjects(["scoreboard.score.>"], ["scoreboard.score.>"])).toBeUndefined();
    expect(widenedSubjects(["scoreboard.>"], ["scoreboard.score.>"])).toBeUndefined();
  });
});

describe("streamDrift", () => {
  it("names each declared setting the stream holds differently, ignoring undeclared ones", () => {
    const declared = configuredStream(ScoresStream, { replicas: 3, storage: "file" });
    const actual: Partial<StreamConfig> = { ...declared, num_replicas: 1, max_age: nanos(3_600_000), max_bytes: 1 << 30 };
    expect(streamDrift(actual, declared)).toEqual([
      { setting: "max_age", configured: ScoresStream.max_age, actual: nanos(3_600_000) },
      { setting: "num_replicas", configured: 3, actual: 1 },
    ]);
    expect(streamDrift(declared, declared)).toEqual([]);
  });
});

/** A JetStreamManager holding at most one stream, recording what was asked of it. */
function fakeJetStream(existing?: Partial<StreamConfig>) {
  const calls: string[] = [];
  let config = existing;
  const jsm = {
    streams: {
      info: async () => {
        calls.push("info");
        if (!config) throw new Error("stream not found");
        return { config };
      },
      add: async (cfg: Partial<StreamConfig>) => {
        calls.push("add");
        config = cfg;
      },
      update: async (_name: string, cfg: Partial<StreamConfig>) => {
        calls.push(`update ${JSON.stringify(cfg)}`);
        config = { ...config, ...cfg };
      },
    },
  } as unknown as JetStreamManager;
  const warnings: unknown[] = [];
  const logger = { warn: (fields: unknown) => warnings.push(fields), info: () => undefined };
  return { jsm, logger, calls, warnings, config: () => config };
}

describe("ensureStream", () => {
  const declared = configuredStream(ScoresStream, { replicas: 3, storage: "file" });

  it("creates a missing stream with the configured replicas and storage", async () => {
    const nats = fakeJetStream();
    await ensureStream(nats.jsm, declared, nats.logger);
    expect(nats.calls).toEqual(["info", "add"]);
    expect(nats.config()).toMatchObject({ num_replicas: 3, storage: "file" });
  });

  it("leaves an operator's replicas and limits alone and warns about each", async () => {
    const tuned = { ...declared, num_replicas: 5, max_age: nanos(86_400_000) };
    const nats = fakeJetStream(tuned);
    await ensureStream(nats.jsm, declared, nats.logger);
    expect(nats.calls).toEqual(["info"]);
    expect(nats.warnings).toEqual([
      expect.objectContaining({ stream: "SCORES", setting: "max_age", actual: nanos(86_400_000) }),
      expect.objectContaining({ stream: "SCORES", setting: "num_replicas", configured: 3, actual: 5 }),
    ]);
  });

  it("updates only the subjects of a stream an earlier release made", async () => {
    const nats = fakeJetStream({ ...declared, subjects: ["scoreboard.score.changed"], num_replicas: 1 });
    await ensureStream(nats.jsm, declared, nats.logger);
    expect(nats.calls).toEqual(["info", `update ${JSON.stringify({ subjects: ["scoreboard.score.>"] })}`]);
    expect(nats.config()).toMatchObject({ num_replicas: 1, subjects: ["scoreboard.score.>"] });
  });
});
