import { describe, expect, it } from "vitest";
import { formatScore, isExactNumber, MAX_EXACT_NUMBER, toDisplayNumber } from "./numbers.js";

describe("int64 values (bigint)", () => {
  const max64 = 2n ** 63n - 1n;

  it("stays exact as a number up to 2^53 − 1 and says when it would not", () => {
    expect(MAX_EXACT_NUMBER).toBe(9_007_199_254_740_991n);
    expect(toDisplayNumber(MAX_EXACT_NUMBER)).toBe(Number.MAX_SAFE_INTEGER);
    expect(isExactNumber(MAX_EXACT_NUMBER)).toBe(true);
    expect(isExactNumber(-MAX_EXACT_NUMBER)).toBe(true);
    expect(isExactNumber(MAX_EXACT_NUMBER + 1n)).toBe(false);
    expect(isExactNumber(-MAX_EXACT_NUMBER - 1n)).toBe(false);
    // Past 2^53 a number rounds: two different scores become one.
    expect(toDisplayNumber(MAX_EXACT_NUMBER + 2n)).toBe(toDisplayNumber(MAX_EXACT_NUMBER + 1n));
    expect(toDisplayNumber(0n)).toBe(0);
    expect(toDisplayNumber(-42n)).toBe(-42);
  });

  it("formats any int64 digit for digit", () => {
    expect(formatScore(max64, "en-US")).toBe("9,223,372,036,854,775,807");
    expect(formatScore(-max64 - 1n, "en-US")).toBe("-9,223,372,036,854,775,808");
    expect(formatScore(MAX_EXACT_NUMBER + 2n, "en-US")).toBe("9,007,199,254,740,993");
    expect(formatScore(1234567n, "de-DE")).toBe("1.234.567");
    expect(formatScore(0n)).toBe("0");
    expect(formatScore(1_250_000n, "en-US", { notation: "compact" })).toBe("1.3M");
    // The string form is exact too, for keys, storage and JSON.
    expect(String(max64)).toBe("9223372036854775807");
  });
});
