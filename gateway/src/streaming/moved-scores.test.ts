import { create } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { EntryMoveSchema } from "@scoreboard/gen/scoreboard/v1/events_pb";
import { MovedScores } from "./moved-scores.js";

const move = (userId: string, from: number | undefined, to: number) =>
  create(EntryMoveSchema, { userId, fromScore: from === undefined ? undefined : BigInt(from), toScore: BigInt(to) });

describe("MovedScores", () => {
  it("touches the standings a move passed, and the mover's own, not the ones outside every span", () => {
    const moved = new MovedScores();
    moved.add([move("a", 100, 150), move("b", 400, 390)]);
    expect(moved.touches("x", 120, 120)).toBe(true); // passed by a
    expect(moved.touches("x", 150, 160)).toBe(true); // a tied its lowest score
    expect(moved.touches("x", 200, 300)).toBe(false); // between the spans
    expect(moved.touches("x", 395, 395)).toBe(true); // b fell past it
    expect(moved.touches("x", 10, 99)).toBe(false); // below every span
    expect(moved.touches("a", 1_000, 1_000)).toBe(true); // its own move
  });

  it("a user without an entry is touched only by their own move", () => {
    const moved = new MovedScores();
    moved.add([move("a", 0, 1_000_000)]);
    expect(moved.touches("x", Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY)).toBe(false);
    expect(moved.touches("a", Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY)).toBe(true);
  });

  it("places a move without a from-score at the mover's last known score, anywhere when unknown", () => {
    const known = new MovedScores();
    known.add([move("a", undefined, 150)]);
    known.place((userId) => (userId === "a" ? 100 : undefined));
    expect(known.touches("x", 120, 120)).toBe(true);
    expect(known.touches("x", 10, 20)).toBe(false);

    const unknown = new MovedScores();
    unknown.add([move("a", undefined, 150)]);
    unknown.place(() => undefined);
    expect(unknown.touches("x", 10, 20)).toBe(true);
  });

  it("joins overlapping spans, and forgets them when cleared", () => {
    const moved = new MovedScores();
    moved.add([move("a", 10, 20), move("b", 15, 30), move("c", 50, 60)]);
    expect(moved.touches("x", 25, 25)).toBe(true);
    expect(moved.touches("x", 35, 45)).toBe(false);
    moved.clear();
    expect(moved.isEmpty).toBe(true);
    expect(moved.touches("x", 25, 25)).toBe(false);
  });
});
