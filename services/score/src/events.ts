import { createHash } from "node:crypto";
import { create, toBinary } from "@bufbuild/protobuf";
import { BinaryWriter, WireType } from "@bufbuild/protobuf/wire";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { headers, type JetStreamClient } from "nats";
import { ScoreChangedSchema, type BoardEntryChanged } from "@scoreboard/gen/scoreboard/v1/events_pb";
import type { EventSealing } from "@scoreboard/platform/event-seal";
import { ScoresStream, Subjects, isNoStream } from "@scoreboard/platform/nats";
import { SpanKind, contextFromCarrier, failSpan, injectNatsEach, startSpan, type Span } from "@scoreboard/platform/tracing";

/** One committed event, as the outbox relay hands it over. */
export interface OutboxEvent {
  ledgerId: string;
  /** The encoded ScoreChanged. */
  payload: Uint8Array;
  /** The grant's stored W3C context, which the event's publish span continues. */
  traceContext?: Record<string, string> | null;
}

/** Publishes committed events durably; resolves only once JetStream stored every one. */
export interface EventPublisher {
  publish(events: readonly OutboxEvent[]): Promise<void>;
}

/**
 * Encoded events per message at most. NATS refuses messages over its
 * max_payload (1 MB by default, headers included); an event is a few hundred
 * bytes, so a relay cycle of 256 fits in one message many times over.
 */
export const MAX_BATCH_BYTES = 256 * 1024;

/**
 * Publishes a relay cycle's events as one ScoreChangedBatch message (more
 * only past MAX_BATCH_BYTES): sealed once, published once, acked once. Per
 * event, CPU went to sealing, a publish request and its ack (nats.js builds
 * an error with a stack for every request), then NATS stored and ranking
 * opened, decoded and acked each one.
 */
export class JetStreamPublisher implements EventPublisher {
  constructor(
    private readonly js: JetStreamClient,
    /** Declares the stream again (it was deleted or NATS lost its store). */
    private readonly declareStream: () => Promise<void>,
    /** Signs (and encrypts) every message; ranking refuses anything unsealed. */
    private readonly sealer: EventSealing,
  ) {}

  async publish(events: readonly OutboxEvent[]): Promise<void> {
    await Promise.all(splitBatch(events).map((batch) => this.publishBatch(batch)));
  }

  private async publishBatch(events: readonly OutboxEvent[]): Promise<void> {
    const messageId = batchMessageId(events.map((e) => e.ledgerId));
    // One span per event, each the child of the grant that wrote its row (not
    // of whatever the relay was doing), so every grant keeps its own trace.
    const spans = events.map((event) =>
      startSpan("publish score event", SpanKind.PRODUCER, contextFromCarrier(event.traceContext), {
        "messaging.system": "nats",
        "messaging.destination.name": Subjects.scoreBatch,
        "messaging.message.id": messageId,
        "messaging.batch.message_count": events.length,
        "scoreboard.ledger_id": event.ledgerId,
      }),
    );
    try {
      await this.publishSealed(encodeScoreChangedBatch(events.map((e) => e.payload)), messageId, spans);
    } catch (err) {
      for (const span of spans) if (span) failSpan(span, err);
      throw err;
    } finally {
      for (const span of spans) span?.end();
    }
  }

  private async publishSealed(payload: Uint8Array, messageId: string, spans: readonly (Span | undefined)[]): Promise<void> {
    // Sealed once: a retry sends the very same bytes and nonce.
    const sealed = this.sealer.seal(payload);
    try {
      await this.send(sealed.data, sealed.headers, messageId, spans);
    } catch (err) {
      // 503 "no responders": no stream captures the subject any more.
      if (!isNoStream(err)) throw err;
      await this.declareStream();
      await this.send(sealed.data, sealed.headers, messageId, spans);
    }
  }

  private async send(data: Uint8Array, seal: Record<string, string>, messageId: string, spans: readonly (Span | undefined)[]): Promise<void> {
    // A fresh MsgHdrs per attempt: publish() adds its own headers to it.
    const h = headers();
    for (const [name, value] of Object.entries(seal)) h.set(name, value);
    // Outside the sealed bytes: the signature covers the events, not their traces.
    injectNatsEach(spans, h);
    // msgID makes an exact retry a no-op inside the duplicate window;
    // expect.streamName fails loudly if another stream captured the subject.
    await this.js.publish(Subjects.scoreBatch, data, {
      headers: h,
      msgID: messageId,
      expect: { streamName: ScoresStream.name },
      timeout: 5_000,
    });
  }
}

/** Consecutive runs of events whose encoded size stays within MAX_BATCH_BYTES (an event larger alone goes alone). */
export function splitBatch<T extends { payload: Uint8Array }>(events: readonly T[], maxBytes = MAX_BATCH_BYTES): T[][] {
  const batches: T[][] = [];
  let current: T[] = [];
  let size = 0;
  for (const event of events) {
    const bytes = event.payload.length + 8; // tag and length prefix, generously
    if (current.length > 0 && size + bytes > maxBytes) {
      batches.push(current);
      current = [];
      size = 0;
    }
    current.push(event);
    size += bytes;
  }
  if (current.length > 0) batches.push(current);
  return batches;
}

/**
 * A ScoreChangedBatch from encoded ScoreChanged messages, without decoding
 * them: a repeated message field is a run of length-delimited field-1 entries.
 */
export function encodeScoreChangedBatch(events: readonly Uint8Array[]): Uint8Array {
  const writer = new BinaryWriter();
  for (const event of events) writer.tag(1, WireType.LengthDelimited).bytes(event);
  return writer.finish();
}

/**
 * A batch's Nats-Msg-Id: a digest of its ledger ids in order. The same batch
 * published again (a retry after a lost ack) is dropped by the server; a batch
 * composed differently after a relay crash is stored, and its events applied
 * again change nothing (absolute totals, newest version wins).
 */
export function batchMessageId(ledgerIds: readonly string[]): string {
  return `b1-${createHash("sha256").update(ledgerIds.join(",")).digest("base64url")}`;
}

/**
 * Encodes the event of one ledger row; the relay calls it when it publishes.
 * A board submission's row carries `boardEntry` (the entry after it) and
 * leaves the grant's fields new_score, version, region and period_scores unset.
 */
export function encodeScoreChanged(row: {
  ledgerId: number;
  requestId: string;
  userId: string;
  username: string;
  actionId: string | null;
  points: number;
  newScore: number;
  version: number;
  createdAt: Date;
  region: string | null;
  /** Period board → the user's total there after this entry (from the ledger trigger). */
  periodScores?: Record<string, number> | null;
  boardEntry?: BoardEntryChanged;
}): Uint8Array {
  // protobuf-es writes fields in field-number order, whatever order they are given in.
  const rowFields = row.boardEntry
    ? { boardEntry: row.boardEntry }
    : {
        actionId: row.actionId ?? "",
        points: BigInt(row.points),
        newScore: BigInt(row.newScore),
        version: BigInt(row.version),
        region: row.region ?? "",
        periodScores: Object.entries(row.periodScores ?? {}).map(([board, score]) => ({ board, score: BigInt(score) })),
      };
  return toBinary(
    ScoreChangedSchema,
    create(ScoreChangedSchema, {
      ledgerId: BigInt(row.ledgerId),
      requestId: row.requestId,
      userId: row.userId,
      username: row.username,
      occurredAt: timestampFromDate(row.createdAt),
      ...rowFields,
    }),
  );
}
