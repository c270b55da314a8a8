// Score's schema: the grant's functions come from one definition
// (services/score/src/grant-functions.ts) that every migration run re-applies,
// whatever an earlier release left in the database, unless a newer release's
// are in place.
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { sql } from "kysely";
import type { Db } from "@scoreboard/platform/db";
import { missingMigrations } from "@scoreboard/platform/db";
import { BOARD_RULES_REVISION } from "../services/score/src/boards/board-functions.js";
import { GRANT_RULES_REVISION } from "../services/score/src/grant-functions.js";
import { migrateToLatest, scoreSchema } from "../services/score/src/schema.js";
import { freshMigratedDb } from "./harness/database.js";

const grantFunctions = ["sb_grant_replay", "sb_grant", "sb_grant_batch"];
let fresh: Db;
let other: Db;

beforeAll(async () => {
  fresh = (await freshMigratedDb(inject("infra").databaseUrl)).db;
  other = (await freshMigratedDb(inject("infra").databaseUrl)).db;
});
afterAll(async () => {
  await fresh?.destroy();
  await other?.destroy();
});

async function definitions(db: Db): Promise<Record<string, string>> {
  const { rows } = await sql<{ name: string; def: string }>`
    SELECT p.proname AS name, pg_get_functiondef(p.oid) AS def FROM pg_proc p
    WHERE p.proname = ANY(${grantFunctions}) AND p.pronamespace = 'public'::regnamespace`.execute(db);
  return Object.fromEntries(rows.map((r) => [r.name, r.def]));
}

const revision = async (db: Db) =>
  (await sql<{ c: string | null }>`SELECT obj_description('sb_grant_batch(jsonb, text)'::regprocedure, 'pg_proc') AS c`.execute(db)).rows[0]?.c;

describe("the grant's functions", () => {
  it("a fresh database gets them, with this build's revision", async () => {
    expect(Object.keys(await definitions(fresh)).sort()).toEqual([...grantFunctions].sort());
    expect(await revision(fresh)).toBe(`grant rules r${GRANT_RULES_REVISION}`);
    expect(await missingMigrations(fresh, Object.keys(scoreSchema.migrations))).toEqual([]);
  });

  it("a database an earlier release migrated ends with the current definitions", async () => {
    const current = await definitions(fresh);
    // What releases before the single definition left: no replay function,
    // an sb_grant that answered a lost race "already granted", no revision.
    await sql`DROP FUNCTION sb_grant_replay`.execute(other);
    await sql`CREATE OR REPLACE FUNCTION sb_grant_batch(p_grants jsonb, p_subject text)
      RETURNS TABLE (ord int, outcome text, ledger_id bigint, request_id uuid, points bigint, new_score bigint, version bigint, detail text)
      LANGUAGE sql AS $$ SELECT 0, 'stale', NULL::bigint, NULL::uuid, NULL::bigint, NULL::bigint, NULL::bigint, NULL::text $$`.execute(other);
    await sql`COMMENT ON FUNCTION sb_grant_batch(jsonb, text) IS NULL`.execute(other);
    expect(await migrateToLatest(other)).toEqual([]);
    expect(await definitions(other)).toEqual(current);
  });

  it("an older build leaves a newer release's rules alone", async () => {
    await sql`COMMENT ON FUNCTION sb_grant_batch(jsonb, text) IS ${sql.lit(`grant rules r${GRANT_RULES_REVISION + 1}`)}`.execute(other);
    await sql`CREATE OR REPLACE FUNCTION sb_grant_replay(p_user_id text, p_idempotency_key text, p_action_id text, p_delta bigint)
      RETURNS TABLE (outcome text, ledger_id bigint, request_id uuid, points bigint, new_score bigint, version bigint, detail text)
      LANGUAGE sql AS $$ SELECT 'newer', NULL::bigint, NULL::uuid, NULL::bigint, NULL::bigint, NULL::bigint, NULL::text WHERE false $$`.execute(other);
    const newer = await definitions(other);
    await migrateToLatest(other);
    expect(await definitions(other)).toEqual(newer);
  });

  it("replicas migrating at once all succeed", async () => {
    await sql`COMMENT ON FUNCTION sb_grant_batch(jsonb, text) IS NULL`.execute(other);
    await Promise.all(Array.from({ length: 6 }, () => migrateToLatest(other)));
    expect(await definitions(other)).toEqual(await definitions(fresh));
  });
});

describe("the board submission's functions", () => {
  const signature = "sb_board_submit(text, text, boolean, text, bigint, text, bigint, bigint, jsonb, text, text, text, text, timestamptz, jsonb)";
  const boardRevision = async (db: Db) =>
    (await sql<{ c: string | null }>`SELECT obj_description(to_regprocedure(${signature}), 'pg_proc') AS c`.execute(db)).rows[0]?.c;

  it("are applied by the same repeatable step, under their own revision", async () => {
    expect(await boardRevision(fresh)).toBe(`board rules r${BOARD_RULES_REVISION}`);
    await sql`COMMENT ON FUNCTION ${sql.raw(signature)} IS ${sql.lit(`board rules r${BOARD_RULES_REVISION + 1}`)}`.execute(other);
    await migrateToLatest(other);
    expect(await boardRevision(other)).toBe(`board rules r${BOARD_RULES_REVISION + 1}`);
    // The grant's rules are re-applied regardless.
    expect(await revision(other)).toBe(`grant rules r${GRANT_RULES_REVISION}`);
  });
});
