import { headers, type JetStreamClient } from "nats";
import type { EventSealing } from "@scoreboard/platform/event-seal";
import { ScoresStream, isNoStream } from "@scoreboard/platform/nats";

/** Publishes one committed event durably; resolves only once JetStream stored it. */
export interface EventPublisher {
  publish(subject: string, payload: Uint8Array, messageId: string): Promise<void>;
}

export class JetStreamPublisher implements EventPublisher {
  constructor(
    private readonly js: JetStreamClient,
    /** Declares the stream again (it was deleted or NATS lost its store). */
    private readonly declareStream: () => Promise<void>,
    /** Signs (and encrypts) every event; ranking refuses anything unsealed. */
    private readonly sealer: EventSealing,
  ) {}

  async publish(subject: string, payload: Uint8Array, messageId: string): Promise<void> {
    // Sealed once: a retry sends the very same bytes and nonce.
    const sealed = this.sealer.seal(payload);
    try {
      await this.send(subject, sealed.data, sealed.headers, messageId);
    } catch (err) {
      // 503 "no responders": no stream captures the subject any more.
      if (!isNoStream(err)) throw err;
      await this.declareStream();
      await this.send(subject, sealed.data, sealed.headers, messageId);
    }
  }

  private async send(subject: string, data: Uint8Array, seal: Record<string, string>, messageId: string): Promise<void> {
    // A fresh MsgHdrs per attempt: publish() adds its own headers to it.
    const h = headers();
    for (const [name, value] of Object.entries(seal)) h.set(name, value);
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
