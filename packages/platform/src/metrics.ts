import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";

/**
 * A count an adapter bumps without knowing about Prometheus (a prom-client
 * Counter is one), so business code and adapters stay free of the driver.
 */
export interface Tally {
  inc(): void;
}

/** A gauge of things open right now (a prom-client Gauge child is one). */
export interface OpenCount {
  inc(): void;
  dec(): void;
}

/** Seconds observed into a histogram (a prom-client Histogram or child is one). */
export interface SecondsObserver {
  observe(seconds: number): void;
}

/** Why ranking moved an event to SCORES_DLQ; a closed set, so the label stays bounded. */
export type DeadLetterReason = "verification" | "undecodable" | "max_deliveries";
const DEAD_LETTER_REASONS: DeadLetterReason[] = ["verification", "undecodable", "max_deliveries"];

/** What kind of long-lived stream is open: push's WatchLeaderboard or WatchBoardMoves, or one of the gateway's. */
export type StreamKind = "watch" | "moves" | "sse" | "websocket" | "connect";

// Request latencies span sub-millisecond reads to multi-second timeouts;
// streams that outlive the last bucket land in +Inf, which is what they are.
const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
// From a board change in ranking to push writing it: the target is well
// under the 100 ms coalescing window plus a network hop.
const FANOUT_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 1, 2.5, 5];

/**
 * One Prometheus registry per process, with Node's default process metrics
 * and every `sb_*` family declared here, once, so the dashboard and the
 * Helm chart have one file to read. A family is registered on first use, so
 * a process only exposes the families it feeds.
 */
export class ProcessMetrics {
  readonly registry = new Registry();
  private readonly families = new Map<string, unknown>();

  constructor() {
    collectDefaultMetrics({ register: this.registry });
  }

  /** Every RPC served (unary when answered, streams when they end), by proto service, method and Connect code. */
  get rpcRequests(): Counter<"service" | "method" | "code"> {
    return this.counter("sb_rpc_requests_total", "RPCs served, by service, method and result code.", ["service", "method", "code"]);
  }

  get rpcDuration(): Histogram<"service" | "method"> {
    return this.histogram("sb_rpc_duration_seconds", "Time to answer an RPC (a stream: how long it stayed open).", ["service", "method"], LATENCY_BUCKETS);
  }

  /** The gateway's REST routes, labelled by route pattern (never the raw path). */
  get httpRequests(): Counter<"route" | "method" | "status"> {
    return this.counter("sb_http_requests_total", "REST requests served, by route pattern, method and status.", ["route", "method", "status"]);
  }

  get httpDuration(): Histogram<"route" | "method"> {
    return this.histogram(
      "sb_http_duration_seconds",
      "Time to answer a REST request (SSE: how long the stream stayed open).",
      ["route", "method"],
      LATENCY_BUCKETS,
    );
  }

  get consumerPending(): Gauge {
    return this.gauge(
      "sb_jetstream_consumer_pending",
      "Score event messages (a batch of one relay cycle's events each) in JetStream not yet delivered to the ranking consumer.",
    );
  }

  get consumerAckPending(): Gauge {
    return this.gauge("sb_jetstream_consumer_ack_pending", "Score event messages delivered to ranking and not yet acknowledged.");
  }

  get redeliveries(): Counter {
    return this.counter("sb_jetstream_redeliveries_total", "Score event messages this process received more than once (delivery count > 1).");
  }

  get deadLetters(): Counter<"reason"> {
    return this.family("sb_dead_letters_total", () => {
      const counter = new Counter({
        name: "sb_dead_letters_total",
        help: "Score events moved to SCORES_DLQ, by reason.",
        labelNames: ["reason"],
        registers: [this.registry],
      });
      // Every reason from 0, so rate() and alerts see the first dead letter.
      for (const reason of DEAD_LETTER_REASONS) counter.inc({ reason }, 0);
      return counter;
    });
  }

  get outboxBacklog(): Gauge {
    return this.gauge("sb_outbox_backlog", "Committed outbox rows not yet published to JetStream (sampled; capped at 100000).");
  }

  /** Seconds since the oldest unpublished outbox row was committed: how late ranking is to hear of it (the outbox-stalled alert). */
  get outboxOldestAge(): Gauge {
    return this.gauge(
      "sb_outbox_oldest_unpublished_age_seconds",
      "Age of the oldest committed outbox row not yet published to JetStream, 0 when none (sampled).",
    );
  }

