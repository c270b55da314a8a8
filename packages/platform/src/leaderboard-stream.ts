import { create } from "@bufbuild/protobuf";
import type { Timestamp } from "@bufbuild/protobuf/wkt";
import type { LeaderboardEntry, StreamPosition } from "@scoreboard/gen/scoreboard/v1/leaderboard_pb";
import { LeaderboardUpdateSchema, type LeaderboardUpdate } from "@scoreboard/gen/scoreboard/v1/push_pb";

export interface LatestStateStreamOptions<S> {
  /** Starts listening; the listener may be called at once. Returns the way to stop. */
  subscribe: (onChange: (state: S) => void) => (() => void) | Promise<() => void>;
  /** The stream's own signal (client gone or server shutting down). */
  signal: AbortSignal;
  /** A stream silent this long gets a heartbeat message. */
  heartbeatMs: number;
  /** What to send for a state, or undefined when it changes nothing for this client. */
  render: (state: S) => { entries: LeaderboardEntry[]; asOf?: Timestamp; position?: StreamPosition } | undefined;
}

/**
 * A WatchLeaderboard stream that only ever holds the newest state: a client
 * slower than the changes skips intermediate ones instead of queueing them,
 * so its memory on the server stays one state. Sequence numbers count per
 * stream; heartbeats keep idle proxies from closing it.
 */
export async function* latestStateStream<S>(options: LatestStateStreamOptions<S>): AsyncGenerator<LeaderboardUpdate> {
  const { signal } = options;
  let latest: { state: S } | undefined;
  let wake: (() => void) | undefined;
  const stop = await options.subscribe((state) => {
    latest = { state };
    wake?.();
  });
  const onAbort = () => wake?.();
  signal.addEventListener("abort", onAbort);
  try {
    let sequence = 0n;
    while (!signal.aborted) {
      if (latest) {
        const message = options.render(latest.state);
        latest = undefined;
        if (message) {
          sequence += 1n;
          yield create(LeaderboardUpdateSchema, { entries: message.entries, asOf: message.asOf, position: message.position, sequence });
        }
        continue; // the state may have moved on while we were writing
      }
      const woken = await new Promise<boolean>((resolve) => {
        const timer = setTimeout(() => resolve(false), options.heartbeatMs);
        wake = () => {
          clearTimeout(timer);
          resolve(true);
        };
      });
      wake = undefined;
      if (!woken && !signal.aborted) {
        sequence += 1n;
        yield create(LeaderboardUpdateSchema, { heartbeat: true, sequence });
      }
    }
  } finally {
    signal.removeEventListener("abort", onAbort);
    stop();
  }
}
