/**
 * The one heartbeat rule of the gateway's streams, at one interval
 * (STREAM_HEARTBEAT_MS): a stream that wrote nothing for a whole interval gets
 * a beat, so it is never silent longer than that and proxies keep it open.
 * What a beat is belongs to the stream: an SSE comment, a heartbeat
 * LeaderboardUpdate, a WebSocket ping (which also finds dead peers, so a
 * WebSocket never reports its writes and pings every interval).
 *
 * Every stream of one interval shares one clock ticking twice per interval;
 * a beat goes out on a stream's second tick without a write. Re-arming a
 * timeout per stream per change cost thousands of timer operations per change
 * in the fan-out loop, and a timer per stream held memory per stream.
 */
export class Heartbeat {
  private quietTicks = 0;
  private readonly clock: HeartbeatClock;

  constructor(
    intervalMs: number,
    private readonly beat: () => void,
  ) {
    this.clock = HeartbeatClock.of(intervalMs);
    this.clock.add(this);
  }

  /** Something went out: the stream is not quiet. */
  wrote(): void {
    this.quietTicks = 0;
  }

  stop(): void {
    this.clock.remove(this);
  }

  /** Half an interval passed. */
  tick(): void {
    this.quietTicks += 1;
    if (this.quietTicks < 2) return;
    // The next beat is a whole interval away, also when this one was not sent (a full socket).
    this.quietTicks = 0;
    this.beat();
  }
}

/** One timer for every heartbeat of an interval, running while it has any. */
class HeartbeatClock {
  private static readonly clocks = new Map<number, HeartbeatClock>();

  static of(intervalMs: number): HeartbeatClock {
    let clock = HeartbeatClock.clocks.get(intervalMs);
    if (!clock) {
      clock = new HeartbeatClock(intervalMs);
      HeartbeatClock.clocks.set(intervalMs, clock);
    }
    return clock;
  }

  private readonly members = new Set<Heartbeat>();
  private timer: NodeJS.Timeout | undefined;

  private constructor(private readonly intervalMs: number) {}

  add(heartbeat: Heartbeat): void {
    this.members.add(heartbeat);
    this.timer ??= setInterval(() => {
      for (const member of this.members) member.tick();
    }, this.intervalMs / 2);
  }

  remove(heartbeat: Heartbeat): void {
    if (!this.members.delete(heartbeat) || this.members.size > 0) return;
    clearInterval(this.timer);
    this.timer = undefined;
  }
}
