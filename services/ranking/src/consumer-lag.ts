import type { JetStreamManager } from "nats";
import type { Logger } from "@scoreboard/platform/logger";
import { sampleEvery } from "@scoreboard/platform/metrics";
import { RankingConsumer, ScoresStream } from "@scoreboard/platform/nats";

interface Settable {
  set(value: number): void;
}

/**
 * Samples the durable ranking consumer's lag into two gauges every
 * intervalMs: events not yet delivered (pending) and delivered but not yet
 * acknowledged (ack pending). Every replica reports the same durable, so a
 * dashboard takes the max, not the sum. A failed sample keeps the last values.
 */
export function watchConsumerLag(
  jsm: JetStreamManager,
  gauges: { pending: Settable; ackPending: Settable },
  logger: Logger,
  intervalMs = 5_000,
): () => void {
  return sampleEvery(
    intervalMs,
    async () => {
      const info = await jsm.consumers.info(ScoresStream.name, RankingConsumer.durable_name);
      gauges.pending.set(info.num_pending);
      gauges.ackPending.set(info.num_ack_pending);
    },
    (err, first) => {
      if (first) logger.warn({ err: (err as Error).message }, "sampling the ranking consumer's lag failed");
    },
  );
}
