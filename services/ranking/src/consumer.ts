import { timestampMs } from "@bufbuild/protobuf/wkt";
import { fromBinary } from "@bufbuild/protobuf";
import { headers, type ConsumerMessages, type JetStreamClient, type JsMsg } from "nats";
import { ScoreChangedSchema, type ScoreChanged } from "@scoreboard/gen/scoreboard/v1/events_pb";
import { DEFAULT_BOARD } from "@scoreboard/platform/board-params";
import { EventIntegrityError, type EventOpening } from "@scoreboard/platform/event-seal";
import type { Logger } from "@scoreboard/platform/logger";
import {
  DeadLetterHeaders,
  DeadLettersStream,
  RankingConsumer,
  ScoresStream,
  Subjects,
  headerRecord,
  isNoStream,
} from "@scoreboard/platform/nats";
import { SpanKind, contextFromNats, inSpan, isTracing, type SpanOptions } from "@scoreboard/platform/tracing";
import type { DeadLetterReason, Tally } from "@scoreboard/platform/metrics";
import type { Boards } from "./boards.js";

/** Events applied at once (see handleAll). */
const IN_FLIGHT = 64;

export interface ScoreEventConsumerOptions {
  js: JetStreamClient;
  boards: Boards;
  logger: Logger;
  /** Told which boards an applied event changed. */
  onBoardsChanged: (boards: string[]) => void;
  /** Re-declares SCORES, SCORES_DLQ and the consumer; run before every (re)subscription. */
  declare: () => Promise<void>;
  /** Verifies (and decrypts) each event: only what score sealed reaches a board. */
  opener: EventOpening;
  /** Deliveries after which an event that still fails to apply is dead-lettered. */
  maxDeliver: number;
  metrics?: ScoreEventConsumerMetrics;
}

/** What the consumer counts (prom-client counters fit). */
export interface ScoreEventConsumerMetrics {
  /** Events received again (delivery count > 1). */
  redeliveries: Tally;
  /** Dead letters stored, by why. */
  deadLetters: { inc(labels: { reason: DeadLetterReason }): void };
  /** Applies that failed: the boards live in Redis, so these are Redis errors. */
  applyFailures: Tally;
}

/**
 * Applies durable score events to the boards. Every event is verified before
 * it is decoded: one that fails (unsigned, forged, tampered, unknown key) or
 * does not decode is moved to SCORES_DLQ at once and termed, never applied.
 * A verified event is acked only after Redis applied it (or found it stale);
 * a failure naks it with a growing delay, and once it has been delivered
 * maxDeliver times and still fails it is moved to SCORES_DLQ too. An event is
 * termed only after its dead letter was stored, so it is always either
 * pending here or in SCORES_DLQ. Any number of ranking replicas share the
 * durable consumer; the version check makes that safe.
 */
export class ScoreEventConsumer {
  private messages: ConsumerMessages | undefined;
  private loop: Promise<void> | undefined;
  private stopped = false;

  constructor(private readonly options: ScoreEventConsumerOptions) {}

  async start(): Promise<void> {
    await this.subscribe();
    this.loop = this.run();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.messages?.close();
    await this.loop;
  }

  private get logger(): Logger {
    return this.options.logger;
  }

  private async subscribe(): Promise<ConsumerMessages> {
    await this.options.declare();
    const consumer = await this.options.js.consumers.get(ScoresStream.name, RankingConsumer.durable_name);
    this.messages = await consumer.consume({ max_messages: 512, abort_on_missing_resource: true });
    return this.messages;
  }

  // The iterator ends if the consumer or stream is deleted under us (an
  // operator's mistake, a restored NATS); declare them again and carry on
  // rather than silently stop ranking.
  private async run(): Promise<void> {
    let messages = this.messages;
    while (!this.stopped) {
      try {
        messages ??= await this.subscribe();
        await this.handleAll(messages);
      } catch (err) {
        this.logger.warn({ err: (err as Error).message }, "score event subscription failed");
      }
      messages = undefined;
      if (!this.stopped) {
        this.logger.warn("score event subscription ended, resubscribing");
        await new Promise((r) => setTimeout(r, 1_000));
      }
    }
  }

  /**
   * Handles up to IN_FLIGHT events at once. Their order does not matter: each
   * carries the user's version and Redis keeps the newest. One at a time, a
   * burst cost one Redis round trip per event; together, the scripts of many
   * events share the round trips (and the connection's writes).
   */
  private async handleAll(messages: ConsumerMessages): Promise<void> {
    const inFlight = new Set<Promise<void>>();
    try {
      for await (const msg of messages) {
        const handled: Promise<void> = inSpan("apply score event", () => this.handle(msg), consumedSpan(msg))
          .catch((err: unknown) => this.logger.error({ err: (err as Error).message, seq: msg.seq }, "handling a score event failed"))
          .finally(() => inFlight.delete(handled));
        inFlight.add(handled);
        if (inFlight.size >= IN_FLIGHT) await Promise.race(inFlight);
      }
    } finally {
      await Promise.all(inFlight);
    }
  }

