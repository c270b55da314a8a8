// Score's schema as a one-shot job: applies every pending migration, the
// grant's functions and the audit log's partitions. `scoreboard migrate` runs
// it, by hand and as the chart's pre-install/pre-upgrade Job (`node
// scoreboard.mjs migrate` in score's image), so a new schema is in place
// before any new score pod starts. Score still migrates at start, which is a
// no-op by then and keeps `npm start` working without this step. PostgreSQL
// still starting or restarting is waited for, up to DATASTORE_WAIT_S (60 s);
// past that it throws DatastoreUnavailable, and Kubernetes runs the Job
// again (backoffLimit).
import type { EnvReader } from "@scoreboard/platform/config";
import { createDb } from "@scoreboard/platform/db";
import { isTransientStoreError } from "@scoreboard/platform/errors";
import type { Logger } from "@scoreboard/platform/logger";
import { readJobWaitMs, waitForDatastore } from "@scoreboard/platform/startup";
import { ensureAuditPartitions, migrateToLatest } from "./schema.js";

/** Brings DATABASE_URL's schema up to date; answers the migrations it applied (none when it was). */
export async function runMigrateJob(env: EnvReader, logger: Logger): Promise<string[]> {
  const databaseUrl = env.url("DATABASE_URL", undefined, ["postgres:", "postgresql:"]);
  const maxWaitMs = readJobWaitMs(env);
  env.done();
  const db = createDb(databaseUrl, 1, logger);
  const waiting = { maxWaitMs, retryable: isTransientStoreError };
  try {
    const applied = await waitForDatastore("PostgreSQL", () => migrateToLatest(db), logger, waiting);
    await waitForDatastore("PostgreSQL", () => ensureAuditPartitions(db), logger, waiting);
    return applied;
  } finally {
    await db.destroy();
  }
}
