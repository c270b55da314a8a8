import { setDefaultHighWaterMark } from "node:stream";
import { Heartbeat } from "./heartbeat.js";

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
export interface Body<C = Buffer | string> {
  /** False when the body is full: nothing more until "drain". */
  write(chunk: C): boolean;
  on(event: "drain", listener: () => void): unknown;
  off(event: "drain", listener: () => void): unknown;
}

export interface LatestOnlyOptions<T> {
  /** Heartbeat every intervalMs of silence (Heartbeat), sending `value`; none when absent. */
  heartbeat?: { intervalMs: number; value: T };
  /**
   * Which state a value is of, on a stream carrying several (a live stream's
   * subscriptions): while the body is full the latest value of EACH key is
   * kept, in the order the keys first waited. One state when absent.
   */
  keyOf?: (value: T) => string;
}

/**
 * The slow-client rule of every gateway stream (SSE, WebSocket, Connect,
 * gRPC-Web and gRPC): while the body is full, only the newest value is kept,
 * and it is written once the body drains; so a client that cannot keep up
 * gets the latest state, never a growing queue. `render` turns one value
 * into what to write. A heartbeat is skipped while the body is full: the
 * stream is not idle then, and the pending state goes out first.
 *
 * Over HTTP/2 the bytes go straight to the response's stream: the
 * compatibility response only forwards them, and with ten thousand streams
 * per change that layer was a cost of its own.
 */
export class LatestOnlyWriter<T, C = Buffer | string> {
  private readonly body: Body<C>;
  private readonly heartbeat: Heartbeat | undefined;
  private readonly keyOf: ((value: T) => string) | undefined;
  private blocked = false;
  private written = false;
  /** Per key (one key without keyOf), the newest value waiting for the body to drain. */
  private readonly pending = new Map<string, T>();
  private readonly onDrain = () => {
    this.blocked = false;
    // Written in the order they first waited, until the body is full again;
    // whatever is left waits for the next drain, still latest-only.
    for (const [key, value] of this.pending) {
      if (this.blocked) return;
      this.pending.delete(key);
      this.write(value);
    }
  };

  constructor(
    res: Body<C> & { stream?: Body<C> },
    private readonly render: (value: T) => C,
    options: LatestOnlyOptions<T> = {},
  ) {
    this.body = res.stream ?? res;
    this.keyOf = options.keyOf;
    this.body.on("drain", this.onDrain);
    const beat = options.heartbeat;
    this.heartbeat = beat && new Heartbeat(beat.intervalMs, () => this.blocked || this.send(beat.value));
  }

  send(value: T): void {
    if (this.blocked) {
      this.pending.set(this.keyOf ? this.keyOf(value) : "", value);
      return;
    }
    this.write(value);
  }

  /** True until the first write: the client has not heard from the stream yet. */
  get silent(): boolean {
    return !this.written;
  }

  private write(value: T): void {
    this.written = true;
    this.heartbeat?.wrote();
    this.blocked = !this.body.write(this.render(value));
  }

  stop(): void {
    this.heartbeat?.stop();
    this.body.off("drain", this.onDrain);
  }
}
