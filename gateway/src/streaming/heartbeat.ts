/**
 * The one heartbeat rule of the gateway's streams, at one interval
 * (STREAM_HEARTBEAT_MS): a stream that wrote nothing for a whole interval gets
 * a beat, so it is never silent longer than that and proxies keep it open.
 * What a beat is belongs to the stream: an SSE comment, a heartbeat
 * LeaderboardUpdate, a WebSocket ping (which also finds dead peers, so a
 * WebSocket never reports its writes and pings every interval).
 *
 * The timer ticks twice per interval and is never re-armed: a beat goes out
 * on the second tick without a write. Re-arming a timeout per stream per
 * change cost thousands of timer operations per change in the fan-out loop.
 */
export class Heartbeat {
  private quietTicks = 0;
  private readonly timer: NodeJS.Timeout;

  constructor(intervalMs: number, beat: () => void) {
    this.timer = setInterval(() => {
      this.quietTicks += 1;
      if (this.quietTicks < 2) return;
      // The next beat is a whole interval away, also when this one was not sent (a full socket).
      this.quietTicks = 0;
      beat();
    }, intervalMs / 2);
  }

  /** Something went out: the stream is not quiet. */
  wrote(): void {
    this.quietTicks = 0;
  }

  stop(): void {
    clearInterval(this.timer);
  }
}
