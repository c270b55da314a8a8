// Score's schema as a one-shot job: applies every pending migration, the
// grant's functions and the audit log's partitions, then exits. The chart's
// pre-install/pre-upgrade Job (bundled as migrate.mjs in score's image), so a
// new schema is in place before any new score pod starts; `npm run migrate` by
// hand. Score still migrates at start, which is a no-op by then and keeps
// `npm start` working without this step. PostgreSQL still starting or
// restarting is waited for, up to DATASTORE_WAIT_S (60 s); past that the job
// exits 1 saying so, and Kubernetes runs it again (backoffLimit).
import { existsSync } from "node:fs";
import { EnvReader } from "@scoreboard/platform/config";
import { createDb } from "@scoreboard/platform/db";
import { isTransientStoreError } from "@scoreboard/platform/errors";
import { createLogger } from "@scoreboard/platform/logger";
import { DatastoreUnavailable, readJobWaitMs, waitForDatastore } from "@scoreboard/platform/startup";
import { ensureAuditPartitions, migrateToLatest } from "./schema.js";

if (existsSync(".env.local")) process.loadEnvFile(".env.local");

const logger = createLogger("migrate");
const env = new EnvReader();
const databaseUrl = env.url("DATABASE_URL", undefined, ["postgres:", "postgresql:"]);
const maxWaitMs = readJobWaitMs(env);
env.done();

const db = createDb(databaseUrl, 1, logger);
const waiting = { maxWaitMs, retryable: isTransientStoreError };
try {
  const applied = await waitForDatastore("PostgreSQL", () => migrateToLatest(db), logger, waiting);
  await waitForDatastore("PostgreSQL", () => ensureAuditPartitions(db), logger, waiting);
  logger.info({ migrations: applied }, applied.length > 0 ? "migrations applied" : "schema up to date");
} catch (err) {
  if (err instanceof DatastoreUnavailable) logger.fatal(`migration not run: ${err.message}`);
  else logger.fatal({ err }, "migration failed");
  process.exitCode = 1;
} finally {
  await db.destroy();
}
