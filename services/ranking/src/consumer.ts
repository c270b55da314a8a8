import { timestampMs } from "@bufbuild/protobuf/wkt";
import { headers, type ConsumerMessages, type JetStreamClient, type JsMsg } from "nats";
import type { ScoreChanged } from "@scoreboard/gen/scoreboard/v1/events_pb";
import { DEFAULT_BOARD } from "@scoreboard/platform/board-params";
import { EventIntegrityError, type EventOpening } from "@scoreboard/platform/event-seal";
import type { Logger } from "@scoreboard/platform/logger";
import { decodeScoreEvents } from "@scoreboard/platform/score-events";
import { DeadLetterHeaders, DeadLettersStream, RankingConsumer, ScoresStream, Subjects, headerRecord, isNoStream } from "@scoreboard/platform/nats";
import { SpanKind, contextFromNats, contextsFromNatsEach, inSpan, isTracing, type Context, type SpanOptions } from "@scoreboard/platform/tracing";
import type { DeadLetterReason, Tally } from "@scoreboard/platform/metrics";
import type { Boards } from "./boards.js";
import { applyBoardEntryChanged, type DefinedBoardWrites } from "./defined-boards/events.js";

/** Events applied at once, across messages (see handleAll). */
const IN_FLIGHT = 64;
/**
 * Messages the client holds at most. A batch message carries up to
 * OUTBOX_BATCH_SIZE events, so this bounds the events waiting here well
 * within the consumer's ack_wait.
 */
const BUFFERED_MESSAGES = 64;
const PULL_EXPIRES_MS = 10_000;

export interface ScoreEventConsumerOptions {
  js: JetStreamClient;
  boards: Boards;
  /** Where submissions to defined boards (events with board_entry) go; they never touch `boards`. */
  definedBoards?: DefinedBoardWrites;
  /** Told which defined board's season an applied submission changed (and the submission's event). */
  onDefinedBoardChanged?: (boardId: string, season: string, event: ScoreChanged) => void;
  logger: Logger;
  /** Told which boards an applied event changed (and the event: who moved, by how much). */
  onBoardsChanged: (boards: string[], event: ScoreChanged) => void;
  /** Re-declares SCORES, SCORES_DLQ and the consumer; run before every (re)subscription. */
  declare: () => Promise<void>;
  /** Verifies (and decrypts) each event: only what score sealed reaches a board. */
  opener: EventOpening;
  /** Deliveries after which a message whose events still fail to apply is dead-lettered. */
  maxDeliver: number;
  metrics?: ScoreEventConsumerMetrics;
}

/** What the consumer counts (prom-client counters fit). */
export interface ScoreEventConsumerMetrics {
  /** Messages received again (delivery count > 1). */
  redeliveries: Tally;
  /** Dead letters stored, by why. */
  deadLetters: { inc(labels: { reason: DeadLetterReason }): void };
  /** Applies that failed: the boards live in Redis, so these are Redis errors. */
  applyFailures: Tally;
}

