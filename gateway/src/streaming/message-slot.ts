import { EventEmitter } from "node:events";

/**
 * A generator's body for LatestOnlyWriter: it holds one message until
 * connect-node takes it and is full meanwhile, so the writer keeps only the
 * newest state behind it, as it does behind a socket.
 */
export class MessageSlot<M> extends EventEmitter {
  private message: M | undefined;
  private wake: (() => void) | undefined;

  write(message: M): boolean {
    this.message = message;
    this.interrupt();
    return false;
  }

  interrupt(): void {
    this.wake?.();
  }

  /**
   * The messages as connect-node pulls them, until `signal` ends the stream;
   * then `stop` (unsubscribe what feeds the slot).
   */
  async *messages(signal: AbortSignal, stop: () => void): AsyncGenerator<M> {
    const onAbort = () => this.interrupt();
    signal.addEventListener("abort", onAbort);
    try {
      for (;;) {
        const message = await this.take(signal);
        if (!message) return;
        yield message;
        // connect-node asks for the next one once this one is written: the body drained.
        this.emit("drain");
      }
    } finally {
      signal.removeEventListener("abort", onAbort);
      stop();
    }
  }

  /** The message waiting, once there is one; undefined when the stream ended first. */
  private async take(signal: AbortSignal): Promise<M | undefined> {
    while (!this.message && !signal.aborted) {
      await new Promise<void>((resolve) => (this.wake = resolve));
      this.wake = undefined;
    }
    const message = this.message;
    this.message = undefined;
    return signal.aborted ? undefined : message;
  }
}
