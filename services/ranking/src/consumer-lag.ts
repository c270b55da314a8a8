import type { JetStreamManager } from "nats";
import type { Logger } from "@scoreboard/platform/logger";
import { sampleEvery } from "@scoreboard/platform/metrics";
import { DeadLettersStream, RankingConsumer, ScoresStream } from "@scoreboard/platform/nats";

interface Settable {
  set(value: number): void;
}

/**
 * Samples the durable ranking consumer's lag into gauges every intervalMs:
 * events not yet delivered (pending), delivered but not yet acknowledged
 * (ack pending), and the messages SCORES_DLQ holds (dead letters waiting for
 * an operator, whichever replica moved them there). Every replica reports
 * the same durable and stream, so dashboards and alerts take the max, not
 * the sum. A failed sample keeps the last values.
 */
export function watchConsumerLag(
  jsm: JetStreamManager,
  gauges: { pending: Settable; ackPending: Settable; deadLetters: Settable },
  logger: Logger,
  intervalMs = 5_000,
): () => void {
  return sampleEvery(
    intervalMs,
    async () => {
      const info = await jsm.consumers.info(ScoresStream.name, RankingConsumer.durable_name);
      gauges.pending.set(info.num_pending);
      gauges.ackPending.set(info.num_ack_pending);
      const dlq = await jsm.streams.info(DeadLettersStream.name);
      gauges.deadLetters.set(dlq.state.messages);
    },
    (err, first) => {
      if (first) logger.warn({ err: (err as Error).message }, "sampling the ranking consumer's lag failed");
    },
  );
}
