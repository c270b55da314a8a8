// Score's schema as a one-shot job: applies every pending migration, the
// grant's functions and the audit log's partitions, then exits. The chart's
// pre-install/pre-upgrade Job (bundled as migrate.mjs in score's image), so a
// new schema is in place before any new score pod starts; `npm run migrate` by
// hand. Score still migrates at start, which is a no-op by then and keeps
// `npm start` working without this step.
import { existsSync } from "node:fs";
import { EnvReader } from "@scoreboard/platform/config";
import { createDb } from "@scoreboard/platform/db";
import { createLogger } from "@scoreboard/platform/logger";
import { ensureAuditPartitions, migrateToLatest } from "./schema.js";

if (existsSync(".env.local")) process.loadEnvFile(".env.local");

const logger = createLogger("migrate");
const env = new EnvReader();
const databaseUrl = env.url("DATABASE_URL", undefined, ["postgres:", "postgresql:"]);
env.done();

const db = createDb(databaseUrl, 1);
try {
  const applied = await migrateToLatest(db);
  await ensureAuditPartitions(db);
  logger.info({ migrations: applied }, applied.length > 0 ? "migrations applied" : "schema up to date");
} catch (err) {
  logger.fatal({ err }, "migration failed");
  process.exitCode = 1;
} finally {
  await db.destroy();
}
