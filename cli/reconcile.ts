// scoreboard reconcile: ranking's repair job (services/ranking/src/reconcile-job.ts).
import { EnvReader } from "@scoreboard/platform/config";
import { runReconcileJob } from "../services/ranking/src/reconcile-job.js";
import { commandLogger, expectArgs, type Command } from "./command.js";

export const reconcile: Command = {
  name: "reconcile",
  summary: "make Redis's boards say what PostgreSQL says (the chart's CronJob)",
  usage: `usage: scoreboard reconcile [--rebuild] [--json]

Compares every user's total in PostgreSQL (DATABASE_URL) with the global, region
and live period boards in Redis (REDIS_URL), repairs what differs and prints each
repair. A repair never rolls back a newer version. With NATS_URL set, push hears
which boards were repaired. Waits up to DATASTORE_WAIT_S (60) for each store.
  --rebuild  first reload every board from PostgreSQL (after a Redis loss)
  --json     {"checked", "boards", "repaired": [{userId, board, redis, postgres}], "rebuilt", "announcement"}`,
  options: { rebuild: { type: "boolean" } },
  prepare(values, positionals) {
    expectArgs(["reconcile", ...positionals], "reconcile", "");
    const rebuild = values.rebuild === true;
    return async () => {
      const report = await runReconcileJob(new EnvReader(), commandLogger("reconcile"), { rebuild });
      const lines: string[] = [];
      if (report.rebuilt) lines.push(`rebuilt ${report.rebuilt.users} users from PostgreSQL in ${report.rebuilt.ms} ms`);
      for (const d of report.repaired) lines.push(`repaired ${d.userId} on ${d.board}: redis ${d.redis ?? "missing"} -> postgres ${d.postgres ?? "removed"}`);
      lines.push(`checked ${report.checked} users on ${report.boards.length} boards, repaired ${report.repaired.length}`);
      if (report.announcement) lines.push(report.announcement);
      return { text: lines.join("\n"), json: report };
    };
  },
};
