import { sql, type Kysely } from "kysely";

// The grant became one statement, sb_grant(): the ledger records the user's
// version with each entry, and the outbox row holds only the ledger id (the
// relay builds the event from the ledger when it publishes, so the event never
// disagrees with it). sb_grant() itself is defined whole in
// services/score/src/grant-functions.ts, re-applied after every migration run.
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`ALTER TABLE ledger ADD COLUMN version bigint`.execute(db);
  await sql`UPDATE ledger l SET version = s.version FROM scores s WHERE s.user_id = l.user_id AND l.version IS NULL`.execute(db);
  await sql`ALTER TABLE outbox ALTER COLUMN payload DROP NOT NULL`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  // The grant functions need this schema: below it there is no grant.
  await sql`DROP FUNCTION IF EXISTS sb_grant_batch`.execute(db);
  await sql`DROP FUNCTION IF EXISTS sb_grant`.execute(db);
  await sql`DROP FUNCTION IF EXISTS sb_grant_replay`.execute(db);
  await sql`DELETE FROM outbox WHERE payload IS NULL`.execute(db);
  await sql`ALTER TABLE outbox ALTER COLUMN payload SET NOT NULL`.execute(db);
  await sql`ALTER TABLE ledger DROP COLUMN version`.execute(db);
}
