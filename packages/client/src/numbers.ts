// Scores and ranks are int64 in the contract, which protobuf-es gives as
// bigint: a JavaScript number holds integers exactly only up to 2^53 − 1, and
// a score can go past that. Keep the bigint (or its decimal string) wherever
// the value must stay exact; convert to number only to draw or compare on screen.

/** 2^53 − 1, the largest integer a JavaScript number holds exactly. */
export const MAX_EXACT_NUMBER = BigInt(Number.MAX_SAFE_INTEGER);

/** True when `Number(value)` is exactly `value` (|value| ≤ 2^53 − 1). */
export function isExactNumber(value: bigint): boolean {
  return value <= MAX_EXACT_NUMBER && value >= -MAX_EXACT_NUMBER;
}

/**
 * The value as a number, for arithmetic on screen: bar widths, charts,
 * animations. Exact up to 2^53 − 1; beyond that it is the nearest double
 * (9007199254740993n becomes 9007199254740992). Never send it back to the API
 * or use it as a key: use the bigint, or `String(value)`.
 */
export function toDisplayNumber(value: bigint): number {
  return Number(value);
}

const defaultFormat = new Intl.NumberFormat();

/**
 * The value formatted for people, digit for digit: Intl formats a bigint
 * exactly at any size ("9,223,372,036,854,775,807" in en-US). Pass locales and
 * options as to Intl.NumberFormat, e.g. `{ notation: "compact" }` for "1.2M".
 */
export function formatScore(value: bigint, locales?: Intl.LocalesArgument, options?: Intl.NumberFormatOptions): string {
  const format = locales === undefined && options === undefined ? defaultFormat : new Intl.NumberFormat(locales, options);
  return format.format(value);
}
