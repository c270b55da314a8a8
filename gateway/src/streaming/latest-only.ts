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
  private blocked = false;
  private pending: { value: T } | undefined;
  private readonly onDrain = () => {
    this.blocked = false;
    const pending = this.pending;
    this.pending = undefined;
    if (pending) this.send(pending.value);
  };

  constructor(
    res: Body<C> & { stream?: Body<C> },
    private readonly render: (value: T) => C,
    options: LatestOnlyOptions<T> = {},
  ) {
    this.body = res.stream ?? res;
    this.body.on("drain", this.onDrain);
    const beat = options.heartbeat;
    this.heartbeat = beat && new Heartbeat(beat.intervalMs, () => this.blocked || this.send(beat.value));
  }

  send(value: T): void {
    if (this.blocked) {
      this.pending = { value };
      return;
    }
    this.heartbeat?.wrote();
    this.blocked = !this.body.write(this.render(value));
  }

  stop(): void {
    this.heartbeat?.stop();
    this.body.off("drain", this.onDrain);
  }
}
