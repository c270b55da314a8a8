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
const ALL_TIME_WINDOW: SeasonWindow = Object.freeze({ id: ALL_TIME_SEASON, startsAt: new Date(0) });

/** Seasons (and expiries) a schedule remembers; past this it starts over. */
const SEASONS_KEPT = 4_096;

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
  // Seasons computed so far, by first instant and by end: a cron step costs
  // about a millisecond (cron-parser in a time zone), and every submission,
  // read and event asks for the same few seasons again.
  private readonly byStart = new Map<number, SeasonWindow>();
  private readonly byEnd = new Map<number, SeasonWindow>();
  private readonly expiries = new Map<string, Date | undefined>();
  private readonly readables = new Map<string, Array<SeasonWindow & { expiresAt?: Date }>>();
  private latest: SeasonWindow | undefined;

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

  /** The season `at` falls into (a shared, frozen window: copy it to change it). */
  seasonAt(at: Date): SeasonWindow {
    if (!this.cron) return ALL_TIME_WINDOW;
    const ms = at.getTime();
    const latest = this.latest;
    if (latest && ms >= latest.startsAt.getTime() && ms < latest.endsAt!.getTime()) return latest;
    const season = this.byStart.get(ms) ?? this.computeSeasonAt(at);
    this.latest = season;
    return season;
  }

  private computeSeasonAt(at: Date): SeasonWindow {
    // prev() answers the last run strictly before currentDate: one ms later
    // makes a run at exactly `at` the season's start.
    const runs = CronExpressionParser.parse(this.cron!, { tz: this.timeZone, currentDate: new Date(at.getTime() + 1) });
    const startsAt = runs.prev().toDate();
    const known = this.byStart.get(startsAt.getTime());
    if (known) return known;
    return this.remember(startsAt, this.runsAfter(startsAt, 1)[0]!);
  }

  /** The season before `season`, or undefined for a board that never resets. */
  previous(season: SeasonWindow): SeasonWindow | undefined {
    if (!this.cron) return undefined;
    return this.byEnd.get(season.startsAt.getTime()) ?? this.seasonAt(new Date(season.startsAt.getTime() - 1));
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
    if (!this.cron || retained === 0) return seasons;
    // One walk back over the runs: each season ends where the next begins.
    const runs = CronExpressionParser.parse(this.cron, { tz: this.timeZone, currentDate: seasons[0]!.startsAt });
    for (let i = 0; i < retained; i++) {
      const endsAt = seasons.at(-1)!.startsAt;
      const known = this.byEnd.get(endsAt.getTime());
      seasons.push(known ?? this.remember(runs.prev().toDate(), endsAt));
      if (known) runs.reset(known.startsAt);
    }
    return seasons;
  }

  /** The runs after `from`, `count` of them, in one walk. */
  private runsAfter(from: Date, count: number): Date[] {
    const runs = CronExpressionParser.parse(this.cron!, { tz: this.timeZone, currentDate: from });
    return Array.from({ length: count }, () => runs.next().toDate());
  }

  private remember(startsAt: Date, endsAt: Date): SeasonWindow {
    const season = Object.freeze({ id: seasonIdOf(startsAt), startsAt, endsAt });
    if (this.byStart.size >= SEASONS_KEPT) {
      this.byStart.clear();
      this.byEnd.clear();
    }
    this.byStart.set(startsAt.getTime(), season);
    this.byEnd.set(endsAt.getTime(), season);
    return season;
  }

  /**
   * The current season and up to `retained` before it, newest first, each
   * with when it stops being readable (as expiresAt() says), in one walk:
   * season i expires when season i - retained ends, so only the `retained`
   * seasons after the current one are computed besides the list.
   */
  readable(now: Date, retained: number): Array<SeasonWindow & { expiresAt?: Date }> {
    const key = `${this.seasonAt(now).id}/${retained}`;
    const known = this.readables.get(key);
    if (known) return known.map((season) => ({ ...season }));
    const seasons = this.recent(now, retained);
    if (!this.cron) return seasons.map((season) => ({ ...season }));
    // ends[k]: the end of the season k after the current one (k = 0: the current one's).
    const ends = [seasons[0]!.endsAt!, ...this.runsAfter(seasons[0]!.endsAt!, retained)];
    const readable = seasons.map((season, i) => ({ ...season, expiresAt: i >= retained ? seasons[i - retained]!.endsAt : ends[retained - i] }));
    if (this.readables.size >= 64) this.readables.clear();
    this.readables.set(key, readable);
    return readable.map((season) => ({ ...season }));
  }

  /**
   * When a season stops being readable: once `retained` more seasons have
   * ended after it. Undefined for a board that never resets.
   */
  expiresAt(season: SeasonWindow, retained: number): Date | undefined {
    if (!this.cron || !season.endsAt) return undefined;
    const key = `${season.id}/${retained}`;
    if (this.expiries.has(key)) return this.expiries.get(key);
    const end = retained === 0 ? season.endsAt : this.runsAfter(season.endsAt, retained).at(-1)!;
    if (this.expiries.size >= SEASONS_KEPT) this.expiries.clear();
    this.expiries.set(key, end);
    return end;
  }
}

const schedules = new Map<string, SeasonSchedule>();

/**
 * The schedule of a board, shared by every caller that names the same
 * schedule and zone, so the seasons it computed are computed once per
 * process. Throws ScheduleError as the constructor does (nothing is kept).
 */
export function seasonSchedule(schedule: string, timeZone = "UTC"): SeasonSchedule {
  const key = `${schedule}\n${timeZone}`;
  let found = schedules.get(key);
  if (!found) {
    found = new SeasonSchedule(schedule, timeZone);
    if (schedules.size >= 1_000) schedules.clear();
    schedules.set(key, found);
  }
  return found;
}
