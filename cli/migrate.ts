// scoreboard migrate: score's schema job (services/score/src/migrate-job.ts).
import { EnvReader } from "@scoreboard/platform/config";
import { DatastoreUnavailable } from "@scoreboard/platform/startup";
import { runMigrateJob } from "../services/score/src/migrate-job.js";
import { CommandFailed, commandLogger, expectArgs, type Command } from "./command.js";

export const migrate: Command = {
  name: "migrate",
  summary: "bring score's schema up to date (the chart's pre-upgrade Job)",
  usage: `usage: scoreboard migrate [--json]

Applies every pending migration to DATABASE_URL, then the grant's functions and
the audit log's next partitions; a no-op on an up-to-date schema. Waits up to
DATASTORE_WAIT_S (60) for PostgreSQL, then exits 1 saying it did not answer.
--json prints {"applied": [names]}.`,
  options: {},
  prepare(_values, positionals) {
    expectArgs(["migrate", ...positionals], "migrate", "");
    return async () => {
      const applied = await runMigrateJob(new EnvReader(), commandLogger("migrate")).catch((err: unknown) => {
        throw err instanceof DatastoreUnavailable ? new CommandFailed(`migration not run: ${err.message}`) : err;
      });
      const text = applied.length > 0 ? `applied ${applied.length} migration(s): ${applied.join(", ")}` : "schema up to date";
      return { text, json: { applied } };
    };
  },
};
