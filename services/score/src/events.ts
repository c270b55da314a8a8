import { create, toBinary } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { headers, type JetStreamClient } from "nats";
import { ScoreChangedSchema } from "@scoreboard/gen/scoreboard/v1/events_pb";
import type { EventSealing } from "@scoreboard/platform/event-seal";
import { ScoresStream, isNoStream } from "@scoreboard/platform/nats";
import { SpanKind, contextFromCarrier, failSpan, injectNats, startSpan, type Span } from "@scoreboard/platform/tracing";

/** Publishes one committed event durably; resolves only once JetStream stored it. */
export interface EventPublisher {
  /** `traceContext`: the grant's stored W3C context, which the publish continues. */
  publish(subject: string, payload: Uint8Array, messageId: string, traceContext?: Record<string, string> | null): Promise<void>;
}

export class JetStreamPublisher implements EventPublisher {
  constructor(
    private readonly js: JetStreamClient,
    /** Declares the stream again (it was deleted or NATS lost its store). */
    private readonly declareStream: () => Promise<void>,
    /** Signs (and encrypts) every event; ranking refuses anything unsealed. */
    private readonly sealer: EventSealing,
  ) {}

  async publish(subject: string, payload: Uint8Array, messageId: string, traceContext?: Record<string, string> | null): Promise<void> {
    // The relay publishes later and in batches: the span's parent is the
    // grant that wrote the row, not whatever the relay was doing.
    const span = startSpan("publish score event", SpanKind.PRODUCER, contextFromCarrier(traceContext), {
      "messaging.system": "nats",
      "messaging.destination.name": subject,
      "messaging.message.id": messageId,
    });
    try {
      await this.publishSealed(subject, payload, messageId, span);
    } catch (err) {
      if (span) failSpan(span, err);
      throw err;
    } finally {
      span?.end();
    }
  }

  private async publishSealed(subject: string, payload: Uint8Array, messageId: string, span: Span | undefined): Promise<void> {
    // Sealed once: a retry sends the very same bytes and nonce.
    const sealed = this.sealer.seal(payload);
    try {
      await this.send(subject, sealed.data, sealed.headers, messageId, span);
    } catch (err) {
      // 503 "no responders": no stream captures the subject any more.
      if (!isNoStream(err)) throw err;
      await this.declareStream();
      await this.send(subject, sealed.data, sealed.headers, messageId, span);
    }
  }

  private async send(subject: string, data: Uint8Array, seal: Record<string, string>, messageId: string, span: Span | undefined): Promise<void> {
    // A fresh MsgHdrs per attempt: publish() adds its own headers to it.
    const h = headers();
    for (const [name, value] of Object.entries(seal)) h.set(name, value);
    // Outside the sealed bytes: the signature covers the event, not its trace.
    injectNats(span, h);
    // msgID makes a republish after a crash a no-op inside the duplicate
    // window; expect.streamName fails loudly if another stream captured it.
    await this.js.publish(subject, data, {
      headers: h,
      msgID: messageId,
      expect: { streamName: ScoresStream.name },
      timeout: 5_000,
    });
  }
}

/** Encodes the event of one ledger row; the relay calls it when it publishes. */
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
}): Uint8Array {
  return toBinary(
    ScoreChangedSchema,
    create(ScoreChangedSchema, {
      ledgerId: BigInt(row.ledgerId),
      requestId: row.requestId,
      userId: row.userId,
      username: row.username,
      actionId: row.actionId ?? "",
      points: BigInt(row.points),
      newScore: BigInt(row.newScore),
      version: BigInt(row.version),
      occurredAt: timestampFromDate(row.createdAt),
      region: row.region ?? "",
      periodScores: Object.entries(row.periodScores ?? {}).map(([board, score]) => ({ board, score: BigInt(score) })),
    }),
  );
}
