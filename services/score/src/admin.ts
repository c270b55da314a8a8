// Score's operator entry point: what `scoreboard users` and `scoreboard
// catalog` run against score's tables. Tools call this, not the
// repositories' wiring, so the schema's owner decides how they connect.
import type { EnvReader } from "@scoreboard/platform/config";
import { createDb } from "@scoreboard/platform/db";
import { isTransientStoreError } from "@scoreboard/platform/errors";
import type { Logger } from "@scoreboard/platform/logger";
import { readJobWaitMs, waitForDatastore } from "@scoreboard/platform/startup";
import { CatalogRepository, type CatalogEntry } from "./catalog.js";
import { migrateToLatest } from "./schema.js";
import { UserAccounts } from "./users.js";

/** The catalog `npm start` seeds so the demo page has actions to grant. */
export const demoCatalog: readonly CatalogEntry[] = [
  { actionId: "daily-login", points: 5, description: "Logged in today", requiresTicket: false },
  { actionId: "complete-tutorial", points: 10, description: "Finished the tutorial", requiresTicket: false },
  { actionId: "complete-level-1", points: 20, description: "Cleared level 1", requiresTicket: false },
  { actionId: "complete-level-2", points: 30, description: "Cleared level 2", requiresTicket: false },
  { actionId: "defeat-boss", points: 50, description: "Defeated the first boss", requiresTicket: false },
  { actionId: "find-secret", points: 75, description: "Found the secret room", requiresTicket: false },
  { actionId: "first-win", points: 100, description: "Won a first match", requiresTicket: false },
];

export interface ScoreAdmin {
  users: UserAccounts;
  catalog: CatalogRepository;
  /** Adds the demo actions that are missing (never changes one that exists); answers how many were new. */
  seedDemoCatalog(): Promise<number>;
  close(): Promise<void>;
}

/**
 * Connects to score's database (DATABASE_URL), waiting up to
 * DATASTORE_WAIT_S for it, and brings the schema up to date first, as score
 * does at start: a fresh database can be administered before score ever ran.
 */
export async function openScoreAdmin(env: EnvReader, logger: Logger): Promise<ScoreAdmin> {
  const databaseUrl = env.url("DATABASE_URL", undefined, ["postgres:", "postgresql:"]);
  const maxWaitMs = readJobWaitMs(env);
  env.done();
  const db = createDb(databaseUrl, 2, logger);
  try {
    await waitForDatastore("PostgreSQL", () => migrateToLatest(db), logger, { maxWaitMs, retryable: isTransientStoreError });
  } catch (err) {
    await db.destroy();
    throw err;
  }
  return {
    users: new UserAccounts(db),
    catalog: new CatalogRepository(db),
    async seedDemoCatalog() {
      const inserted = await db
        .insertInto("actions")
        .values(demoCatalog.map((a) => ({ action_id: a.actionId, points: a.points, description: a.description, requires_ticket: a.requiresTicket })))
        .onConflict((oc) => oc.column("action_id").doNothing())
        .returning("action_id")
        .execute();
      return inserted.length;
    },
    close: () => db.destroy(),
  };
}
