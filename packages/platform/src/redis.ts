import { Redis } from "ioredis";
import type { Logger } from "./logger.js";

export type { Redis };

export function createRedis(url: string, logger: Logger, options: { autoPipelining?: boolean } = {}): Redis {
  const redis = new Redis(url, {
    // Commands issued in the same tick leave in one write, and while a batch
    // is out, the next one gathers: many concurrent callers then cost a few
    // round trips and syscalls instead of one each.
    enableAutoPipelining: options.autoPipelining ?? false,
    // Fail a command fast while Redis is away instead of queueing it forever;
    // callers decide what a failed read or write means.
    maxRetriesPerRequest: 2,
    enableOfflineQueue: true,
    retryStrategy: (attempt) => Math.min(attempt * 200, 2_000),
  });
  let lastError = "";
  redis.on("error", (err: Error) => {
    if (err.message !== lastError) logger.warn({ err: err.message }, "redis error");
    lastError = err.message;
  });
  redis.on("ready", () => {
    lastError = "";
  });
  return redis;
}
