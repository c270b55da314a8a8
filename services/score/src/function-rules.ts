import { sql, type Kysely, type RawBuilder } from "kysely";

/**
 * A set of database functions replaced whole on every migration run (the
 * grant's, the board submission's), guarded by a revision kept in the
 * comment of one of them ("<label> r<revision>"). A database whose functions
 * carry a higher revision was migrated by a newer build: an older one (a pod
 * of the previous release restarting during a rollout) leaves them alone
 * rather than putting older rules back.
 */
export interface FunctionRules {
  /** e.g. "grant rules": the comment reads "grant rules r2". */
  label: string;
  revision: number;
  /** The function whose comment carries the revision, as regprocedure text: "sb_grant_batch(jsonb, text)". */
  marker: string;
  /** CREATE OR REPLACE statements, in dependency order. */
  definitions: readonly RawBuilder<unknown>[];
}

/**
 * Applies the definitions unless a newer build's are in place; in the
 * caller's transaction, which holds the migration lock. Answers whether it did.
 */
// biome-ignore lint/suspicious/noExplicitAny: any database score's migrations made
export async function applyFunctionRules(trx: Kysely<any>, rules: FunctionRules): Promise<boolean> {
  const { rows } = await sql<{ comment: string | null }>`
    SELECT obj_description(to_regprocedure(${rules.marker}), 'pg_proc') AS comment`.execute(trx);
  const match = new RegExp(`^${rules.label} r(\\d+)$`).exec(rows[0]?.comment ?? "");
  if (Number(match?.[1] ?? 0) > rules.revision) return false;
  for (const definition of rules.definitions) await definition.execute(trx);
  await sql`COMMENT ON FUNCTION ${sql.raw(rules.marker)} IS ${sql.lit(`${rules.label} r${rules.revision}`)}`.execute(trx);
  return true;
}
