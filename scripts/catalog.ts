// Manages the action catalog (action id → points) in PostgreSQL.
//   npm run catalog -- list
//   npm run catalog -- set <action-id> <points> [description]
//   npm run catalog -- seed-demo      (idempotent; used by npm start)
import { existsSync } from "node:fs";
import { isValidId } from "@scoreboard/platform/auth";
import { EnvReader } from "@scoreboard/platform/config";
import { createDb } from "@scoreboard/platform/db";
import { migrateToLatest } from "../services/score/src/schema.js";

class UsageError extends Error {}

if (existsSync(".env.local")) process.loadEnvFile(".env.local");

export const demoCatalog = [
  { action_id: "daily-login", points: 5, description: "Logged in today" },
  { action_id: "complete-tutorial", points: 10, description: "Finished the tutorial" },
  { action_id: "complete-level-1", points: 20, description: "Cleared level 1" },
  { action_id: "complete-level-2", points: 30, description: "Cleared level 2" },
  { action_id: "defeat-boss", points: 50, description: "Defeated the first boss" },
  { action_id: "find-secret", points: 75, description: "Found the secret room" },
  { action_id: "first-win", points: 100, description: "Won a first match" },
];

const env = new EnvReader();
const databaseUrl = env.url("DATABASE_URL", undefined, ["postgres:", "postgresql:"]);
env.done();
const db = createDb(databaseUrl, 2);

try {
  await migrateToLatest(db);
  const [command, ...args] = process.argv.slice(2);
  switch (command) {
    case "list": {
      const rows = await db.selectFrom("actions").select(["action_id", "points", "description"]).orderBy("action_id").execute();
      for (const row of rows) console.log(`${row.action_id}\t${row.points}\t${row.description}`);
      break;
    }
    case "set": {
      const [actionId = "", pointsText = "", ...description] = args;
      const points = Number(pointsText);
      if (!isValidId(actionId) || !Number.isInteger(points) || points < 1 || points > 1_000_000) {
        throw new UsageError("set needs an action id (1..64 characters) and integer points 1..1000000");
      }
      await db
        .insertInto("actions")
        .values({ action_id: actionId, points, description: description.join(" ") })
        .onConflict((oc) => oc.column("action_id").doUpdateSet({ points, description: description.join(" ") }))
        .execute();
      console.log(`${actionId} = ${points} points`);
      break;
    }
    case "seed-demo": {
      const inserted = await db
        .insertInto("actions")
        .values(demoCatalog)
        .onConflict((oc) => oc.column("action_id").doNothing())
        .returning("action_id")
        .execute();
      console.log(`demo catalog: ${demoCatalog.length} actions (${inserted.length} new)`);
      break;
    }
    default:
      throw new UsageError("usage: npm run catalog -- list | set <action-id> <points> [description] | seed-demo");
  }
} catch (err) {
  console.error(err instanceof Error ? err.message : err);
  process.exitCode = err instanceof UsageError ? 2 : 1;
} finally {
  await db.destroy();
}
