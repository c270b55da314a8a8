// readOutboxBacklog on a real PostgreSQL: what the outbox-stalled alert reads
// (sb_outbox_oldest_unpublished_age_seconds) follows the oldest unpublished
// row, ignores published ones, and is 0 when the relay has caught up.
import { afterAll, beforeAll, expect, inject, it } from "vitest";
import { sql } from "kysely";
import type { Db } from "@scoreboard/platform/db";
import { readOutboxBacklog } from "../services/score/src/outbox-backlog.js";
import { freshMigratedDb } from "./harness/database.js";

let db: Db;

beforeAll(async () => {
  ({ db } = await freshMigratedDb(inject("infra").databaseUrl));
  await db.insertInto("actions").values({ action_id: "a", points: 1 }).execute();
});

afterAll(async () => {
  await db?.destroy();
});

async function addOutboxRow(userId: string, ageSeconds: number, published: boolean): Promise<void> {
  await db.insertInto("users").values({ user_id: userId, username: userId }).execute();
  const { id } = await db.insertInto("ledger").values({ user_id: userId, action_id: "a", points: 1 }).returning("id").executeTakeFirstOrThrow();
  await db
    .insertInto("outbox")
    .values({
      ledger_id: id,
      subject: "scores.changed",
      payload: Buffer.from("x"),
      created_at: sql`now() - make_interval(secs => ${ageSeconds})`,
      published_at: published ? sql`now()` : null,
    })
    .execute();
}

it("reports the unpublished rows and the age of the oldest, 0 once all are published", async () => {
  expect(await readOutboxBacklog(db)).toEqual({ rows: 0, oldestAgeSeconds: 0 });
  await addOutboxRow("published", 3_600, true);
  await addOutboxRow("stuck", 600, false);
  await addOutboxRow("fresh", 5, false);
  const backlog = await readOutboxBacklog(db);
  expect(backlog.rows).toBe(2);
  expect(backlog.oldestAgeSeconds).toBeGreaterThanOrEqual(600);
  expect(backlog.oldestAgeSeconds).toBeLessThan(660);
  await db.updateTable("outbox").set({ published_at: sql`now()` }).where("published_at", "is", null).execute();
  expect(await readOutboxBacklog(db)).toEqual({ rows: 0, oldestAgeSeconds: 0 });
});
