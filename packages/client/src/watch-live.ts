import { create, type MessageInitShape } from "@bufbuild/protobuf";
import type { Client } from "@connectrpc/connect";
import type { Standing, StreamPosition } from "@scoreboard/gen/scoreboard/v1/leaderboard_pb";
import { type LiveService, type LiveUpdate, type Subscription, SubscriptionSchema } from "@scoreboard/gen/scoreboard/v1/live_pb";
import { keepWatching, type ReconnectOptions, type StreamState } from "./reconnect.js";

/** A subscription as watchLive takes it: a Subscription or its init shape (see topSubscription, standingSubscription). */
export type LiveSubscriptionInit = MessageInitShape<typeof SubscriptionSchema>;

/** A board's top `limit` (1..100, default 10); `id` defaults to "top:<board>". */
export function topSubscription(board = "global", limit = 10, id = ""): LiveSubscriptionInit {
  return { id, target: { case: "top", value: { board, limit } } };
}

/** The caller's standing on a board with `around` (0..10) neighbours above and below; `id` defaults to "standing:<board>". */
export function standingSubscription(board = "global", around = 0, id = ""): LiveSubscriptionInit {
  return { id, target: { case: "standing", value: { board, around } } };
}

export interface LiveHandlers {
  /**
   * Every new state of a subscription (heartbeats are not passed on):
   * `update.subscription` says which, `update.state` is `{ case: "top",
   * value: { entries } }` or `{ case: "standing", value: { entry,
   * neighbourhood } }`, `update.position` is what a reconnect resumes from.
   */
  onUpdate: (update: LiveUpdate) => void;
  onState?: (state: StreamState) => void;
}

/** How watchLive reconnects and stops: signal, backoff, idleTimeoutMs, headers (a token, for standings). */
export type WatchLiveOptions = Omit<ReconnectOptions, "onState">;

/**
 * Watches 1..10 subscriptions (boards' tops, the caller's standings) on one
 * LiveService.Watch stream until `options.signal` aborts, reconnecting like
 * watchBoard. Each subscription resumes from the last position received for
 * it (or the `resume` it was given): one still current sends nothing after a
 * reconnect, one that moved sends its latest state. A subscription without
 * an id is given "top:<board>" or "standing:<board>", the id the server
 * would give it. To change the set, start a new watch with each kept
 * subscription's last `update.position` as its `resume`, then stop the old one.
 */
export function watchLive(
  live: Client<typeof LiveService>,
  subscriptions: readonly LiveSubscriptionInit[],
  handlers: LiveHandlers,
  options: WatchLiveOptions = {},
): Promise<void> {
  const watched = subscriptions.map((init) => named(create(SubscriptionSchema, init)));
  const positions = new Map<string, StreamPosition | undefined>(watched.map((s) => [s.id, s.resume?.epoch ? s.resume : undefined]));
  return keepWatching(
    ({ signal, headers }) =>
      live.watch({ subscriptions: watched.map((s) => ({ id: s.id, target: s.target, resume: positions.get(s.id) })) }, { signal, headers }),
    (update) => {
      if (update.heartbeat) return;
      // A position without an epoch (a server not tracking positions) cannot be compared: that subscription resumes from scratch.
      positions.set(update.subscription, update.position?.epoch ? update.position : undefined);
      handlers.onUpdate(update);
    },
    { ...options, onState: handlers.onState },
  );
}

/** The subscription with its id filled in (a copy: the caller's message stays as it was). */
function named({ id, target, resume }: Subscription): Pick<Subscription, "id" | "target" | "resume"> {
  return { id: id || (target.case ? `${target.case}:${target.value.board || "global"}` : ""), target, resume };
}

export interface WatchStandingOptions extends ReconnectOptions {
  /** The board (default "global"); a defined board's id follows its current season. */
  board?: string;
  /** Neighbours above and below to send as well, 0..10 (default 0). */
  around?: number;
  /**
   * The caller's standing whenever it (or a neighbour asked for) changes:
   * `standing.entry` is unset while the caller has no score on the board.
   * `update.position` is what a reconnect resumes from.
   */
  onStanding: (standing: Standing, update: LiveUpdate) => void;
  /** The position of the standing already on screen: not sent again while current. */
  resume?: StreamPosition;
}

/**
 * Watches the caller's own standing on one board over
 * LiveService.WatchStanding (the user is the token's subject: pass a token in
 * `headers` or with an interceptor), reconnecting and resuming like
 * watchBoard. Rejects with UNAUTHENTICATED without a valid token.
 */
export function watchStanding(live: Client<typeof LiveService>, options: WatchStandingOptions): Promise<void> {
  const board = options.board ?? "global";
  const around = options.around ?? 0;
  let resume = options.resume;
  return keepWatching(
    ({ signal, headers }) => live.watchStanding({ board, around, resume }, { signal, headers }),
    (update) => {
      if (update.heartbeat || update.state.case !== "standing") return;
      resume = update.position?.epoch ? update.position : undefined;
      options.onStanding(update.state.value, update);
    },
    options,
  );
}
