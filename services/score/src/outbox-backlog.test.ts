// The sampler behind sb_outbox_backlog and sb_outbox_oldest_unpublished_age_seconds
// (the query itself runs on a real PostgreSQL in test/outbox-backlog.test.ts).
import { describe, expect, it } from "vitest";
import { createLogger } from "@scoreboard/platform/logger";
import { ProcessMetrics } from "@scoreboard/platform/metrics";
import { watchOutboxBacklog, type OutboxBacklog } from "./outbox-backlog.js";

const logger = createLogger("outbox-backlog-test", "silent");
const tick = (ms = 10) => new Promise((resolve) => setTimeout(resolve, ms));

describe("watchOutboxBacklog", () => {
  it("sets the backlog and the oldest row's age, and keeps them while PostgreSQL fails, counting each failure", async () => {
    const metrics = new ProcessMetrics();
    let next: OutboxBacklog | Error = { rows: 42, oldestAgeSeconds: 95.5 };
    const stop = watchOutboxBacklog(
      async () => {
        if (next instanceof Error) throw next;
        return next;
      },
      { rows: metrics.outboxBacklog, oldestAgeSeconds: metrics.outboxOldestAge },
      metrics.postgresErrors,
      logger,
      5,
    );
    const value = async (name: string) => (await metrics.registry.getSingleMetric(name)!.get()).values[0]?.value;
    await tick();
    expect(await value("sb_outbox_backlog")).toBe(42);
    expect(await value("sb_outbox_oldest_unpublished_age_seconds")).toBe(95.5);
    next = new Error("connection refused");
    await tick(30);
    expect(await value("sb_outbox_oldest_unpublished_age_seconds")).toBe(95.5);
    expect(await value("sb_postgres_errors_total")).toBeGreaterThan(0);
    next = { rows: 0, oldestAgeSeconds: 0 };
    await tick(30);
    stop();
    expect(await value("sb_outbox_backlog")).toBe(0);
    expect(await value("sb_outbox_oldest_unpublished_age_seconds")).toBe(0);
  });
});