/**
 * Applies durable score events to the boards. A message is a batch of events
 * (scoreboard.score.batch) or, from earlier releases and replayed dead
 * letters, a single one (scoreboard.score.changed). Every message is verified
 * before it is decoded: one that fails (unsigned, forged, tampered, unknown
 * key) or does not decode is moved whole to SCORES_DLQ at once and termed,
 * never applied. A verified message is acked only after Redis applied all its
 * events (or found them stale); a failure naks it with a growing delay (its
 * events that did apply are no-ops when it comes back: the version check),
 * and once it has been delivered maxDeliver times and still fails it is moved
 * to SCORES_DLQ too. A message is termed only after its dead letter was
 * stored, so it is always either pending here or in SCORES_DLQ. Any number of
 * ranking replicas share the durable consumer; the version check makes that
 * safe.
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
    // A pull lives PULL_EXPIRES_MS and the server heartbeats it every half of
    // that; two missed heartbeats (a NATS server lost, its consumer leader
    // moved) make the client pull again. nats.js's 30 s default took up to a
    // minute to notice a lost leader; an idle pull every 10 s costs nothing.
    this.messages = await consumer.consume({ max_messages: BUFFERED_MESSAGES, expires: PULL_EXPIRES_MS, abort_on_missing_resource: true });
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
   * Applies up to IN_FLIGHT events at once, of one message or several. Their
   * order does not matter: each carries the user's version and Redis keeps
   * the newest. One at a time, a burst cost one Redis round trip per event;
   * together, the scripts of many events share the round trips (and the
   * connection's writes). The next message is taken once a slot is free.
   */
  private async handleAll(messages: ConsumerMessages): Promise<void> {
    const slots = new Slots(IN_FLIGHT);
    const handling = new Set<Promise<void>>();
    try {
      for await (const msg of messages) {
        const handled: Promise<void> = this.handle(msg, slots)
          .catch((err: unknown) => this.logger.error({ err: (err as Error).message, seq: msg.seq }, "handling a score event message failed"))
          .finally(() => handling.delete(handled));
        handling.add(handled);
        await slots.whenFree();
      }
    } finally {
      await Promise.all(handling);
    }
  }

  private async handle(msg: JsMsg, slots: Slots): Promise<void> {
    const deliveries = msg.info.deliveryCount;
    if (deliveries > 1) this.options.metrics?.redeliveries.inc();
    const events = this.open(msg);
    if (typeof events === "string") return this.deadLetter(msg, events);
    const parents = parentContexts(msg, events.length);
    // Nothing above awaits: the events claim their slots before handleAll
    // asks whether one is free for the next message.
    const results = await Promise.allSettled(
      events.map((event, i) => slots.run(() => inSpan("apply score event", () => this.apply(event), consumedSpan(msg, parents[i], event)))),
    );
    const failure = results.find((r): r is PromiseRejectedResult => r.status === "rejected");
    if (!failure) {
      msg.ack();
      return;
    }
    const error = (failure.reason as Error).message;
    if (deliveries >= this.options.maxDeliver) {
      this.logger.error({ err: error, seq: msg.seq, deliveries }, "score events still failing after max deliveries, dead-lettering their message");
      await this.deadLetter(msg, `max-deliveries: ${error}`);
      return;
    }
    const delayMs = retryDelayMs(deliveries);
    this.logger.warn({ err: error, seq: msg.seq, deliveries, retryInMs: delayMs }, "applying score events failed");
    msg.nak(delayMs);
  }

  /** The message's events, verified and decoded; or why it must be dead-lettered instead. */
  private open(msg: JsMsg): ScoreChanged[] | string {
    let payload: Uint8Array;
    try {
      payload = this.options.opener.open(msg.data, headerRecord(msg.headers));
    } catch (err) {
      // Retrying cannot make an untrusted message trustworthy.
      const reason = err instanceof EventIntegrityError ? err.message : `verification-error: ${(err as Error).message}`;
      this.logger.warn({ reason, seq: msg.seq }, "score event message failed verification, dead-lettering it");
      return reason;
    }
    try {
      return decodeScoreEvents(msg.subject, payload);
    } catch (err) {
      // Signed but unreadable (a newer, incompatible writer?): keep it for a human.
      this.logger.error({ err: (err as Error).message, seq: msg.seq }, "undecodable score event message, dead-lettering it");
      return `undecodable: ${(err as Error).message}`;
    }
  }

  /** Sets the event's totals where its version is newer; throws when Redis failed (the message is retried whole). */
  private async apply(event: ScoreChanged): Promise<void> {
    if (event.boardEntry) return this.applyBoardEntry(event);
    const boards = event.region ? [DEFAULT_BOARD, `region:${event.region}`] : [DEFAULT_BOARD];
    const state = {
      userId: event.userId,
      username: event.username || event.userId,
      score: Number(event.newScore),
      version: Number(event.version),
      reachedAtMs: event.occurredAt ? timestampMs(event.occurredAt) : Date.now(),
    };
    try {
      // A failure of either redelivers the whole message, and the version
      // check makes the part that did apply a no-op then.
      const [changed, changedPeriods] = await Promise.all([
        this.options.boards.apply(state, boards),
        this.options.boards.applyPeriods(
          state,
          event.periodScores.map((p) => ({ board: p.board, score: Number(p.score) })),
        ),
      ]);
      // Inside the event's span: the announcement continues its trace. Redis
      // has the change whether or not the message's ack is still to come.
      const touched = [...(changed ? boards : []), ...changedPeriods];
      if (touched.length > 0) this.options.onBoardsChanged(touched, event);
    } catch (err) {
      this.options.metrics?.applyFailures.inc();
      throw err;
    }
  }

  /** A submission to a defined board: only its season changes (newer version wins, as for totals). */
  private async applyBoardEntry(event: ScoreChanged): Promise<void> {
    const { definedBoards, onDefinedBoardChanged } = this.options;
    // Thrown, not skipped: the message is retried (then dead-lettered), never acked unapplied.
    if (!definedBoards) throw new Error("a board submission arrived but this consumer has no defined-board store");
    try {
      if (await applyBoardEntryChanged(definedBoards, event)) onDefinedBoardChanged?.(event.boardEntry!.boardId, event.boardEntry!.season, event);
    } catch (err) {
      this.options.metrics?.applyFailures.inc();
      throw err;
    }
  }

  /** Stores the message in SCORES_DLQ, then terms it; if the store fails, naks it to try again later. */
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
      // any Sb-Dlq-* a replayed or forged message brought along.
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
        // The same stored message dead-lettered twice (its term() was lost)
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

/** Each event's trace context: a batch carries one per event, a single event its message's. */
function parentContexts(msg: JsMsg, count: number): Context[] {
  if (!isTracing()) return [];
  return msg.subject === Subjects.scoreBatch ? contextsFromNatsEach(msg.headers, count) : [contextFromNats(msg.headers)];
}

/** The relay's publish of this event is the parent: onBoardsChanged runs inside, so the announcement continues the trace. */
function consumedSpan(msg: JsMsg, parent: Context | undefined, event: ScoreChanged): SpanOptions<void> {
  if (!isTracing()) return {};
  return {
    kind: SpanKind.CONSUMER,
    parent,
    attributes: {
      "messaging.system": "nats",
      "messaging.destination.name": msg.subject,
      "messaging.nats.stream_sequence": msg.seq,
      "messaging.nats.deliveries": msg.info.deliveryCount,
      "scoreboard.ledger_id": event.ledgerId.toString(),
    },
  };
}

/** At most `size` tasks at once; the rest wait their turn in order. */
class Slots {
  private free: number;
  private readonly waiting: (() => void)[] = [];
  private readonly freed: (() => void)[] = [];

  constructor(size: number) {
    this.free = size;
  }

  async run<T>(task: () => Promise<T>): Promise<T> {
    if (this.free > 0) this.free -= 1;
    else await new Promise<void>((resolve) => this.waiting.push(resolve));
    try {
      return await task();
    } finally {
      const next = this.waiting.shift();
      if (next) next();
      else {
        this.free += 1;
        for (const resolve of this.freed.splice(0)) resolve();
      }
    }
  }

  /** Resolves once a slot is free and no task is waiting for one. */
  whenFree(): Promise<void> {
    if (this.free > 0) return Promise.resolve();
    return new Promise((resolve) => this.freed.push(resolve));
  }
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
