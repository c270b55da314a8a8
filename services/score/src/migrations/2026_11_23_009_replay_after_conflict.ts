// Parallel retries with one Idempotency-Key answer the first grant, never
// "already granted" (sb_grant_replay()). A change to the grant functions only,
// now in services/score/src/grant-functions.ts; kept so the databases that ran
// this migration still match the list.
export async function up(): Promise<void> {}
