// Applies every pending migration and creates the audit log's partitions, then
// exits: the chart's pre-install/pre-upgrade Job, so a new schema is in place
// before any new score pod starts (score still migrates at start, which is a
// no-op by then and keeps `npm start` working without this step).
import { existsSync } from "node:fs";
import { EnvReader } from "@scoreboard/platform/config";
import { createDb, migrateToLatest } from "@scoreboard/platform/db";
import { createLogger } from "@scoreboard/platform/logger";
import { ensureAuditPartitions } from "@scoreboard/platform/migrations/2026_11_23_002_write_path";

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