  private async handle(msg: JsMsg): Promise<void> {
    const deliveries = msg.info.deliveryCount;
    if (deliveries > 1) this.options.metrics?.redeliveries.inc();
    let payload: Uint8Array;
    try {
      payload = this.options.opener.open(msg.data, headerRecord(msg.headers));
    } catch (err) {
      // Retrying cannot make an untrusted event trustworthy.
      const reason = err instanceof EventIntegrityError ? err.message : `verification-error: ${(err as Error).message}`;
      this.logger.warn({ reason, seq: msg.seq }, "score event failed verification, dead-lettering it");
      await this.deadLetter(msg, reason);
      return;
    }
    let event: ScoreChanged;
    try {
      event = fromBinary(ScoreChangedSchema, payload);
    } catch (err) {
      // Signed but unreadable (a newer, incompatible writer?): keep it for a human.
      this.logger.error({ err: (err as Error).message, seq: msg.seq }, "undecodable score event, dead-lettering it");
      await this.deadLetter(msg, `undecodable: ${(err as Error).message}`);
      return;
    }
    const boards = event.region ? [DEFAULT_BOARD, `region:${event.region}`] : [DEFAULT_BOARD];
    try {
      const state = {
        userId: event.userId,
        username: event.username || event.userId,
        score: Number(event.newScore),
        version: Number(event.version),
        reachedAtMs: event.occurredAt ? timestampMs(event.occurredAt) : Date.now(),
      };
      // Both before the ack: a failure of either redelivers the whole event,
      // and the version check makes the part that did apply a no-op then.
      const [changed, changedPeriods] = await Promise.all([
        this.options.boards.apply(state, boards),
        this.options.boards.applyPeriods(state, event.periodScores.map((p) => ({ board: p.board, score: Number(p.score) }))),
      ]);
      msg.ack();
      const touched = [...(changed ? boards : []), ...changedPeriods];
      if (touched.length > 0) this.options.onBoardsChanged(touched);
    } catch (err) {
      this.options.metrics?.applyFailures.inc();
      const error = (err as Error).message;
      if (deliveries >= this.options.maxDeliver) {
        this.logger.error({ err: error, seq: msg.seq, deliveries }, "score event still failing after max deliveries, dead-lettering it");
        await this.deadLetter(msg, `max-deliveries: ${error}`);
        return;
      }
      const delayMs = retryDelayMs(deliveries);
      this.logger.warn({ err: error, seq: msg.seq, deliveries, retryInMs: delayMs }, "applying score event failed");
      msg.nak(delayMs);
    }
  }

  /** Stores the event in SCORES_DLQ, then terms it; if the store fails, naks it to try again later. */
  private async deadLetter(msg: JsMsg, reason: string): Promise<void> {
    try {
      await this.publishDeadLetter(msg, reason);
    } catch (err) {
      const delayMs = retryDelayMs(msg.info.deliveryCount);
      this.logger.error({ err: (err as Error).message, seq: msg.seq, retryInMs: delayMs }, "dead-lettering a score event failed, will retry");
      msg.nak(delayMs);
      return;
    }
    msg.term();
    this.options.metrics?.deadLetters.inc({ reason: deadLetterReason(reason) });
  }

  private async publishDeadLetter(msg: JsMsg, reason: string): Promise<void> {
    const send = () => {
      // The original headers, except Nats-* publish directives (a
      // Nats-Expected-Stream: SCORES would make SCORES_DLQ refuse it) and
      // any Sb-Dlq-* a replayed or forged event brought along.
      const h = headers();
      for (const [name, values] of msg.headers ?? []) {
        if (/^(nats-|sb-dlq-)/i.test(name)) continue;
        for (const value of values) h.append(name, value);
      }
      const originalId = msg.headers?.get("Nats-Msg-Id");
      if (originalId) h.set(DeadLetterHeaders.msgId, originalId);
      h.set(DeadLetterHeaders.reason, headerValue(reason));
      h.set(DeadLetterHeaders.streamSeq, String(msg.seq));
      h.set(DeadLetterHeaders.deliveries, String(msg.info.deliveryCount));
      h.set(DeadLetterHeaders.at, new Date().toISOString());
      return this.options.js.publish(Subjects.deadLetter(msg.subject), msg.data, {
        headers: h,
        // The same stored event dead-lettered twice (its term() was lost)
        // is stored once.
        msgID: `${msg.info.stream}-${msg.seq}-${msg.info.timestampNanos}`,
        expect: { streamName: DeadLettersStream.name },
        timeout: 5_000,
      });
    };
    try {
      await send();
    } catch (err) {
      if (!isNoStream(err)) throw err;
      await this.options.declare();
      await send();
    }
  }
}

/** The relay's publish is the parent: onBoardsChanged runs inside, so the announcement continues the trace. */
function consumedSpan(msg: JsMsg): SpanOptions<void> {
  if (!isTracing()) return {};
  return {
    kind: SpanKind.CONSUMER,
    parent: contextFromNats(msg.headers),
    attributes: { "messaging.system": "nats", "messaging.destination.name": msg.subject, "messaging.nats.stream_sequence": msg.seq, "messaging.nats.deliveries": msg.info.deliveryCount },
  };
}

/** The metric label for a dead letter's reason text (see handle): a closed set. */
export function deadLetterReason(reason: string): DeadLetterReason {
  if (reason.startsWith("max-deliveries:")) return "max_deliveries";
  if (reason.startsWith("undecodable:")) return "undecodable";
  return "verification";
}

function retryDelayMs(deliveries: number): number {
  return Math.min(250 * 2 ** Math.min(deliveries, 6), 15_000);
}

/** Printable ASCII only (header values cannot hold CR/LF), and not too long. */
function headerValue(text: string): string {
  return text.replace(/[^\x20-\x7e]/g, "?").slice(0, 500);
}
