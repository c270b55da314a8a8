import { randomBytes } from "node:crypto";
import pg from "pg";
import { createDb, type Db } from "@scoreboard/platform/db";
import { migrateToLatest } from "../../services/score/src/schema.js";

/** A new, migrated database on the shared test PostgreSQL. */
export async function freshMigratedDb(adminUrl: string): Promise<{ db: Db; url: string }> {
  const name = `t_${randomBytes(6).toString("hex")}`;
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  const db = createDb(url.toString(), 8);
  await migrateToLatest(db);
  return { db, url: url.toString() };
}
