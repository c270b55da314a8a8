/**
 * The streams to end when a signal (server shutdown) fires, behind ONE abort
 * listener. A listener per stream would do: Node's EventTarget looks for a
 * duplicate on every addEventListener, so 10,000 streams on one signal cost
 * 50 million comparisons just to connect.
 */
export class StreamRegistry {
  private static readonly bySignal = new WeakMap<AbortSignal, StreamRegistry>();

  /** The one registry of a signal, shared by every kind of stream that ends on it. */
  static of(signal: AbortSignal): StreamRegistry {
    let registry = StreamRegistry.bySignal.get(signal);
    if (!registry) {
      registry = new StreamRegistry(signal);
      StreamRegistry.bySignal.set(signal, registry);
    }
    return registry;
  }

  private readonly enders = new Set<() => void>();
  private readonly aborted: () => boolean;

  private constructor(signal: AbortSignal) {
    signal.addEventListener(
      "abort",
      () => {
        for (const end of [...this.enders]) end();
        this.enders.clear();
      },
      { once: true },
    );
    this.aborted = () => signal.aborted;
  }

  /** Registers how to end one stream; returns how to unregister it. Ends it at once if the signal already fired. */
  add(end: () => void): () => void {
    if (this.aborted()) {
      queueMicrotask(end);
      return () => {};
    }
    this.enders.add(end);
    return () => this.enders.delete(end);
  }

  get size(): number {
    return this.enders.size;
  }
}

/**
 * Ties a stream to its response: `stop` runs once, when the client goes away
 * (the response closes) or when `shutdown` fires; then `end` first writes the
 * stream's last bytes and closes it cleanly, so clients reconnect elsewhere.
 * `stop` is told whether the shutdown ended the stream.
 */
export function stopOnCloseOrShutdown(
  res: { once(event: "close", listener: () => void): unknown },
  shutdown: AbortSignal,
  stop: (byShutdown: boolean) => void,
  end: () => void,
): void {
  let stopped = false;
  const finish = () => {
    if (stopped) return;
    stopped = true;
    unregister();
    stop(shutdown.aborted);
  };
  const unregister = StreamRegistry.of(shutdown).add(() => {
    finish();
    end();
  });
  res.once("close", finish);
}
