import { create } from "@bufbuild/protobuf";
import type { HandlerContext } from "@connectrpc/connect";
import type { StreamPosition } from "@scoreboard/gen/scoreboard/v1/leaderboard_pb";
import { LeaderboardUpdateSchema, type LeaderboardUpdate, type WatchLeaderboardRequest } from "@scoreboard/gen/scoreboard/v1/push_pb";
import { pageLimit } from "@scoreboard/platform/board-params";
import type { OpenCount } from "@scoreboard/platform/metrics";
import type { ReadGate } from "../rest/leaderboard-reads.js";
import { asRpcError, type WriteGuard } from "../write-guard.js";
import { type Body, LatestOnlyWriter } from "./latest-only.js";
import { MessageSlot } from "./message-slot.js";
import type { LeaderboardFeeds } from "./leaderboard-feed.js";
import { clientAddressKey, type StreamQuota } from "./stream-quota.js";
import type { StreamableBoards } from "./streamable-boards.js";
import { streamToken } from "./stream-token.js";

/** What WatchLeaderboard needs, whichever way it is served. */
export interface WatchLeaderboardDeps {
  feeds: LeaderboardFeeds;
  readGate: ReadGate;
  /** Counts refused tokens against their address, as on every other path. */
  guard: WriteGuard;
  /** Seed boards and defined boards' ids. */
  boards: StreamableBoards;
  streamQuota: StreamQuota;
  heartbeatMs: number;
  /** Counts the WatchLeaderboard streams (Connect, gRPC-Web, gRPC) open right now. */
  openStreams?: OpenCount;
}

/** A stream WatchLeaderboard admitted: its board and limit, where it resumes, and its place in the address's quota. */
export interface AdmittedWatch {
  board: string;
  limit: number;
  resume: StreamPosition | undefined;
  release: () => void;
}

/**
 * WatchLeaderboard's admission, the same on the Connect fast path and
 * through connect-node: the token before the request (an unauthorized caller
 * gets nothing read), then the board and limit it names, then a stream of
 * the address's quota. Refusals are ConnectErrors.
 */
export async function admitWatch(
  deps: WatchLeaderboardDeps,
  address: string,
  authorization: string | undefined,
  readRequest: () => Promise<WatchLeaderboardRequest>,
): Promise<AdmittedWatch> {
  try {
    await deps.guard.throttlingRefusedTokens(address, () => deps.readGate.check(authorization));
    const request = await readRequest();
    const board = await deps.boards.resolve(request.board);
    const limit = pageLimit(request.limit);
    return { board, limit, resume: request.resume?.epoch ? request.resume : undefined, release: deps.streamQuota.take(address) };
  } catch (err) {
    throw asRpcError(err);
  }
}

/**
 * WatchLeaderboard's stream, the same on every protocol: the board's shared
 * feed written through one LatestOnlyWriter with the heartbeat, each message
 * (an update, or a heartbeat: undefined) numbered with this stream's next
 * sequence, from 1. `frame` renders one for the body. Returns how to stop it.
 */
export function streamWatch<C>(
  deps: WatchLeaderboardDeps,
  watch: AdmittedWatch,
  body: Body<C> & { stream?: Body<C> },
  frame: (update: LeaderboardUpdate | undefined, sequence: number) => C,
): () => void {
  deps.openStreams?.inc();
  let sequence = 0;
  const writer = new LatestOnlyWriter<LeaderboardUpdate | undefined, C>(body, (update) => frame(update, ++sequence), {
    heartbeat: { intervalMs: deps.heartbeatMs, value: undefined },
  });
  const unsubscribe = deps.feeds.subscribe(watch.board, watch.limit, (update) => writer.send(update), watch.resume);
  // A resume that held the state back (the client is current): a heartbeat at
  // once, so the client knows the stream is live without waiting for a change.
  if (writer.silent && watch.resume) writer.send(undefined);
  return () => {
    unsubscribe();
    writer.stop();
    deps.openStreams?.dec();
    watch.release();
  };
}

/**
 * WatchLeaderboard through connect-node (plain gRPC, gRPC-Web text,
 * compressed requests: what the fast path leaves to it), as a generator
 * connect-node pulls from.
 */
export async function* watchLeaderboardMessages(
  deps: WatchLeaderboardDeps,
  request: WatchLeaderboardRequest,
  ctx: HandlerContext,
): AsyncGenerator<LeaderboardUpdate> {
  const watch = await admitWatch(deps, ctx.values.get(clientAddressKey), streamToken({ headers: ctx.requestHeader, url: ctx.url }), async () => request);
  const slot = new MessageSlot<LeaderboardUpdate>();
  const stop = streamWatch(deps, watch, slot, (update, sequence) =>
    update
      ? create(LeaderboardUpdateSchema, { entries: update.entries, asOf: update.asOf, position: update.position, sequence: BigInt(sequence) })
      : create(LeaderboardUpdateSchema, { heartbeat: true, sequence: BigInt(sequence) }),
  );
  yield* slot.messages(ctx.signal, stop);
}
