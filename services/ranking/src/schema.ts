import type { Db } from "@scoreboard/platform/db";
import { schemaCheck } from "@scoreboard/platform/probes";

/**
 * Score owns the schema and migrates it; ranking reads users (with their
 * region), scores, the ledger and period_scores. It is ready once the newest
 * migration those reads rely on has run (migrations run in order), and names
 * it here rather than importing score's list.
 */
export const REQUIRED_MIGRATION = "2026_11_23_006_period_boards";

/** Readiness: the schema has what ranking reads. */
export function migrationsCheck(db: Db) {
  return schemaCheck(db, [REQUIRED_MIGRATION]);
}
