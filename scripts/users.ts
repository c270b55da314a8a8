// Manages users in PostgreSQL.
//   npm run users -- add <user-id> [--name "Alice"] [--role player|admin|banned]
//   npm run users -- set-role <user-id> <role>
//   npm run users -- new-api-key <user-id>    (prints the key once; only its SHA-256 is stored)
//   npm run users -- show <user-id>
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { parseArgs } from "node:util";
import { isValidId } from "@scoreboard/platform/auth";
import { EnvReader } from "@scoreboard/platform/config";
import { createDb } from "@scoreboard/platform/db";
import { migrateToLatest } from "../services/score/src/schema.js";
import { hashApiKey } from "../services/score/src/ledger.js";

class UsageError extends Error {}

if (existsSync(".env.local")) process.loadEnvFile(".env.local");

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { name: { type: "string" }, role: { type: "string", default: "player" } },
});
const env = new EnvReader();
const databaseUrl = env.url("DATABASE_URL", undefined, ["postgres:", "postgresql:"]);
env.done();
const db = createDb(databaseUrl, 2);
const ROLE = /^[a-z][a-z0-9_-]{0,31}$/;

try {
  await migrateToLatest(db);
  const [command, userId = "", arg] = positionals;
  if (command && !isValidId(userId)) throw new UsageError("a user id (1..64 characters) is required");
  switch (command) {
    case "add": {
      if (!ROLE.test(values.role)) throw new UsageError("role must be 1..32 of a-z, 0-9, '_' or '-'");
      await db
        .insertInto("users")
        .values({ user_id: userId, username: values.name ?? userId, role: values.role, api_key_hash: null })
        .onConflict((oc) => oc.column("user_id").doUpdateSet({ username: values.name ?? userId, role: values.role }))
        .execute();
      console.log(`${userId}: ${values.role}`);
      break;
    }
    case "set-role": {
      if (!arg || !ROLE.test(arg)) throw new UsageError("set-role needs a role: 1..32 of a-z, 0-9, '_' or '-'");
      const result = await db.updateTable("users").set({ role: arg }).where("user_id", "=", userId).executeTakeFirst();
      if (Number(result.numUpdatedRows) === 0) throw new UsageError(`no user "${userId}"`);
      console.log(`${userId}: ${arg}`);
      break;
    }
    case "new-api-key": {
      const key = randomBytes(24).toString("base64url");
      const result = await db.updateTable("users").set({ api_key_hash: hashApiKey(key) }).where("user_id", "=", userId).executeTakeFirst();
      if (Number(result.numUpdatedRows) === 0) throw new UsageError(`no user "${userId}" (add it first)`);
      console.log(key);
      break;
    }
    case "show": {
      const user = await db.selectFrom("users").select(["user_id", "username", "role", "created_at"]).where("user_id", "=", userId).executeTakeFirst();
      if (!user) throw new UsageError(`no user "${userId}"`);
      const score = await db.selectFrom("scores").select("score").where("user_id", "=", userId).executeTakeFirst();
      console.log(JSON.stringify({ ...user, score: score?.score ?? 0 }));
      break;
    }
    default:
      throw new UsageError("usage: npm run users -- add <id> [--name N] [--role R] | set-role <id> <role> | new-api-key <id> | show <id>");
  }
} catch (err) {
  console.error(err instanceof Error ? err.message : err);
  process.exitCode = err instanceof UsageError ? 2 : 1;
} finally {
  await db.destroy();
}
