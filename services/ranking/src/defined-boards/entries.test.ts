import { describe, expect, it } from "vitest";
import { CursorError, decodeCursor, encodeCursor, memberOf, parseMember, type BoardShape } from "./entries.js";

const shapes: BoardShape[] = [
  { boardId: "b", order: "desc", tieRule: "first" },
  { boardId: "b", order: "asc", tieRule: "first" },
  { boardId: "b", order: "desc", tieRule: "subscore" },
  { boardId: "b", order: "asc", tieRule: "subscore" },
];
/** Byte order, as Redis compares members. */
const byBytes = (a: string, b: string) => Buffer.compare(Buffer.from(a), Buffer.from(b));

describe("members", () => {
  it("sort in the board's order when read as Redis reads them (descending boards from the top)", () => {
    const max = Number.MAX_SAFE_INTEGER;
    for (const shape of shapes) {
      // Best first by the board's rules: subscore in the board's order (subscore boards), then the earlier time, then user id.
      const ordered = [
        { userId: "b", subscore: shape.order === "desc" ? max : -max, reachedAtMs: 5 },
        { userId: "a", subscore: shape.order === "desc" ? 2 : 1, reachedAtMs: 1 },
        { userId: "z", subscore: shape.order === "desc" ? 1 : 2, reachedAtMs: 0 },
        { userId: "y", subscore: shape.order === "desc" ? 1 : 2, reachedAtMs: 7 },
        { userId: "x", subscore: shape.order === "desc" ? -max : max, reachedAtMs: 9 },
      ].filter((_, i) => shape.tieRule === "subscore" || i === 2 || i === 3);
      const members = ordered.map((e) => memberOf(shape, e));
      const asRedisReads = [...members].sort(byBytes);
      if (shape.order === "desc") asRedisReads.reverse();
      expect(asRedisReads, `${shape.order}/${shape.tieRule}`).toEqual(members);
      for (const [i, e] of ordered.entries()) {
        expect(parseMember(shape, members[i]!)).toEqual({
          userId: e.userId,
          reachedAtMs: e.reachedAtMs,
          ...(shape.tieRule === "subscore" ? { subscore: e.subscore } : {}),
        });
      }
    }
  });

  it("puts the greater user id first on descending boards and the smaller on ascending ones, within one millisecond", () => {
    const desc = shapes[0]!;
    const asc = shapes[1]!;
    expect(byBytes(memberOf(desc, { userId: "ab", subscore: 0, reachedAtMs: 1 }), memberOf(desc, { userId: "abc", subscore: 0, reachedAtMs: 1 }))).toBeLessThan(
      0,
    );
    expect(byBytes(memberOf(asc, { userId: "ab", subscore: 0, reachedAtMs: 1 }), memberOf(asc, { userId: "abc", subscore: 0, reachedAtMs: 1 }))).toBeLessThan(
      0,
    );
  });
});

describe("cursors", () => {
  it("round-trip, and anything else is refused", () => {
    const shape = shapes[2]!;
    const cursor = {
      season: "20261207T0000Z",
      after: { score: -42, member: memberOf(shape, { userId: "u|1", subscore: -7, reachedAtMs: 1_765_000_000_123 }) },
    };
    expect(decodeCursor(shape, encodeCursor(cursor))).toEqual(cursor);
    expect(() => decodeCursor(shapes[0]!, encodeCursor(cursor))).toThrow(CursorError); // another board's tie key width
    for (const text of [
      "",
      "=",
      "a.b",
      Buffer.from("s|1.5|x").toString("base64url"),
      Buffer.from("s|99999999999999999|0000000000000|u").toString("base64url"),
    ]) {
      expect(() => decodeCursor(shapes[0]!, text)).toThrow(CursorError);
    }
  });
});
