// A token's region claim moves the user's profile only with a grant made, in
// its transaction (it used to move it for a refused grant too). A change to
// sb_grant_batch() only, now in services/score/src/grant-functions.ts; kept so
// the databases that ran this migration still match the list.
export async function up(): Promise<void> {}
