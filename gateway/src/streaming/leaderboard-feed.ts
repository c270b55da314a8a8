import { setTimeout as delay } from "node:timers/promises";
import { Code, ConnectError, type Client } from "@connectrpc/connect";
import type { StreamPosition } from "@scoreboard/gen/scoreboard/v1/leaderboard_pb";
import type { LeaderboardUpdate, PushService } from "@scoreboard/gen/scoreboard/v1/push_pb";
import type { Logger } from "@scoreboard/platform/logger";
import { afterResume } from "@scoreboard/platform/stream-position";
import { outsideAnyTrace } from "@scoreboard/platform/tracing";

type Listener = (update: LeaderboardUpdate) => void;

/** Listeners written per turn of the event loop (see Feed.deliver). */
const DELIVERY_SLICE = 1_000;

/**
 * How long a feed stays open after its last listener left: a client that
 * reconnects (a page reload, a network change) resumes against the same
 * history, so a current position gets nothing, and no upstream stream is
 * torn down and set up again for it.
 */
export const FEED_LINGER_MS = 30_000;

/**
 * One upstream WatchLeaderboard stream per (board, limit) for the whole
 * gateway, shared by every SSE, WebSocket and Connect client watching it.
 * The upstream reconnects with backoff when push goes away; listeners only
 * ever see the latest state, so a slow client cannot make anything queue.
 */
export class LeaderboardFeeds {
  private readonly feeds = new Map<string, Feed>();

  constructor(
    private readonly push: Client<typeof PushService>,
    private readonly logger: Logger,
    private readonly lingerMs = FEED_LINGER_MS,
  ) {}

  /**
   * Calls `listener` with the latest update at once (if any) and on every
   * change. With `resume` (the position a reconnecting client last got), only
   * updates newer than it are passed on: nothing while it is current, the
   * latest state otherwise. Returns unsubscribe.
   */
  subscribe(board: string, limit: number, listener: Listener, resume?: StreamPosition): () => void {
    const key = `${board}/${limit}`;
    let feed = this.feeds.get(key);
    if (!feed) {
      feed = new Feed(this.push, board, limit, this.logger, this.lingerMs, () => this.feeds.delete(key));
      this.feeds.set(key, feed);
    }
    return feed.add(resume ? afterResume(resume, listener) : listener);
  }

  /**
   * The latest top `limit` of a board while its upstream stream is live, for
   * answering reads without a round trip; undefined when there is none or
   * the stream is down (then callers ask ranking).
   */
  current(board: string, limit: number): LeaderboardUpdate | undefined {
    return this.feeds.get(`${board}/${limit}`)?.live;
  }

  get subscriberCount(): number {
    let count = 0;
    for (const feed of this.feeds.values()) count += feed.size;
    return count;
  }

  close(): void {
    for (const feed of this.feeds.values()) feed.close();
    this.feeds.clear();
  }
}

class Feed {
  private readonly listeners = new Set<Listener>();
  private readonly abort = new AbortController();
  private latest: LeaderboardUpdate | undefined;
  private streaming = false;
  private lingering: NodeJS.Timeout | undefined;

  constructor(
    private readonly push: Client<typeof PushService>,
    private readonly board: string,
    private readonly limit: number,
    private readonly logger: Logger,
    private readonly lingerMs: number,
    private readonly onIdle: () => void,
  ) {
    // Shared by every watcher: not part of the trace of the request that opened it.
    void outsideAnyTrace(() => this.run());
  }

  /** The latest update, only while the upstream stream is connected. */
  get live(): LeaderboardUpdate | undefined {
    return this.streaming ? this.latest : undefined;
  }

  get size(): number {
    return this.listeners.size;
  }

  add(listener: Listener): () => void {
    clearTimeout(this.lingering);
    this.lingering = undefined;
    this.listeners.add(listener);
    if (this.latest) listener(this.latest);
    return () => {
      if (!this.listeners.delete(listener) || this.listeners.size > 0) return;
      if (this.lingerMs <= 0) this.close();
      else this.lingering = setTimeout(() => this.close(), this.lingerMs).unref();
    };
  }

  close(): void {
    clearTimeout(this.lingering);
    if (this.abort.signal.aborted) return;
    this.abort.abort();
    this.onIdle();
  }

  /**
   * Hands an update to every listener, a slice at a time. Node sends what a
   * callback wrote only once it returns, so one loop over ten thousand
   * streams would hold every byte until the last stream was written; between
   * slices the first ones are already on the wire. The next update waits
   * until this one reached everybody (it is at most one per 100 ms per board).
   */
  private async deliver(update: LeaderboardUpdate): Promise<void> {
    if (this.listeners.size <= DELIVERY_SLICE) {
      for (const listener of this.listeners) listener(update);
      return;
    }
    const listeners = [...this.listeners];
    for (let i = 0; i < listeners.length; i++) {
      if (i > 0 && i % DELIVERY_SLICE === 0) await new Promise((resolve) => setImmediate(resolve));
      // One that left meanwhile is skipped; one that came meanwhile got `latest` when it came.
      if (this.listeners.has(listeners[i]!)) listeners[i]!(update);
    }
  }

  private async run(): Promise<void> {
    let failures = 0;
    while (!this.abort.signal.aborted) {
      try {
        for await (const update of this.push.watchLeaderboard({ board: this.board, limit: this.limit }, { signal: this.abort.signal })) {
          failures = 0;
          if (update.heartbeat) continue; // keep-alive from push, not a state
          this.latest = update;
          this.streaming = true;
          await this.deliver(update);
        }
        this.streaming = false; // ended (push shut down): reconnect below
      } catch (err) {
        this.streaming = false;
        if (this.abort.signal.aborted) return;
        const error = ConnectError.from(err);
        if (error.code !== Code.Unavailable && error.code !== Code.Canceled) {
          this.logger.warn({ err: error.message, board: this.board }, "leaderboard feed broke, reconnecting");
        }
      }
      failures += 1;
      await delay(Math.min(100 * 2 ** failures, 5_000), undefined, { signal: this.abort.signal }).catch(() => undefined);
    }
  }
}