  /** What SCORES_DLQ holds now; sb_dead_letters_total counts moves by one replica and resets with it. */
  get deadLetterMessages(): Gauge {
    return this.gauge("sb_dead_letter_stream_messages", "Messages held in the SCORES_DLQ stream, waiting for an operator (sampled).");
  }

  /** 1 while this process serves without a dependency it can do without (Readiness' degradable checks). */
  get degraded(): Gauge<"dependency"> {
    return this.gauge("sb_degraded", "1 while the process serves in a fallback mode because a degradable dependency fails its check, by dependency.", [
      "dependency",
    ]);
  }

  get openStreams(): Gauge<"kind"> {
    return this.gauge("sb_open_streams", "Long-lived leaderboard streams open right now, by kind.", ["kind"]);
  }

  /** The sb_open_streams child for one kind of stream (made at wiring, so it shows 0 before the first stream). */
  openStreamsOf(kind: StreamKind): OpenCount {
    this.openStreams.inc({ kind }, 0);
    return this.openStreams.labels(kind);
  }

  /** The gateway's tracked standings (StandingWatchers), watched or lingering; set at each scrape. */
  trackStandings(count: () => number): void {
    this.family(
      "sb_standings_tracked",
      () =>
        new Gauge({
          name: "sb_standings_tracked",
          help: "Standings (board, user, around) the gateway tracks for its live streams, watched or lingering.",
          registers: [this.registry],
          collect() {
            this.set(count());
          },
        }),
    );
  }

  get standingReads(): Counter {
    return this.counter("sb_standing_reads_total", "Standings the gateway re-read from ranking because a move spanned them, a new epoch or a sweep.");
  }

  get fanoutLatency(): Histogram {
    return this.histogram("sb_fanout_latency_seconds", "From a board change (its asOf) to push handing it to its streams.", [], FANOUT_BUCKETS);
  }

  get redisErrors(): Counter {
    return this.counter("sb_redis_errors_total", "Redis operations that failed or were skipped because Redis was unavailable.");
  }

  get postgresErrors(): Counter {
    return this.counter("sb_postgres_errors_total", "PostgreSQL operations that failed.");
  }

  /** Score's ledger outcomes: granted, replayed, or why it refused (a closed set). */
  get grants(): Counter<"result"> {
    return this.counter("sb_grants_total", "Grant requests decided by the ledger, by result.", ["result"]);
  }

  /** The Prometheus text exposition of everything registered. */
  async exposition(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }

  private counter<L extends string>(name: string, help: string, labelNames: L[] = []): Counter<L> {
    return this.family(name, () => new Counter<L>({ name, help, labelNames, registers: [this.registry] }));
  }

  private gauge<L extends string>(name: string, help: string, labelNames: L[] = []): Gauge<L> {
    return this.family(name, () => new Gauge<L>({ name, help, labelNames, registers: [this.registry] }));
  }

  private histogram<L extends string>(name: string, help: string, labelNames: L[], buckets: number[]): Histogram<L> {
    return this.family(name, () => new Histogram<L>({ name, help, labelNames, buckets, registers: [this.registry] }));
  }

  private family<T>(name: string, create: () => T): T {
    let family = this.families.get(name) as T | undefined;
    if (family === undefined) {
      family = create();
      this.families.set(name, family);
    }
    return family;
  }
}

/**
 * Runs `sample` now and then every intervalMs (never two at once), for
 * gauges read from a datastore; returns the way to stop. A failed sample
 * keeps the last value and is reported to onError.
 */
export function sampleEvery(
  intervalMs: number,
  sample: () => Promise<void>,
  /** `first` is true for the first failure after a success, so a caller can log a streak once. */
  onError: (err: unknown, first: boolean) => void,
): () => void {
  let running = false;
  let failing = false;
  const run = () => {
    if (running) return;
    running = true;
    sample()
      .then(
        () => {
          failing = false;
        },
        (err: unknown) => {
          onError(err, !failing);
          failing = true;
        },
      )
      .finally(() => (running = false));
  };
  run();
  const timer = setInterval(run, intervalMs);
  timer.unref();
  return () => clearInterval(timer);
}
