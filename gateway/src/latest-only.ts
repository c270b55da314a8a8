/** What a response must offer: Node's write() backpressure and its "drain" event. */
interface Drainable {
  write(chunk: Buffer | string): boolean;
  on(event: "drain", listener: () => void): unknown;
  off(event: "drain", listener: () => void): unknown;
}

/**
 * The slow-client rule of every HTTP leaderboard stream: while the socket is
 * full, only the newest value is kept, and it is written once the socket
 * drains; so a client that cannot keep up gets the latest state, never a
 * growing queue. `write` renders and writes one value, answering what
 * res.write() answered.
 */
export class LatestOnlyWriter<T> {
  private blocked = false;
  private pending: { value: T } | undefined;
  private readonly onDrain = () => {
    this.blocked = false;
    const pending = this.pending;
    this.pending = undefined;
    if (pending) this.send(pending.value);
  };

  constructor(
    private readonly res: Drainable,
    private readonly write: (value: T) => boolean,
  ) {
    res.on("drain", this.onDrain);
  }

  /** Whether the socket is full (a heartbeat then has no reason to be sent). */
  get isBlocked(): boolean {
    return this.blocked;
  }

  send(value: T): void {
    if (this.blocked) {
      this.pending = { value };
      return;
    }
    this.blocked = !this.write(value);
  }

  stop(): void {
    this.res.off("drain", this.onDrain);
  }
}
