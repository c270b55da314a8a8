import { Code, ConnectError } from "@connectrpc/connect";
import type { Timestamp } from "@bufbuild/protobuf/wkt";
import type { LeaderboardEntry, Standing, StreamPosition } from "@scoreboard/gen/scoreboard/v1/leaderboard_pb";
import type { WatchRequest, WatchStandingRequest } from "@scoreboard/gen/scoreboard/v1/live_pb";
import type { TokenVerifier } from "@scoreboard/platform/auth";
import { boardName, pageLimit } from "@scoreboard/platform/board-params";
import type { OpenCount } from "@scoreboard/platform/metrics";
import type { ReadGate } from "../rest/leaderboard-reads.js";
import { asRpcError, type WriteGuard } from "../write-guard.js";
import { type Body, LatestOnlyWriter } from "./latest-only.js";
import type { LeaderboardFeeds } from "./leaderboard-feed.js";
import type { StandingWatchers } from "./standings.js";
import type { StreamQuota } from "./stream-quota.js";
import type { StreamableBoards } from "./streamable-boards.js";

// Live streams (LiveService.Watch and WatchStanding, and their SSE and
// WebSocket dialects): several subscriptions, boards' tops and the caller's
// standings, on one stream. What every protocol shares lives here: what a
// subscription is, admission, and one writer per stream that keeps the
// latest state of each subscription while the client is slow.

export const MAX_SUBSCRIPTIONS = 10;
export const MAX_AROUND = 10;
const SUBSCRIPTION_ID = /^[A-Za-z0-9_.:-]{1,80}$/;

/** What a subscription watches: a board's top N, or the caller's standing with `around` neighbours. */
export type LiveTarget = { kind: "top"; limit: number } | { kind: "standing"; around: number };

/** One subscription as asked for (validated), before its board is resolved. */
export interface LiveSubscription {
  id: string;
  /** The board as the client named it (validated), which every message repeats. */
  board: string;
  target: LiveTarget;
  resume: StreamPosition | undefined;
}

/** A message of a live stream: one subscription's new state. */
export interface LiveMessage {
  subscription: LiveSubscription;
  position: StreamPosition;
  asOf: Timestamp | undefined;
  /** A top subscription's entries. */
  top?: LeaderboardEntry[];
  /** A standing subscription's state. */
  standing?: Standing;
}

export interface LiveDeps {
  feeds: LeaderboardFeeds;
  standings: StandingWatchers;
  readGate: ReadGate;
  /** Standings need to know who the caller is. */
  verifier: TokenVerifier;
  /** Counts refused tokens against their address, as on every other path. */
  guard: WriteGuard;
  boards: StreamableBoards;
  streamQuota: StreamQuota;
  heartbeatMs: number;
  /** Counts the live streams open right now (per protocol, as the caller wires it). */
  openStreams?: OpenCount;
}

/** A live stream admitted: its subscriptions with boards resolved, the caller, its place in the quota. */
export interface AdmittedLive {
  subscriptions: { subscription: LiveSubscription; board: string }[];
  userId: string | undefined;
  release: () => void;
}

/** A subscription from its parts, validated; INVALID_ARGUMENT says what is wrong. */
export function liveSubscription(id: string, board: string, target: LiveTarget, resume: StreamPosition | undefined): LiveSubscription {
  const name = boardName(board);
  const checked: LiveTarget = target.kind === "top" ? { kind: "top", limit: pageLimit(target.limit) } : { kind: "standing", around: aroundOf(target.around) };
  const named = id || `${target.kind}:${name}`;
  if (!SUBSCRIPTION_ID.test(named)) throw new ConnectError("subscription id must be 1..80 of A-Z, a-z, 0-9, '_', '.', ':' or '-'", Code.InvalidArgument);
  return { id: named, board: name, target: checked, resume: resume?.epoch ? resume : undefined };
}

function aroundOf(around: number): number {
  if (!Number.isInteger(around) || around < 0 || around > MAX_AROUND) throw new ConnectError(`around must be 0..${MAX_AROUND}`, Code.InvalidArgument);
  return around;
}

