import type { Db } from "@scoreboard/platform/db";
import { schemaCheck } from "@scoreboard/platform/probes";

/**
 * Score owns the schema and migrates it; ranking reads users (with their
 * region), scores, the ledger, period_scores, board_definitions and
 * board_entries. It is ready once the newest migration those reads rely on
 * has run (migrations run in order), and names it here rather than
 * importing score's list.
 */
export const REQUIRED_MIGRATION = "2026_12_06_011_defined_boards";

/** Readiness: the schema has what ranking reads. */
export function migrationsCheck(db: Db) {
  return schemaCheck(db, [REQUIRED_MIGRATION]);
}
