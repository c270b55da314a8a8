import { Redis } from "ioredis";
import type { Logger } from "./logger.js";

export type { Redis };

export function createRedis(url: string, logger: Logger): Redis {
  const redis = new Redis(url, {
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
