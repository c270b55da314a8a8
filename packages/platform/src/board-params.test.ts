import { describe, expect, it } from "vitest";
import { Code, ConnectError } from "@connectrpc/connect";
import { DEFAULT_BOARD, DEFAULT_LIMIT, MAX_LIMIT, boardName, knownBoard, pageLimit } from "./board-params.js";
import { DEFAULT_RETENTION_MS } from "./periods.js";

function codeOf(fn: () => unknown): Code | undefined {
  try {
    fn();
    return undefined;
  } catch (err) {
    expect(err).toBeInstanceOf(ConnectError);
    return (err as ConnectError).code;
  }
}

describe("boardName", () => {
  it('maps "" to the global board', () => {
    expect(DEFAULT_BOARD).toBe("global");
    expect(boardName("")).toBe("global");
  });

  it.each(["global", "weekly", "season:2024", "eu_west-1", "0", "a".repeat(64), "x-", "9lives"])("accepts %j", (name) => {
    expect(boardName(name)).toBe(name);
  });

  it.each([
    "Global",
    "a".repeat(65),
    "-leading-dash",
    ":colon",
    "_underscore",
    "has space",
    " global",
    "global\n",
    "global.changed", // would break the NATS subject scoreboard.board.<name>.changed
    "*",
    ">",
    "ünïcode",
    "a/b",
  ])("rejects %j with INVALID_ARGUMENT", (name) => {
    expect(codeOf(() => boardName(name))).toBe(Code.InvalidArgument);
  });
});

describe("pageLimit", () => {
  it("maps 0 to the default", () => {
    expect(pageLimit(0)).toBe(DEFAULT_LIMIT);
    expect(DEFAULT_LIMIT).toBe(10);
  });

  it.each([1, 10, 50, MAX_LIMIT])("accepts %d", (limit) => {
    expect(pageLimit(limit)).toBe(limit);
  });

  it.each([MAX_LIMIT + 1, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 31 - 1])("rejects %d with INVALID_ARGUMENT", (limit) => {
    expect(codeOf(() => pageLimit(limit))).toBe(Code.InvalidArgument);
  });
});

describe("knownBoard", () => {
  const rules = { regions: new Set(["eu", "us"]), retention: DEFAULT_RETENTION_MS };
  const now = Date.UTC(2026, 10, 25, 12); // Wednesday 2026-11-25, ISO week 48

  it.each(["", "global", "region:eu", "region:us", "daily", "weekly", "monthly", "daily:2026-11-25", "daily:2026-11-18", "weekly:2026-w48", "monthly:2025-12"])(
    "serves %j",
    (name) => {
      expect(knownBoard(name, rules, now)).toBe(name || "global");
    },
  );

  it.each([
    ["region:apac", Code.NotFound],
    ["region:", Code.NotFound],
    ["season:2024", Code.NotFound],
    ["x", Code.NotFound],
    ["daily:2026-11-26", Code.OutOfRange],
    ["daily:2026-11-17", Code.OutOfRange],
    ["monthly:2024-01", Code.OutOfRange],
    ["daily:2026-02-30", Code.InvalidArgument],
    ["weekly:2026-48", Code.InvalidArgument],
    ["Global", Code.InvalidArgument],
  ])("refuses %j with %s", (name, code) => {
    expect(codeOf(() => knownBoard(name, rules, now))).toBe(code);
  });

  it("serves no region board when no region is declared, and says so", () => {
    expect(() => knownBoard("region:eu", { ...rules, regions: new Set() }, now)).toThrow(/regions are none/);
  });
});
