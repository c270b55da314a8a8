// Seasons of a defined board, computed from its reset schedule: the season a
// moment falls into is the one that began at the schedule's last run at or
// before it. Nothing resets a board: a submission is keyed by the season of
// its time, a read without a season reads the season of now, and a season
// that has ended is simply no longer current. Score (writes) and ranking
// (reads) compute seasons here and nowhere else.
import { CronExpressionParser } from "cron-parser";

/** A season: its id, first instant, and the next season's first instant (none for "none"). */
export interface SeasonWindow {
  id: string;
  startsAt: Date;
  endsAt?: Date;
}

/** The one season of a board that never resets. */
export const ALL_TIME_SEASON = "all";

/** The named schedules and the cron expression each stands for. */
const NAMED: Record<string, string> = {
  daily: "0 0 * * *",
  // ISO weeks: seasons begin on Mondays.
  weekly: "0 0 * * 1",
  monthly: "0 0 1 * *",
};

export class ScheduleError extends Error {}

/** "YYYYMMDDTHHMMZ" of a season's first instant. */
export function seasonIdOf(startsAt: Date): string {
  const iso = startsAt.toISOString();
  return `${iso.slice(0, 4)}${iso.slice(5, 7)}${iso.slice(8, 10)}T${iso.slice(11, 13)}${iso.slice(14, 16)}Z`;
}

const SEASON_ID = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})Z$/;

/** The instant a season id names, or undefined when it is not one. */
export function seasonStartOf(id: string): Date | undefined {
  const m = SEASON_ID.exec(id);
  if (!m) return undefined;
  const at = new Date(Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5])));
  return seasonIdOf(at) === id ? at : undefined;
}

/** Whether `timeZone` is an IANA zone this runtime knows. */
export function isTimeZone(timeZone: string): boolean {
  try {
    new Intl.DateTimeFormat("en", { timeZone });
    return true;
  } catch {
    return false;
  }
}

/**
 * A board's reset schedule: "none", "daily", "weekly", "monthly" or a
 * five-field cron expression, run in an IANA time zone.
 */
export class SeasonSchedule {
  private readonly cron: string | undefined;

  constructor(
    readonly schedule: string,
    readonly timeZone = "UTC",
  ) {
    if (!isTimeZone(timeZone)) throw new ScheduleError(`time zone "${timeZone}" is not an IANA time zone`);
    if (schedule === "none") return;
    const cron = NAMED[schedule] ?? schedule;
    const fields = cron.trim().split(/\s+/);
    if (fields.length !== 5) {
      throw new ScheduleError(`reset schedule must be none, daily, weekly, monthly or a five-field cron expression, not "${schedule}"`);
    }
    try {
      CronExpressionParser.parse(cron, { tz: timeZone, currentDate: new Date(0) }).next();
    } catch (err) {
      throw new ScheduleError(`reset schedule "${schedule}" is not a valid cron expression: ${(err as Error).message}`);
    }
    this.cron = cron;
  }

  get resets(): boolean {
    return this.cron !== undefined;
  }

  /** The season `at` falls into. */
  seasonAt(at: Date): SeasonWindow {
    if (!this.cron) return { id: ALL_TIME_SEASON, startsAt: new Date(0) };
    // prev() answers the last run strictly before currentDate: one ms later
    // makes a run at exactly `at` the season's start.
    const runs = CronExpressionParser.parse(this.cron, { tz: this.timeZone, currentDate: new Date(at.getTime() + 1) });
    const startsAt = runs.prev().toDate();
    const endsAt = CronExpressionParser.parse(this.cron, { tz: this.timeZone, currentDate: startsAt }).next().toDate();
    return { id: seasonIdOf(startsAt), startsAt, endsAt };
  }

  /** The season before `season`, or undefined for a board that never resets. */
  previous(season: SeasonWindow): SeasonWindow | undefined {
    if (!this.cron) return undefined;
    return this.seasonAt(new Date(season.startsAt.getTime() - 1));
  }

  /**
   * The season with this id, if the schedule has one that starts then (a
   * season of an earlier schedule of the board is not one of this schedule:
   * see readableSeason).
   */
  seasonById(id: string): SeasonWindow | undefined {
    if (!this.cron) return id === ALL_TIME_SEASON ? this.seasonAt(new Date(0)) : undefined;
    const startsAt = seasonStartOf(id);
    if (!startsAt) return undefined;
    const season = this.seasonAt(startsAt);
    return season.id === id ? season : undefined;
  }

  /** The current season and up to `retained` before it, newest first. */
  recent(now: Date, retained: number): SeasonWindow[] {
    const seasons = [this.seasonAt(now)];
    for (let i = 0; i < retained; i++) {
      const before = this.previous(seasons.at(-1)!);
      if (!before) break;
      seasons.push(before);
    }
    return seasons;
  }

  /**
   * The current season and up to `retained` before it, newest first, each
   * with when it stops being readable (as expiresAt() says), in one walk:
   * season i expires when season i - retained ends, so only the `retained`
   * seasons after the current one are computed besides the list.
   */
  readable(now: Date, retained: number): Array<SeasonWindow & { expiresAt?: Date }> {
    const seasons = this.recent(now, retained);
    if (!this.cron) return seasons.map((season) => ({ ...season }));
    // ends[k]: the end of the season k after the current one (k = 0: the current one's).
    const ends = [seasons[0]!.endsAt!];
    for (let k = 1; k <= retained; k++) ends.push(this.seasonAt(ends[k - 1]!).endsAt!);
    return seasons.map((season, i) => ({ ...season, expiresAt: i >= retained ? seasons[i - retained]!.endsAt : ends[retained - i] }));
  }

  /**
   * When a season stops being readable: once `retained` more seasons have
   * ended after it. Undefined for a board that never resets.
   */
  expiresAt(season: SeasonWindow, retained: number): Date | undefined {
    if (!this.cron || !season.endsAt) return undefined;
    let end = season.endsAt;
    for (let i = 0; i < retained; i++) {
      end = CronExpressionParser.parse(this.cron, { tz: this.timeZone, currentDate: end }).next().toDate();
    }
    return end;
  }
}
