import { sql, type Kysely } from "kysely";

// The outbox relay deletes rows once JetStream has acknowledged them, instead
// of marking them published and deleting them a day later. What older
// releases marked published goes now; nothing else would remove it.
// biome-ignore lint/suspicious/noExplicitAny: any database score's migrations made
export async function up(db: Kysely<any>): Promise<void> {
  await sql`DELETE FROM outbox WHERE published_at IS NOT NULL`.execute(db);
}