/** LiveService.Watch's subscriptions, validated: 1..10, ids unique. */
export function subscriptionsOfWatch(request: WatchRequest): LiveSubscription[] {
  const subscriptions = request.subscriptions.map((s, i) => {
    switch (s.target.case) {
      case "top":
        return liveSubscription(s.id, s.target.value.board, { kind: "top", limit: s.target.value.limit }, s.resume);
      case "standing":
        return liveSubscription(s.id, s.target.value.board, { kind: "standing", around: s.target.value.around }, s.resume);
      default:
        throw new ConnectError(`subscriptions[${i}] names no target: set top or standing`, Code.InvalidArgument);
    }
  });
  return checkSet(subscriptions);
}

/** LiveService.WatchStanding's one subscription. */
export function subscriptionsOfWatchStanding(request: WatchStandingRequest): LiveSubscription[] {
  return [liveSubscription("", request.board, { kind: "standing", around: request.around }, request.resume)];
}

/** 1..MAX_SUBSCRIPTIONS subscriptions with distinct ids. */
export function checkSet(subscriptions: LiveSubscription[]): LiveSubscription[] {
  if (subscriptions.length === 0) throw new ConnectError("name at least one subscription", Code.InvalidArgument);
  if (subscriptions.length > MAX_SUBSCRIPTIONS) throw new ConnectError(`at most ${MAX_SUBSCRIPTIONS} subscriptions per stream`, Code.InvalidArgument);
  const ids = new Set<string>();
  for (const s of subscriptions) {
    if (ids.has(s.id)) throw new ConnectError(`subscription id "${s.id}" is used twice: give each its own id`, Code.InvalidArgument);
    ids.add(s.id);
  }
  return subscriptions;
}

/**
 * A live stream's admission, the same on every protocol: the token (the read
 * gate; for standings also who the caller is: a token is required), then the
 * subscriptions `readRequest` gives, their boards, then a stream of the
 * address's quota. Refusals are ConnectErrors.
 */
export async function admitLive(
  deps: LiveDeps,
  address: string,
  authorization: string | undefined,
  readRequest: () => Promise<LiveSubscription[]>,
): Promise<AdmittedLive> {
  try {
    await deps.guard.throttlingRefusedTokens(address, () => deps.readGate.check(authorization));
    const subscriptions = await readRequest();
    let userId: string | undefined;
    if (subscriptions.some((s) => s.target.kind === "standing")) {
      const principal = await deps.guard.throttlingRefusedTokens(address, () => deps.verifier.authenticate(authorization));
      userId = principal.userId;
    }
    const resolved = await Promise.all(subscriptions.map(async (subscription) => ({ subscription, board: await deps.boards.resolve(subscription.board) })));
    return { subscriptions: resolved, userId, release: deps.streamQuota.take(address) };
  } catch (err) {
    throw asRpcError(err);
  }
}

/**
 * A live stream: every subscription's states written through one
 * LatestOnlyWriter (latest per subscription while the body is full) with the
 * heartbeat (undefined). `frame` renders a message for the body. With
 * `heartbeatWhenHeldBack` (RPCs: their streams have no opening message of
 * their own, unlike SSE's `connected` or a WebSocket's open), a resume that
 * held every state back (the client is current) gets a heartbeat at once, so
 * the client knows the stream is live without waiting for a change. Returns
 * how to stop it.
 */
export function streamLive<C>(
  deps: LiveDeps,
  live: AdmittedLive,
  body: Body<C> & { stream?: Body<C> },
  frame: (message: LiveMessage | undefined) => C,
  { heartbeatWhenHeldBack = false } = {},
): () => void {
  deps.openStreams?.inc();
  const writer = new LatestOnlyWriter<LiveMessage | undefined, C>(body, frame, {
    heartbeat: { intervalMs: deps.heartbeatMs, value: undefined },
    keyOf: (message) => message?.subscription.id ?? "",
  });
  const stops = live.subscriptions.map(({ subscription, board }) => {
    const { target, resume } = subscription;
    if (target.kind === "top") {
      return deps.feeds.subscribe(
        board,
        target.limit,
        (update) => {
          if (update.position) writer.send({ subscription, position: update.position, asOf: update.asOf, top: update.entries });
        },
        resume,
      );
    }
    return deps.standings.subscribe(
      board,
      live.userId!,
      target.around,
      (state) => writer.send({ subscription, position: state.position, asOf: state.asOf, standing: state.standing }),
      resume,
    );
  });
  if (heartbeatWhenHeldBack && writer.silent && live.subscriptions.some(({ subscription }) => subscription.resume)) writer.send(undefined);
  return () => {
    for (const stop of stops) stop();
    writer.stop();
    deps.openStreams?.dec();
    live.release();
  };
}
