import { sql, type Kysely } from "kysely";

// The source of truth. The (user_id, action_id) uniqueness of the ledger is
// what makes a grant happen at most once; scores.version orders a user's
// grants for idempotent consumers; the outbox holds each committed event
// until JetStream acknowledged it.
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable("users")
    .addColumn("user_id", "text", (c) => c.primaryKey())
    .addColumn("username", "text", (c) => c.notNull())
    .addColumn("role", "text", (c) => c.notNull().defaultTo("player"))
    .addColumn("created_at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
    .execute();

  await db.schema
    .createTable("actions")
    .addColumn("action_id", "text", (c) => c.primaryKey())
    .addColumn("points", "integer", (c) => c.notNull().check(sql`points > 0 AND points <= 1000000`))
    .addColumn("description", "text", (c) => c.notNull().defaultTo(""))
    .addColumn("created_at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
    .execute();

  await db.schema
    .createTable("ledger")
    .addColumn("id", "bigint", (c) => c.primaryKey().generatedAlwaysAsIdentity())
    .addColumn("request_id", "uuid", (c) => c.notNull().unique().defaultTo(sql`gen_random_uuid()`))
    .addColumn("user_id", "text", (c) => c.notNull().references("users.user_id"))
    .addColumn("action_id", "text", (c) => c.notNull().references("actions.action_id"))
    .addColumn("points", "integer", (c) => c.notNull())
    .addColumn("created_at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
    .addUniqueConstraint("ledger_user_action_unique", ["user_id", "action_id"])
    .execute();

  await db.schema
    .createTable("scores")
    .addColumn("user_id", "text", (c) => c.primaryKey().references("users.user_id"))
    .addColumn("score", "bigint", (c) => c.notNull())
    .addColumn("version", "bigint", (c) => c.notNull())
    .addColumn("updated_at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
    .execute();
  await db.schema.createIndex("scores_score_idx").on("scores").columns(["score desc", "updated_at"]).execute();

  await db.schema
    .createTable("outbox")
    .addColumn("id", "bigint", (c) => c.primaryKey().generatedAlwaysAsIdentity())
    .addColumn("ledger_id", "bigint", (c) => c.notNull().unique().references("ledger.id"))
    .addColumn("subject", "text", (c) => c.notNull())
    .addColumn("payload", "bytea", (c) => c.notNull())
    .addColumn("created_at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn("published_at", "timestamptz")
    .execute();
  // The relay only ever looks at unpublished rows; keep that set indexed on its own.
  await sql`CREATE INDEX outbox_unpublished_idx ON outbox (id) WHERE published_at IS NULL`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  for (const table of ["outbox", "scores", "ledger", "actions", "users"]) {
    await db.schema.dropTable(table).ifExists().execute();
  }
}
