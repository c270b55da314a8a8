import { describe, expect, it } from "vitest";
import type { JetStreamManager } from "nats";
import { createLogger } from "@scoreboard/platform/logger";
import { DeadLettersStream, RankingConsumer, ScoresStream } from "@scoreboard/platform/nats";
import { watchConsumerLag } from "./consumer-lag.js";

const logger = createLogger("consumer-lag-test", "silent");
const tick = (ms = 10) => new Promise((resolve) => setTimeout(resolve, ms));

describe("watchConsumerLag", () => {
  it("sets pending and ack pending from the durable ranking consumer's info, and dead letters from SCORES_DLQ's", async () => {
    const asked: string[] = [];
    let info = { num_pending: 12, num_ack_pending: 3 };
    let dlq = { state: { messages: 2 } };
    const jsm = {
      consumers: {
        info: async (stream: string, durable: string) => {
          asked.push(`${stream}/${durable}`);
          return info;
        },
      },
      streams: {
        info: async (stream: string) => {
          asked.push(stream);
          return dlq;
        },
      },
    } as unknown as JetStreamManager;
    const values = { pending: -1, ackPending: -1, deadLetters: -1 };
    const stop = watchConsumerLag(
      jsm,
      {
        pending: { set: (v) => (values.pending = v) },
        ackPending: { set: (v) => (values.ackPending = v) },
        deadLetters: { set: (v) => (values.deadLetters = v) },
      },
      logger,
      10,
    );
    await tick();
    expect(values).toEqual({ pending: 12, ackPending: 3, deadLetters: 2 });
    expect(asked.slice(0, 2)).toEqual([`${ScoresStream.name}/${RankingConsumer.durable_name}`, DeadLettersStream.name]);
    info = { num_pending: 0, num_ack_pending: 0 };
    dlq = { state: { messages: 0 } };
    await tick(40);
    stop();
    expect(values).toEqual({ pending: 0, ackPending: 0, deadLetters: 0 });
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
      streams: { info: async () => ({ state: { messages: 0 } }) },
    } as unknown as JetStreamManager;
    let pending = -1;
    const stop = watchConsumerLag(jsm, { pending: { set: (v) => (pending = v) }, ackPending: { set: () => {} }, deadLetters: { set: () => {} } }, logger, 5);
    await tick();
    fail = true;
    await tick(30);
    stop();
    expect(pending).toBe(5);
  });
});
