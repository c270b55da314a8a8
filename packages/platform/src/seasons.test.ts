import { describe, expect, it } from "vitest";
import { ALL_TIME_SEASON, ScheduleError, SeasonSchedule, seasonIdOf, seasonSchedule, seasonStartOf } from "./seasons.js";

const at = (iso: string) => new Date(iso);

describe("SeasonSchedule", () => {
  it("keys a board that never resets by one season, all", () => {
    const none = new SeasonSchedule("none");
    expect(none.seasonAt(at("2026-12-06T12:00:00Z"))).toEqual({ id: ALL_TIME_SEASON, startsAt: new Date(0) });
    expect(none.recent(at("2026-12-06T12:00:00Z"), 5).map((s) => s.id)).toEqual([ALL_TIME_SEASON]);
    expect(none.seasonById("all")?.id).toBe("all");
    expect(none.seasonById("20261206T0000Z")).toBeUndefined();
  });

  it("begins daily, weekly (Mondays) and monthly seasons at midnight in the board's zone", () => {
    const now = at("2026-12-06T12:00:00Z"); // a Sunday
    expect(new SeasonSchedule("daily").seasonAt(now)).toEqual({
      id: "20261206T0000Z",
      startsAt: at("2026-12-06T00:00:00Z"),
      endsAt: at("2026-12-07T00:00:00Z"),
    });
    expect(new SeasonSchedule("weekly").seasonAt(now).id).toBe("20261130T0000Z");
    expect(new SeasonSchedule("monthly").seasonAt(now).id).toBe("20261201T0000Z");
    // Midnight in Tokyo is 15:00 UTC the day before.
    expect(new SeasonSchedule("daily", "Asia/Tokyo").seasonAt(now).id).toBe("20261205T1500Z");
  });

  it("puts a moment exactly at a run into the season that run begins", () => {
    const daily = new SeasonSchedule("daily");
    expect(daily.seasonAt(at("2026-12-07T00:00:00Z")).id).toBe("20261207T0000Z");
    expect(daily.seasonAt(at("2026-12-06T23:59:59.999Z")).id).toBe("20261206T0000Z");
  });

  it("runs a cron schedule in its time zone", () => {
    // Sundays 20:00 in Paris (UTC+1 in December).
    const event = new SeasonSchedule("0 20 * * SUN", "Europe/Paris");
    const season = event.seasonAt(at("2026-12-06T18:59:00Z"));
    expect(season).toEqual({ id: "20261129T1900Z", startsAt: at("2026-11-29T19:00:00Z"), endsAt: at("2026-12-06T19:00:00Z") });
    expect(event.seasonAt(at("2026-12-06T19:00:00Z")).id).toBe("20261206T1900Z");
  });

  it("lists the current season and the retained ones, newest first, and knows when each expires", () => {
    const daily = new SeasonSchedule("daily");
    const recent = daily.recent(at("2026-12-06T12:00:00Z"), 2);
    expect(recent.map((s) => s.id)).toEqual(["20261206T0000Z", "20261205T0000Z", "20261204T0000Z"]);
    expect(daily.expiresAt(recent[2]!, 2)).toEqual(at("2026-12-07T00:00:00Z"));
  });

  it("gives each readable season the expiry expiresAt() computes, in one walk", () => {
    const event = new SeasonSchedule("0 20 * * SUN", "Europe/Paris");
    const now = at("2026-12-06T12:00:00Z");
    const readable = event.readable(now, 3);
    expect(readable.map((s) => s.id)).toEqual(event.recent(now, 3).map((s) => s.id));
    for (const season of readable) expect(season.expiresAt, season.id).toEqual(event.expiresAt(season, 3));
    expect(new SeasonSchedule("none").readable(now, 3)).toEqual([{ id: "all", startsAt: new Date(0) }]);
  });

  it("finds a season by id only where the schedule begins one", () => {
    const daily = new SeasonSchedule("daily");
    expect(daily.seasonById("20261205T0000Z")?.endsAt).toEqual(at("2026-12-06T00:00:00Z"));
    expect(daily.seasonById("20261205T1200Z")).toBeUndefined();
    expect(daily.seasonById("yesterday")).toBeUndefined();
  });

  it("refuses what is not a schedule or a zone, saying why", () => {
    expect(() => new SeasonSchedule("hourly")).toThrow(ScheduleError);
    expect(() => new SeasonSchedule("61 * * * *")).toThrow(/not a valid cron expression/);
    expect(() => new SeasonSchedule("0 0 * * * *")).toThrow(/five-field/);
    expect(() => new SeasonSchedule("daily", "Mars/Base")).toThrow(/IANA/);
  });
});

describe("season ids", () => {
  it("round-trip an instant to the minute, and refuse anything else", () => {
    expect(seasonIdOf(at("2026-12-06T19:00:00Z"))).toBe("20261206T1900Z");
    expect(seasonStartOf("20261206T1900Z")).toEqual(at("2026-12-06T19:00:00Z"));
    expect(seasonStartOf("20261332T0000Z")).toBeUndefined();
    expect(seasonStartOf("2026-12-06")).toBeUndefined();
  });
});

describe("seasonSchedule", () => {
  it("shares one schedule per schedule and zone, and keeps nothing it refused", () => {
    expect(seasonSchedule("daily", "Asia/Tokyo")).toBe(seasonSchedule("daily", "Asia/Tokyo"));
    expect(seasonSchedule("daily")).not.toBe(seasonSchedule("daily", "Asia/Tokyo"));
    expect(() => seasonSchedule("hourly")).toThrow(ScheduleError);
  });

  it("answers a season it computed before without a new cron walk, and the same season either way", () => {
    const event = seasonSchedule("0 20 * * SUN", "Europe/Paris");
    const now = at("2026-12-06T12:00:00Z");
    const first = event.seasonAt(now);
    expect(event.seasonAt(at("2026-12-01T00:00:00Z"))).toBe(first);
    expect(event.previous(event.seasonAt(at("2026-12-06T19:00:00Z")))).toBe(first);
    expect(event.expiresAt(first, 52)).toEqual(event.expiresAt({ ...first }, 52));
  });
});
