import { Code, ConnectError } from "@connectrpc/connect";
import type { EnvReader } from "./config.js";

/**
 * Time-windowed boards beside the all-time ones: a grant counts on the board
 * of the UTC day, ISO week and month it was made in. Boards are keyed by
 * their period ("daily:2026-11-23", "weekly:2026-w48", "monthly:2026-11"),
 * so a new period simply starts on a new, empty board and nothing has to be
 * reset; old boards expire from Redis after a retention.
 *
 * PostgreSQL computes the same names in the ledger trigger of migration 006
 * (to_char 'YYYY-MM-DD', 'IYYY-"w"IW', 'YYYY-MM' in UTC); the two must agree.
 */
export const PERIOD_KINDS = ["daily", "weekly", "monthly"] as const;
export type PeriodKind = (typeof PERIOD_KINDS)[number];

export interface Period {
  kind: PeriodKind;
  /** The concrete board name, e.g. "weekly:2026-w48". */
  board: string;
  startMs: number;
  /** Exclusive. */
  endMs: number;
}

/** How long a period board stays readable after its period ended. */
export type PeriodRetention = Record<PeriodKind, number>;

export const DEFAULT_RETENTION_MS: PeriodRetention = {
  daily: 7 * 86_400_000,
  weekly: 5 * 7 * 86_400_000,
  monthly: 366 * 86_400_000,
};

const DAY = 86_400_000;
const pad = (n: number, width = 2) => String(n).padStart(width, "0");

/** The period of `kind` that contains the instant `ms`. */
export function periodAt(kind: PeriodKind, ms: number): Period {
  const d = new Date(ms);
  const y = d.getUTCFullYear();
  const m = d.getUTCMonth();
  if (kind === "daily") {
    const startMs = Date.UTC(y, m, d.getUTCDate());
    return { kind, board: `daily:${y}-${pad(m + 1)}-${pad(d.getUTCDate())}`, startMs, endMs: startMs + DAY };
  }
  if (kind === "monthly") {
    return { kind, board: `monthly:${y}-${pad(m + 1)}`, startMs: Date.UTC(y, m, 1), endMs: Date.UTC(y, m + 1, 1) };
  }
  // ISO 8601 week: Monday first; week 1 holds the year's first Thursday.
  const weekday = (d.getUTCDay() + 6) % 7; // Monday 0 .. Sunday 6
  const startMs = Date.UTC(y, m, d.getUTCDate()) - weekday * DAY;
  const thursday = new Date(startMs + 3 * DAY);
  const isoYear = thursday.getUTCFullYear();
  const week = Math.floor((thursday.getTime() - Date.UTC(isoYear, 0, 1)) / (7 * DAY)) + 1;
  return { kind, board: `weekly:${isoYear}-w${pad(week)}`, startMs, endMs: startMs + 7 * DAY };
}

/** Every period board a grant made at `ms` counts on. */
export function periodBoardsAt(ms: number): string[] {
  return PERIOD_KINDS.map((kind) => periodAt(kind, ms).board);
}

const CONCRETE = /^(daily):(\d{4})-(\d{2})-(\d{2})$|^(weekly):(\d{4})-w(\d{2})$|^(monthly):(\d{4})-(\d{2})$/;

/** The period a concrete board name stands for; undefined for other boards and malformed names. */
export function parsePeriodBoard(board: string): Period | undefined {
  const match = CONCRETE.exec(board);
  if (!match) return undefined;
  let period: Period;
  if (match[1]) {
    const ms = Date.UTC(Number(match[2]), Number(match[3]) - 1, Number(match[4]));
    period = periodAt("daily", ms);
  } else if (match[5]) {
    // Monday of ISO week 1 is the Monday on or before January 4th.
    const jan4 = Date.UTC(Number(match[6]), 0, 4);
    const week1 = jan4 - ((new Date(jan4).getUTCDay() + 6) % 7) * DAY;
    period = periodAt("weekly", week1 + (Number(match[7]) - 1) * 7 * DAY);
  } else {
    period = periodAt("monthly", Date.UTC(Number(match[9]), Number(match[10]) - 1, 1));
  }
  // Round-tripping rejects dates like 2026-02-30 or week 54.
  return period.board === board ? period : undefined;
}

export function isPeriodKind(board: string): board is PeriodKind {
  return (PERIOD_KINDS as readonly string[]).includes(board);
}

/** True for "daily", "weekly", "monthly" and concrete period names alike. */
export function isPeriodBoard(board: string): boolean {
  return isPeriodKind(board) || /^(daily|weekly|monthly):/.test(board);
}

/**
 * The board a request means: "daily", "weekly" and "monthly" name the current
 * period; a concrete period must be a real one that has started and is
 * within its retention (OUT_OF_RANGE otherwise). Other boards pass through.
 */
export function resolveBoard(board: string, retention: PeriodRetention, nowMs = Date.now()): string {
  if (isPeriodKind(board)) return periodAt(board, nowMs).board;
  if (!/^(daily|weekly|monthly):/.test(board)) return board;
  const period = parsePeriodBoard(board);
  if (!period) {
    throw new ConnectError(`board "${board}" is not a period: use daily:YYYY-MM-DD, weekly:YYYY-wWW or monthly:YYYY-MM (UTC)`, Code.InvalidArgument);
  }
  if (period.startMs > nowMs) throw new ConnectError(`board "${board}" has not started yet`, Code.OutOfRange);
  if (period.endMs + retention[period.kind] <= nowMs) {
    throw new ConnectError(`board "${board}" is past its retention of ${Math.round(retention[period.kind] / DAY)} days`, Code.OutOfRange);
  }
  return board;
}

/** When a period board may leave Redis (ms since the epoch). */
export function expiresAtMs(period: Period, retention: PeriodRetention): number {
  return period.endMs + retention[period.kind];
}

/** The current-period alias ("daily") of a concrete board, when it is the current period. */
export function aliasOf(board: string, nowMs = Date.now()): string | undefined {
  const period = parsePeriodBoard(board);
  return period && period.startMs <= nowMs && nowMs < period.endMs ? period.kind : undefined;
}

/**
 * The period boards' retention (DAILY_/WEEKLY_/MONTHLY_BOARD_RETENTION_DAYS):
 * ranking expires boards by it, reconciliation knows the live ones by it, and
 * the gateway refuses boards past it.
 */
export function readPeriodRetention(env: EnvReader): PeriodRetention {
  return {
    daily: env.int("DAILY_BOARD_RETENTION_DAYS", DEFAULT_RETENTION_MS.daily / DAY, 1, 3_660) * DAY,
    weekly: env.int("WEEKLY_BOARD_RETENTION_DAYS", DEFAULT_RETENTION_MS.weekly / DAY, 7, 3_660) * DAY,
    monthly: env.int("MONTHLY_BOARD_RETENTION_DAYS", DEFAULT_RETENTION_MS.monthly / DAY, 28, 3_660) * DAY,
  };
}
