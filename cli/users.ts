// scoreboard users: the accounts in score's database (roles, API keys).
import { isValidId } from "@scoreboard/platform/auth";
import type { ScoreAdmin } from "../services/score/src/admin.js";
import { ROLE } from "../services/score/src/users.js";
import { CommandFailed, UsageError, actionOf, expectArgs, onlyOptions, type Command, type Outcome } from "./command.js";
import { withAdmin } from "./score-admin.js";

const actions = ["add", "set-role", "new-api-key", "show"] as const;

export const users: Command = {
  name: "users",
  summary: "add users, set their role, issue API keys, show one",
  usage: `usage: scoreboard users <action> [--json]
  add <user-id> [--name "Alice"] [--role player]   create the user, or rename it and set its role
  set-role <user-id> <role>                        roles: player, admin, banned, or any 1..32 of a-z, 0-9, '_', '-'
  new-api-key <user-id>                            a new key replacing the old one; printed once, only its SHA-256 is kept
  show <user-id>                                   the user and its total score

Needs DATABASE_URL; brings score's schema up to date first, as score does at start.`,
  options: { name: { type: "string" }, role: { type: "string" } },
  prepare(values, positionals) {
    const action = actionOf(positionals, actions);
    const args = expectArgs(positionals, action, action === "set-role" ? "<user-id> <role>" : "<user-id>");
    const [userId = "", roleArg] = args;
    if (!isValidId(userId)) throw new UsageError("the user id must be 1..64 characters without control characters");
    onlyOptions(values, action, action === "add" ? ["name", "role"] : []);
    const role = roleArg ?? (values.role as string | undefined) ?? "player";
    if (!ROLE.test(role)) throw new UsageError(`role "${role}": 1..32 of a-z, 0-9, '_' or '-', starting with a letter`);
    const name = (values.name as string | undefined) ?? userId;
    if (!isValidId(name)) throw new UsageError("--name must be 1..64 characters without control characters");
    return () => withAdmin((admin) => run(admin, action, userId, { role, name }));
  },
};

async function run(admin: ScoreAdmin, action: (typeof actions)[number], userId: string, a: { role: string; name: string }): Promise<Outcome> {
  switch (action) {
    case "add":
      await admin.users.put(userId, a.name, a.role);
      return { text: `${userId}: ${a.role}`, json: { userId, username: a.name, role: a.role } };
    case "set-role":
      if (!(await admin.users.setRole(userId, a.role))) throw new CommandFailed(`no user "${userId}" (scoreboard users add ${userId})`);
      return { text: `${userId}: ${a.role}`, json: { userId, role: a.role } };
    case "new-api-key": {
      const apiKey = await admin.users.newApiKey(userId);
      if (!apiKey) throw new CommandFailed(`no user "${userId}" (scoreboard users add ${userId})`);
      return { text: apiKey, json: { userId, apiKey } };
    }
    case "show": {
      const user = await admin.users.show(userId);
      if (!user) throw new CommandFailed(`no user "${userId}"`);
      const text = Object.entries(user)
        .map(([k, v]) => `${k}: ${v ?? "-"}`)
        .join("\n");
      return { text, json: user };
    }
  }
}
