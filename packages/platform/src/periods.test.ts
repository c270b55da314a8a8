import { describe, expect, it } from "vitest";
import { Code, type ConnectError } from "@connectrpc/connect";
import { DEFAULT_RETENTION_MS, aliasOf, expiresAtMs, parsePeriodBoard, periodAt, periodBoardsAt, resolveBoard } from "./periods.js";

const at = (iso: string) => Date.parse(iso);
const DAY = 86_400_000;

describe("periodAt", () => {
  it.each([
    // ISO weeks across year ends: the week holding Thursday decides the year.
    ["2026-11-23T00:00:00Z", "daily:2026-11-23", "weekly:2026-w48", "monthly:2026-11"],
    ["2026-11-22T23:59:59.999Z", "daily:2026-11-22", "weekly:2026-w47", "monthly:2026-11"],
    ["2026-12-31T12:00:00Z", "daily:2026-12-31", "weekly:2026-w53", "monthly:2026-12"],
    ["2027-01-03T23:00:00Z", "daily:2027-01-03", "weekly:2026-w53", "monthly:2027-01"],
    ["2027-01-04T00:00:00Z", "daily:2027-01-04", "weekly:2027-w01", "monthly:2027-01"],
    ["2024-12-30T08:00:00Z", "daily:2024-12-30", "weekly:2025-w01", "monthly:2024-12"],
    ["2021-01-01T00:00:00Z", "daily:2021-01-01", "weekly:2020-w53", "monthly:2021-01"],
    ["2028-02-29T10:00:00Z", "daily:2028-02-29", "weekly:2028-w09", "monthly:2028-02"],
  ])("puts %s on %s, %s and %s", (iso, daily, weekly, monthly) => {
    expect(periodBoardsAt(at(iso))).toEqual([daily, weekly, monthly]);
  });

  it("gives half-open UTC bounds", () => {
    expect(periodAt("daily", at("2026-11-23T15:00:00Z"))).toMatchObject({ startMs: at("2026-11-23T00:00:00Z"), endMs: at("2026-11-24T00:00:00Z") });
    expect(periodAt("weekly", at("2026-11-29T23:59:59Z"))).toMatchObject({ startMs: at("2026-11-23T00:00:00Z"), endMs: at("2026-11-30T00:00:00Z") });
    expect(periodAt("monthly", at("2026-12-31T23:59:59Z"))).toMatchObject({ startMs: at("2026-12-01T00:00:00Z"), endMs: at("2027-01-01T00:00:00Z") });
  });
});

describe("parsePeriodBoard", () => {
  it("round-trips every period of several years", () => {
    for (let ms = at("2020-01-01T00:00:00Z"); ms < at("2029-01-01T00:00:00Z"); ms += DAY) {
      for (const board of periodBoardsAt(ms)) expect(parsePeriodBoard(board)?.board).toBe(board);
    }
  });

  it.each([
    "daily:2026-02-30",
    "daily:2026-13-01",
    "weekly:2026-w54",
    "weekly:2026-w00",
    "weekly:2026-48",
    "monthly:2026-13",
    "monthly:2026-1",
    "global",
    "region:eu",
    "daily",
  ])("does not take %s for a period", (board) => expect(parsePeriodBoard(board)).toBeUndefined());
});

describe("resolveBoard", () => {
  const now = at("2026-11-23T10:00:00Z");
  const resolve = (board: string) => resolveBoard(board, DEFAULT_RETENTION_MS, now);
  const codeOf = (board: string) => {
    try {
      resolve(board);
      return undefined;
    } catch (err) {
      return (err as ConnectError).code;
    }
  };

  it("maps the kinds to the current period and leaves other boards alone", () => {
    expect(resolve("daily")).toBe("daily:2026-11-23");
    expect(resolve("weekly")).toBe("weekly:2026-w48");
    expect(resolve("monthly")).toBe("monthly:2026-11");
    expect(resolve("global")).toBe("global");
    expect(resolve("region:eu")).toBe("region:eu");
    expect(resolve("daily:2026-11-20")).toBe("daily:2026-11-20");
  });

  it("refuses malformed periods, periods not started, and periods past their retention", () => {
    expect(codeOf("daily:2026-11-31")).toBe(Code.InvalidArgument);
    expect(codeOf("daily:2026-11-24")).toBe(Code.OutOfRange);
    expect(codeOf("daily:2026-11-15")).toBe(Code.OutOfRange); // ended 11-16, plus 7 days = 11-23 00:00
    expect(codeOf("daily:2026-11-16")).toBeUndefined();
    expect(codeOf("monthly:2025-09")).toBe(Code.OutOfRange);
    expect(codeOf("monthly:2025-11")).toBeUndefined();
  });
});

describe("expiry and aliases", () => {
  it("expires a board its retention after the period ends", () => {
    const period = parsePeriodBoard("daily:2026-11-23")!;
    expect(expiresAtMs(period, DEFAULT_RETENTION_MS)).toBe(at("2026-12-01T00:00:00Z"));
  });

  it("names the alias of the current period only", () => {
    const now = at("2026-11-23T10:00:00Z");
    expect(aliasOf("daily:2026-11-23", now)).toBe("daily");
    expect(aliasOf("weekly:2026-w48", now)).toBe("weekly");
    expect(aliasOf("daily:2026-11-22", now)).toBeUndefined();
    expect(aliasOf("global", now)).toBeUndefined();
  });
});
