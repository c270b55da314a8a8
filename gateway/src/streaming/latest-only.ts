import { setDefaultHighWaterMark } from "node:stream";

/**
 * How much a stream to a client may hold before its write() pushes back and
 * the rule below keeps only the latest value. Node 22 raised streams' default
 * from 16 KiB to 64 KiB; at ten thousand open streams that is 640 MB held for
 * clients that stopped reading, and a stuck client would get four times as
 * many stale states before the latest one. The gateway keeps the 16 KiB its
 * streams were sized with, for every stream it makes (HTTP/1.1 responses and
 * HTTP/2 streams are created by Node, so the default is the one place to say it).
 */
export const STREAM_BUFFER_BYTES = 16 * 1024;

export function boundStreamBuffers(): void {
  setDefaultHighWaterMark(false, STREAM_BUFFER_BYTES);
}

/** Where a stream's body goes: Node's write() backpressure and its "drain" event. */
interface Body {
  write(chunk: Buffer | string): boolean;
  on(event: "drain", listener: () => void): unknown;
  off(event: "drain", listener: () => void): unknown;
}

/**
 * The slow-client rule of every HTTP leaderboard stream: while the socket is
 * full, only the newest value is kept, and it is written once the socket
 * drains; so a client that cannot keep up gets the latest state, never a
 * growing queue. `render` turns one value into the bytes to write.
 *
 * Over HTTP/2 the bytes go straight to the response's stream: the
 * compatibility response only forwards them, and with ten thousand streams
 * per change that layer was a cost of its own.
 */
export class LatestOnlyWriter<T> {
  private readonly body: Body;
  private blocked = false;
  private pending: { value: T } | undefined;
  private readonly onDrain = () => {
    this.blocked = false;
    const pending = this.pending;
    this.pending = undefined;
    if (pending) this.send(pending.value);
  };

  constructor(
    res: Body & { stream?: Body },
    private readonly render: (value: T) => Buffer | string,
  ) {
    this.body = res.stream ?? res;
    this.body.on("drain", this.onDrain);
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
    this.blocked = !this.body.write(this.render(value));
  }

  stop(): void {
    this.body.off("drain", this.onDrain);
  }
}
