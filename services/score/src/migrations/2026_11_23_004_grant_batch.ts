// Group commit (sb_grant_batch()) needed no change to the tables; the
// function is defined in services/score/src/grant-functions.ts. Kept so the
// databases that ran this migration still match the list.
export async function up(): Promise<void> {}
