import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { LeaderboardEntrySchema, StandingSchema, type StreamPosition } from "@scoreboard/gen/scoreboard/v1/leaderboard_pb";
import { type LeaderboardUpdate, LeaderboardUpdateSchema } from "@scoreboard/gen/scoreboard/v1/push_pb";
import { mintToken, TokenVerifier } from "@scoreboard/platform/auth";
import type { AuthConfig } from "@scoreboard/platform/config";
import { positionOf } from "@scoreboard/platform/stream-position";
import { ReadGate } from "../rest/leaderboard-reads.js";
import type { WriteGuard } from "../write-guard.js";
import type { LeaderboardFeeds } from "./leaderboard-feed.js";
import type { LiveDeps } from "./live.js";
import type { StandingState, StandingWatchers } from "./standings.js";
import { StreamQuota } from "./stream-quota.js";
import type { StreamableBoards } from "./streamable-boards.js";

// Fakes for the live streams' unit tests (SSE, WebSocket): feeds and
// standings that the test publishes into, and LiveDeps around them with a
// real token verifier. Not used outside tests.

const auth: AuthConfig = { jwtSecret: "live-streams-test-secret-0123456789abcdef", issuer: "scoreboard", audience: "scoreboard-api" };

/** A token for `userId`, as "Bearer <jwt>". */
export async function bearerFor(userId: string): Promise<string> {
  return `Bearer ${await mintToken(auth, userId)}`;
}

interface FeedSubscription {
  board: string;
  limit: number;
  resume: StreamPosition | undefined;
  listener: (update: LeaderboardUpdate) => void;
}

/** LeaderboardFeeds whose updates the test publishes. */
export class FakeFeeds {
  readonly subscriptions: FeedSubscription[] = [];

  subscribe(board: string, limit: number, listener: (update: LeaderboardUpdate) => void, resume?: StreamPosition): () => void {
    const subscription = { board, limit, resume, listener };
    this.subscriptions.push(subscription);
    return () => this.subscriptions.splice(this.subscriptions.indexOf(subscription) >>> 0, 1);
  }

  publish(board: string, update: LeaderboardUpdate): void {
    for (const s of this.subscriptions.filter((s) => s.board === board)) s.listener(update);
  }
}

interface StandingSubscription {
  board: string;
  userId: string;
  around: number;
  resume: StreamPosition | undefined;
  listener: (state: StandingState) => void;
}

/** StandingWatchers whose states the test publishes. */
export class FakeStandings {
  readonly subscriptions: StandingSubscription[] = [];

  subscribe(board: string, userId: string, around: number, listener: (state: StandingState) => void, resume?: StreamPosition): () => void {
    const subscription = { board, userId, around, resume, listener };
    this.subscriptions.push(subscription);
    return () => this.subscriptions.splice(this.subscriptions.indexOf(subscription) >>> 0, 1);
  }

  publish(board: string, userId: string, state: StandingState): void {
    for (const s of this.subscriptions.filter((s) => s.board === board && s.userId === userId)) s.listener(state);
  }
}

export const AS_OF = new Date("2026-12-06T12:00:00Z");

function entry(rank: number, userId: string, score: number) {
  return create(LeaderboardEntrySchema, { rank: BigInt(rank), userId, username: userId, score: BigInt(score) });
}

/** A top whose entries are `scores` in rank order (users named by the keys), at `epoch`, `ms` after AS_OF. */
export function topUpdate(scores: Record<string, number>, ms: number, epoch = "0.all"): LeaderboardUpdate {
  const asOf = timestampFromDate(new Date(AS_OF.getTime() + ms));
  const position = positionOf(epoch, asOf);
  return create(LeaderboardUpdateSchema, { entries: Object.entries(scores).map(([userId, score], i) => entry(i + 1, userId, score)), asOf, position });
}

/** A standing: the user at `rank` with `score`, and the user just above, at `epoch`, `ms` after AS_OF. */
export function standingState(userId: string, rank: number, score: number, ms: number, epoch = "0.all"): StandingState {
  const asOf = timestampFromDate(new Date(AS_OF.getTime() + ms));
  const own = entry(rank, userId, score);
  return {
    standing: create(StandingSchema, { entry: own, neighbourhood: [entry(rank - 1, "above", score + 10), own] }),
    position: positionOf(epoch, asOf),
    asOf,
  };
}

/** LiveDeps around the fakes: reads public, standings need a token of `auth`, every board known, quota `maxStreams` (0: none). */
export function fakeLiveDeps(maxStreams = 0, heartbeatMs = 60_000): { deps: LiveDeps; feeds: FakeFeeds; standings: FakeStandings } {
  const feeds = new FakeFeeds();
  const standings = new FakeStandings();
  const verifier = new TokenVerifier(auth);
  const deps: LiveDeps = {
    feeds: feeds as unknown as LeaderboardFeeds,
    standings: standings as unknown as StandingWatchers,
    readGate: new ReadGate({ requireScope: false, verifier }),
    verifier,
    guard: {
      clientAddress: () => "203.0.113.7",
      throttlingRefusedTokens: (_address: string, check: () => Promise<unknown>) => check(),
    } as unknown as WriteGuard,
    boards: { resolve: async (board: string) => board || "global" } as unknown as StreamableBoards,
    streamQuota: new StreamQuota(maxStreams),
    heartbeatMs,
  };
  return { deps, feeds, standings };
}
