import { describe, expect, it } from "vitest";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { BoardEntryChangedSchema, ScoreChangedBatchSchema, ScoreChangedSchema } from "@scoreboard/gen/scoreboard/v1/events_pb";
import { batchMessageId, encodeScoreChanged, encodeScoreChangedBatch, splitBatch } from "./events.js";

const event = (ledgerId: number, username = `user-${ledgerId}`) =>
  encodeScoreChanged({
    ledgerId,
    requestId: `r${ledgerId}`,
    userId: `u${ledgerId}`,
    username,
    actionId: "a",
    points: 5,
    newScore: 5 * ledgerId,
    version: ledgerId,
    createdAt: new Date(1_700_000_000_000 + ledgerId),
    region: ledgerId % 2 ? "eu" : null,
    periodScores: { "daily:2026-11-23": 5 },
  });

describe("encodeScoreChangedBatch", () => {
  it("makes the bytes protobuf makes of the decoded events, without decoding them", () => {
    const events = [event(1), event(2, "x".repeat(300)), event(3)];
    const batch = encodeScoreChangedBatch(events);
    const decoded = events.map((e) => fromBinary(ScoreChangedSchema, e));
    expect(Buffer.from(batch).equals(Buffer.from(toBinary(ScoreChangedBatchSchema, create(ScoreChangedBatchSchema, { events: decoded }))))).toBe(true);
    expect(fromBinary(ScoreChangedBatchSchema, batch).events.map((e) => e.ledgerId)).toEqual([1n, 2n, 3n]);
    expect(encodeScoreChangedBatch([])).toHaveLength(0);
  });
});

describe("splitBatch", () => {
  it("keeps a cycle's events in one message until their size says otherwise, in order", () => {
    const events = Array.from({ length: 256 }, (_, i) => ({ payload: event(i + 1) }));
    expect(splitBatch(events)).toEqual([events]);
    const parts = splitBatch(events, 1_000);
    expect(parts.length).toBeGreaterThan(1);
    expect(parts.flat()).toEqual(events);
    for (const part of parts) expect(part.reduce((n, e) => n + e.payload.length + 8, 0)).toBeLessThanOrEqual(1_000);
    // An event larger than the limit still goes, alone.
    const huge = { payload: new Uint8Array(2_000) };
    expect(splitBatch([events[0]!, huge, events[1]!], 1_000)).toEqual([[events[0]], [huge], [events[1]]]);
  });
});

describe("batchMessageId", () => {
  it("is the same for the same ledger ids in the same order, and differs otherwise", () => {
    expect(batchMessageId(["1", "2"])).toBe(batchMessageId(["1", "2"]));
    expect(batchMessageId(["1", "2"])).not.toBe(batchMessageId(["2", "1"]));
    expect(batchMessageId(["1", "2"])).not.toBe(batchMessageId(["12"]));
    expect(batchMessageId(["1", "2"])).toMatch(/^b1-[A-Za-z0-9_-]{43}$/);
  });
});

describe("encodeScoreChanged", () => {
  it("encodes a grant's event as it always has (consumers and sealed batches depend on the bytes)", () => {
    const grant = encodeScoreChanged({
      ledgerId: 7,
      requestId: "r",
      userId: "u",
      username: "U",
      actionId: "a",
      points: 5,
      newScore: 10,
      version: 2,
      createdAt: new Date(1_700_000_000_123),
      region: "eu",
      periodScores: { "daily:2026-11-23": 5 },
    });
    expect(Buffer.from(grant).toString("hex")).toBe(
      "08071201721a01752201552a01613005380a40024a0b0880e2cfaa0610c0a9d33a520265755a140a106461696c793a323032362d31312d32331005",
    );
  });

  it("encodes a board submission's entry and leaves the grant's fields unset", () => {
    const decoded = fromBinary(
      ScoreChangedSchema,
      encodeScoreChanged({
        ledgerId: 9,
        requestId: "r9",
        userId: "u",
        username: "U",
        actionId: null,
        points: 0,
        newScore: 42,
        version: 3,
        createdAt: new Date(1_700_000_000_000),
        region: "eu",
        boardEntry: create(BoardEntryChangedSchema, { boardId: "laps", season: "all", score: 42n, version: 3n }),
      }),
    );
    expect([decoded.newScore, decoded.version, decoded.region, decoded.points, decoded.boardEntry?.score, decoded.boardEntry?.version]).toEqual([
      0n,
      0n,
      "",
      0n,
      42n,
      3n,
    ]);
  });
});
