// What a `scoreboard` subcommand is, and the two ways it can fail. The
// dispatcher (main.ts) owns the exit codes: a subcommand only checks its
// arguments in prepare() and does its work in the function prepare returns, so
// every usage error is found before anything connects to a datastore.
import type { ParseArgsOptionsConfig } from "node:util";
import { createLogger, type Logger } from "@scoreboard/platform/logger";

/**
 * The command line is wrong (exit 2): unknown option, missing or malformed
 * argument. Thrown only before any work started (as is a ConfigError, the
 * other exit 2), so an exit 2 always means nothing was done.
 */
export class UsageError extends Error {
  override name = "UsageError";
}

/** The work ran and failed in a way the operator can act on (exit 1): not found, refused, unreachable. */
export class CommandFailed extends Error {
  override name = "CommandFailed";
}

/** What a subcommand's work produced: text for a person, a value for `--json`. */
export interface Outcome {
  /** Lines for stdout without --json. */
  text: string;
  /** Printed as one JSON document with --json. */
  json: unknown;
  /** Non-zero when part of the work failed (replay-all with failures); the outcome is still printed. */
  exitCode?: number;
}

export type ParsedValues = Record<string, string | boolean | string[] | boolean[] | undefined>;

export interface Command {
  name: string;
  /** One line for `scoreboard --help`. */
  summary: string;
  /** The whole `scoreboard <name> --help` text. */
  usage: string;
  /** `scoreboard <name> <action> --help`: one action's usage (default: `usage`). */
  helpFor?(positionals: string[]): string;
  /** Its options; --help and --json are every command's. */
  options: ParseArgsOptionsConfig;
  /** Checks the arguments (throws UsageError) and returns the work, not yet started. */
  prepare(values: ParsedValues, positionals: string[]): () => Promise<Outcome>;
}

/** The action a multi-action command was given (its first positional), or a UsageError listing them. */
export function actionOf<A extends string>(positionals: string[], actions: readonly A[]): A {
  const [action] = positionals;
  if (!action) throw new UsageError(`an action is required: ${actions.join(", ")}`);
  if (!(actions as readonly string[]).includes(action)) throw new UsageError(`unknown action "${action}": use ${actions.join(", ")}`);
  return action as A;
}

/**
 * The arguments after the action, checked against its shape as the usage
 * writes it: "<user-id> <role>", "[board]", "<action-id> <points> [description...]".
 */
export function expectArgs(positionals: string[], action: string, shape: string): string[] {
  const args = positionals.slice(1);
  const words = shape.split(" ").filter(Boolean);
  const required = words.filter((w) => w.startsWith("<")).length;
  const max = shape.endsWith("...]") ? Infinity : words.length;
  if (args.length < required) throw new UsageError(`${action} needs ${shape}`);
  if (args.length > max) throw new UsageError(`${action} takes ${shape || "no arguments"}, not "${args.slice(max).join(" ")}"`);
  return args;
}

/** Refuses options an action has no use for, instead of ignoring them. */
export function onlyOptions(values: ParsedValues, action: string, allowed: readonly string[]): void {
  const extra = Object.keys(values).filter((name) => values[name] !== undefined && !allowed.includes(name) && name !== "json");
  if (extra.length > 0) throw new UsageError(`${action} does not take --${extra[0]}`);
}

/** A whole number in min..max from an option or argument, or a UsageError naming it. */
export function integerArg(text: string, what: string, min: number, max: number): number {
  const value = /^-?\d{1,16}$/.test(text) ? Number(text) : Number.NaN;
  if (!Number.isSafeInteger(value) || value < min || value > max) throw new UsageError(`${what} must be a whole number in ${min}..${max}, got "${text}"`);
  return value;
}

/** Warnings (a datastore being waited for) go to stderr as JSON lines, so stdout stays the command's output. */
export function commandLogger(command: string): Logger {
  return createLogger(`scoreboard-${command}`, process.env.LOG_LEVEL ?? "warn", process.stderr);
}
