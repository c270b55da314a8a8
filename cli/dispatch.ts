// The dispatcher of `scoreboard`, the operator CLI: one for every subcommand,
// so they agree on --help, --json, error lines and exit codes:
//   0  done (--help included: the help asked for was printed)
//   1  the work failed: a datastore or service did not answer, no such user...
//   2  the command line or the configuration is wrong; nothing was done
// Errors are one line on stderr, never a stack trace. Run from a checkout as
// `cli/scoreboard` (the package's bin; `npm run token|users|...` are
// shortcuts), and in the score and ranking images as `node scoreboard.mjs`.
import { existsSync } from "node:fs";
import { parseArgs } from "node:util";
import { ConfigError } from "@scoreboard/platform/config";
import { CommandFailed, UsageError, type Command, type Outcome } from "./command.js";
import { boards } from "./boards.js";
import { catalog } from "./catalog.js";
import { deadLetters } from "./dead-letters.js";
import { migrate } from "./migrate.js";
import { reconcile } from "./reconcile.js";
import { token } from "./token.js";
import { users } from "./users.js";

export const commands: readonly Command[] = [token, users, catalog, boards, deadLetters, reconcile, migrate];

const overview = [
  "usage: scoreboard <command> [arguments] [--json] [--help]",
  "",
  "commands:",
  ...commands.map((c) => `  ${c.name.padEnd(14)}${c.summary}`),
  "",
  "`scoreboard <command> --help` describes one. Configuration comes from the",
  "environment (and .env.local in the current directory when there is one).",
  "Exit codes: 0 done, 1 the work failed, 2 bad command line or configuration (nothing was done).",
].join("\n");

/** Runs one command line and answers its exit code; writes only through `io`. */
export async function runCli(argv: string[], io: { out: (s: string) => void; err: (s: string) => void }): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === "--help" || name === "-h" || name === "help") {
    (name === undefined ? io.err : io.out)(`${overview}\n`);
    return name === undefined ? 2 : 0;
  }
  const command = commands.find((c) => c.name === name);
  if (!command) {
    io.err(`scoreboard: unknown command "${name}" (scoreboard --help lists them)\n`);
    return 2;
  }
  const usageHint = `(scoreboard ${command.name} --help for usage)`;
  let work: () => Promise<Outcome>;
  let json = false;
  try {
    const { values, positionals } = parseArgs({
      args: rest,
      options: { ...command.options, help: { type: "boolean", short: "h" }, json: { type: "boolean" } },
      allowPositionals: true,
      strict: true,
    });
    if (values.help) {
      io.out(`${command.helpFor?.(positionals) ?? command.usage}\n`);
      return 0;
    }
    json = values.json === true;
    const { help: _help, ...own } = values;
    work = command.prepare(own, positionals);
  } catch (err) {
    // parseArgs' own errors (ERR_PARSE_ARGS_*) say what was wrong in their first sentence.
    const message = (err as { code?: string }).code?.startsWith("ERR_PARSE_ARGS_") ? oneLine(err).split(". ")[0] : oneLine(err);
    io.err(`scoreboard ${command.name}: ${message} ${usageHint}\n`);
    return 2;
  }
  if (existsSync(".env.local")) process.loadEnvFile(".env.local");
  try {
    const outcome = await work();
    io.out(json ? `${JSON.stringify(outcome.json, null, 2)}\n` : outcome.text ? `${outcome.text}\n` : "");
    return outcome.exitCode ?? 0;
  } catch (err) {
    if (err instanceof ConfigError) {
      io.err(`scoreboard ${command.name}: invalid configuration: ${err.problems.join("; ")}\n`);
      return 2;
    }
    if (err instanceof UsageError) {
      io.err(`scoreboard ${command.name}: ${err.message} ${usageHint}\n`);
      return 2;
    }
    io.err(`scoreboard ${command.name}: ${err instanceof CommandFailed ? "" : "failed: "}${oneLine(err)}\n`);
    return 1;
  }
}

function oneLine(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  return message.replace(/\s*\n\s*/g, "; ").trim() || "unknown error";
}
