// scoreboard catalog: the action catalog (action id -> points) in score's database.
import { isValidId } from "@scoreboard/platform/auth";
import { demoCatalog, type ScoreAdmin } from "../services/score/src/admin.js";
import { CommandFailed, UsageError, actionOf, expectArgs, integerArg, onlyOptions, type Command, type Outcome } from "./command.js";
import { withAdmin } from "./score-admin.js";

const actions = ["list", "set", "delete", "seed-demo"] as const;
const MAX_POINTS = 1_000_000;

export const catalog: Command = {
  name: "catalog",
  summary: "list and change the action catalog (action id -> points)",
  usage: `usage: scoreboard catalog <action> [--json]
  list                                                  every action: id, points, whether it needs a ticket, description
  set <action-id> <points> [description...] [--requires-ticket]
                                                        create or replace one (points 1..${MAX_POINTS}); grants made stay as they were
  delete <action-id>                                    remove one never granted (a granted one stays: the ledger refers to it)
  seed-demo                                             add the demo actions that are missing (npm start runs it)

Needs DATABASE_URL; brings score's schema up to date first, as score does at start.`,
  options: { "requires-ticket": { type: "boolean" } },
  prepare(values, positionals) {
    const action = actionOf(positionals, actions);
    onlyOptions(values, action, action === "set" ? ["requires-ticket"] : []);
    if (action === "list" || action === "seed-demo") {
      expectArgs(positionals, action, "");
      return () => withAdmin(action === "list" ? list : seedDemo);
    }
    const [actionId = "", pointsText = "", ...description] = expectArgs(
      positionals,
      action,
      action === "set" ? "<action-id> <points> [description...]" : "<action-id>",
    );
    if (!isValidId(actionId)) throw new UsageError("the action id must be 1..64 characters without control characters");
    if (action === "delete") return () => withAdmin((admin) => remove(admin, actionId));
    const entry = {
      actionId,
      points: integerArg(pointsText, "points", 1, MAX_POINTS),
      description: description.join(" "),
      requiresTicket: values["requires-ticket"] === true,
    };
    return () =>
      withAdmin(async (admin) => {
        await admin.catalog.put(entry);
        return { text: `${actionId} = ${entry.points} points${entry.requiresTicket ? " (needs a ticket)" : ""}`, json: entry };
      });
  },
};

async function list(admin: ScoreAdmin): Promise<Outcome> {
  const entries = await admin.catalog.list();
  const text = entries.map((e) => [e.actionId, e.points, e.requiresTicket ? "ticket" : "-", e.description].join("\t")).join("\n");
  return { text: text || "the catalog is empty (scoreboard catalog seed-demo adds the demo actions)", json: entries };
}

async function seedDemo(admin: ScoreAdmin): Promise<Outcome> {
  const added = await admin.seedDemoCatalog();
  return { text: `demo catalog: ${demoCatalog.length} actions (${added} new)`, json: { actions: demoCatalog.length, added } };
}

async function remove(admin: ScoreAdmin, actionId: string): Promise<Outcome> {
  if (!(await admin.catalog.delete(actionId))) throw new CommandFailed(`no action "${actionId}"`);
  return { text: `deleted ${actionId}`, json: { actionId, deleted: true } };
}
