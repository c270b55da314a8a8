import type { Redis } from "ioredis";
import { parsePeriodBoard } from "@scoreboard/platform/periods";
import { ALL_TIME_SEASON, seasonIdOf } from "@scoreboard/platform/seasons";
import { epochOf } from "@scoreboard/platform/stream-position";
import { REBUILT_MARKER } from "./rebuild.js";

/** A board's epoch (StreamPosition.epoch) by name: what reads and announcements stamp. */
export interface EpochSource {
  epochOf(board: string): Promise<string>;
}

/** What a defined board's name shows now: its current season's id; undefined for seed boards. */
export interface ShownSeasons {
  currentSeasonOf(name: string): Promise<string | undefined>;
}

/** For a process that names seed boards only (the reconcile job): no name is a defined board. */
export const NO_DEFINED_BOARDS: ShownSeasons = { currentSeasonOf: async () => undefined };

/** How long a generation read from Redis is used before it is read again. */
const GENERATION_MAX_AGE_MS = 1_000;

/**
 * Epochs as platform/stream-position.ts spells them: the read model's
 * generation (when its last complete rebuild ended: REBUILT_MARKER, 0 while
 * Redis has none) and the segment the board shows (the period's or current
 * season's start, "all" for global and region boards).
 *
 * Every read and announcement asks for an epoch, so the generation is read
 * at most once a second (a rebuild on another replica shows within that),
 * forgotten at once when this process rebuilt, and kept as last read while
 * Redis is away: reads then answer from PostgreSQL, the same standings.
 */
export class BoardEpochs implements EpochSource {
  private generation = 0;
  private readAtMs = Number.NEGATIVE_INFINITY;
  private reading: Promise<number> | undefined;
  /** Counts forget(): a GET sent before the latest one may have read the marker before that rebuild set it. */
  private forgotten = 0;

  constructor(
    private readonly redis: Pick<Redis, "get" | "status"> | undefined,
    private readonly seasons: ShownSeasons,
    private readonly clockMs: () => number = Date.now,
  ) {}

  async epochOf(board: string): Promise<string> {
    const [generation, segment] = await Promise.all([this.currentGeneration(), this.segmentOf(board)]);
    return epochOf(generation, segment);
  }

  /** This process rebuilt the boards: the next epoch reads the new generation. */
  forget(): void {
    this.readAtMs = Number.NEGATIVE_INFINITY;
    this.reading = undefined;
    this.forgotten += 1;
  }

  private async segmentOf(board: string): Promise<string> {
    const period = parsePeriodBoard(board);
    if (period) return seasonIdOf(new Date(period.startMs));
    return (await this.seasons.currentSeasonOf(board)) ?? ALL_TIME_SEASON;
  }

  private currentGeneration(): Promise<number> {
    if (this.redis?.status !== "ready") return Promise.resolve(this.generation);
    if (this.clockMs() - this.readAtMs < GENERATION_MAX_AGE_MS) return Promise.resolve(this.generation);
    // Concurrent reads share one GET.
    if (this.reading) return this.reading;
    const reading = this.readGeneration(this.redis).finally(() => {
      if (this.reading === reading) this.reading = undefined;
    });
    this.reading = reading;
    return reading;
  }

  private async readGeneration(redis: Pick<Redis, "get">): Promise<number> {
    const startedMs = this.clockMs();
    const forgotten = this.forgotten;
    try {
      const marker = await redis.get(REBUILT_MARKER);
      const ms = marker === null ? 0 : Date.parse(marker);
      if (forgotten === this.forgotten) {
        this.generation = Number.isFinite(ms) ? ms : 0;
        this.readAtMs = startedMs;
      }
    } catch {
      // Redis went away mid-read: the last generation stands (see the class comment).
    }
    return this.generation;
  }
}
