import { describe, expect, it } from "vitest";
import type { JetStreamManager } from "nats";
import { createLogger } from "@scoreboard/platform/logger";
import { RankingConsumer, ScoresStream } from "@scoreboard/platform/nats";
import { watchConsumerLag } from "./consumer-lag.js";

const logger = createLogger("consumer-lag-test", "silent");
const tick = (ms = 10) => new Promise((resolve) => setTimeout(resolve, ms));

describe("watchConsumerLag", () => {
  it("sets pending and ack pending from the durable ranking consumer's info", async () => {
    const asked: string[] = [];
    let info = { num_pending: 12, num_ack_pending: 3 };
    const jsm = {
      consumers: {
        info: async (stream: string, durable: string) => (asked.push(`${stream}/${durable}`), info),
      },
    } as unknown as JetStreamManager;
    const values = { pending: -1, ackPending: -1 };
    const stop = watchConsumerLag(
      jsm,
      { pending: { set: (v) => (values.pending = v) }, ackPending: { set: (v) => (values.ackPending = v) } },
      logger,
      10,
    );
    await tick();
    expect(values).toEqual({ pending: 12, ackPending: 3 });
    expect(asked[0]).toBe(`${ScoresStream.name}/${RankingConsumer.durable_name}`);
    info = { num_pending: 0, num_ack_pending: 0 };
    await tick(40);
    stop();
    expect(values).toEqual({ pending: 0, ackPending: 0 });
  });

  it("keeps the last values while NATS does not answer", async () => {
    let fail = false;
    const jsm = {
      consumers: {
        info: async () => {
          if (fail) throw new Error("timeout");
          return { num_pending: 5, num_ack_pending: 1 };
        },
      },
    } as unknown as JetStreamManager;
    let pending = -1;
    const stop = watchConsumerLag(jsm, { pending: { set: (v) => (pending = v) }, ackPending: { set: () => {} } }, logger, 5);
    await tick();
    fail = true;
    await tick(30);
    stop();
    expect(pending).toBe(5);
  });
});
