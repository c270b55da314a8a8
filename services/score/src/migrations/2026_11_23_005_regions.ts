import type { Kysely } from "kysely";

// Regional boards (seed 000: leaderboard:us, leaderboard:eu). A user's region
// is their profile's, updated from the token's `region` claim when a grant
// carries one (sb_grant_batch(), services/score/src/grant-functions.ts); the
// relay puts it on the event, and ranking counts the grant on the global
// board and on "region:<region>".
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable("users").addColumn("region", "text").execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable("users").dropColumn("region").execute();
}
