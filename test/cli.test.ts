// The operator CLI as operators and scripts meet it: a child process per
// command line. Every subcommand answers --help with its usage (exit 0) and a
// bad argument with one line on stderr (exit 2), never a stack trace, and
// before it touches anything: the datastore URLs point at a listener that
// counts connections, and none may arrive.
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { createServer, type Server } from "node:net";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { commands } from "../cli/dispatch.js";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function scoreboard(args: string[], env: Record<string, string>, file = "cli/main.ts"): Promise<Run> {
  const argv = file.endsWith(".ts") ? ["--import", "tsx", file, ...args] : args;
  return new Promise((resolve) => {
    execFile(
      file.endsWith(".ts") ? process.execPath : join(root, file),
      argv,
      { cwd: root, env: { PATH: process.env.PATH!, HOME: process.env.HOME ?? "/tmp", ...env }, timeout: 60_000 },
      (err, stdout, stderr) => resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

const expectOneLineError = (run: Run, what: string) => {
  expect(run.stderr.trim().split("\n"), `${what}: ${run.stderr}`).toHaveLength(1);
  expect(run.stderr, what).not.toMatch(/^\s+at /m);
  expect(run.stdout, what).toBe("");
};

// A bad argument for each subcommand, the kind an operator mistypes.
const badArguments: Record<string, string[]> = {
  token: ["alice", "--ttl", "forever"],
  users: ["add", "bob", "--rol", "admin"],
  catalog: ["set", "daily-login", "lots"],
  boards: ["top", "--limit", "0"],
  "dead-letters": ["replay", "last"],
  reconcile: ["--rebuild=yes"],
  migrate: ["now"],
};

describe("every subcommand's --help and bad arguments", () => {
  let trap: Server;
  let connections = 0;
  let env: Record<string, string>;

  beforeAll(async () => {
    trap = createServer((socket) => {
      connections += 1;
      socket.destroy();
    });
    await new Promise<void>((resolve) => trap.listen(0, "127.0.0.1", resolve));
    const port = (trap.address() as { port: number }).port;
    env = {
      DATABASE_URL: `postgres://postgres@127.0.0.1:${port}/scoreboard`,
      REDIS_URL: `redis://127.0.0.1:${port}`,
      NATS_URL: `nats://127.0.0.1:${port}`,
      RANKING_URL: `http://127.0.0.1:${port}`,
      SCORE_URL: `http://127.0.0.1:${port}`,
      JWT_SECRET: "s".repeat(40),
      DATASTORE_WAIT_S: "0",
    };
  });
  afterAll(() => new Promise<void>((resolve) => trap.close(() => resolve())));

  it("covers every subcommand", () => {
    expect(Object.keys(badArguments).sort()).toEqual(commands.map((c) => c.name).sort());
  });

  it("prints each subcommand's usage for --help and exits 0", async () => {
    const runs = await Promise.all(commands.map((c) => scoreboard([c.name, "--help"], env)));
    for (const [i, run] of runs.entries()) {
      const name = commands[i]!.name;
      expect(run.code, `${name} --help: ${run.stderr}`).toBe(0);
      expect(run.stdout.startsWith(`usage: scoreboard ${name}`), run.stdout).toBe(true);
      expect(run.stderr).toBe("");
    }
    expect(connections).toBe(0);
  });

  it("refuses a bad argument in one line with exit 2, before connecting to anything", async () => {
    const lines = Object.entries(badArguments).map(([name, args]) => [name, ...args]);
    lines.push(["users", "set-role", "bob"], ["dead-letters", "purge", "now"], ["boards", "rank"], ["catalog"]);
    const runs = await Promise.all(lines.map((args) => scoreboard(args, env)));
    for (const [i, run] of runs.entries()) {
      const what = lines[i]!.join(" ");
      expect(run.code, `${what}: ${run.stderr}`).toBe(2);
      expectOneLineError(run, what);
      expect(run.stderr, what).toContain(`(scoreboard ${lines[i]![0]} --help for usage)`);
    }
    expect(connections).toBe(0);
  });

  const boardActions = ["define", "update", "archive", "list", "show", "seasons", "apply"];

  it("prints each boards action's own usage for --help and exits 0", async () => {
    const runs = await Promise.all(boardActions.map((action) => scoreboard(["boards", action, "--help"], env)));
    for (const [i, run] of runs.entries()) {
      const action = boardActions[i]!;
      expect(run.code, `boards ${action} --help: ${run.stderr}`).toBe(0);
      expect(run.stdout.startsWith(`usage: scoreboard boards ${action}`), run.stdout).toBe(true);
      expect(run.stderr).toBe("");
    }
    expect(connections).toBe(0);
  });

  it("refuses bad arguments of each boards action in one line with exit 2, before connecting to anything", async () => {
    const dir = mkdtempSync(join(tmpdir(), "scoreboard-cli-"));
    const badFile = join(dir, "boards.json");
    writeFileSync(badFile, JSON.stringify([{ boardId: "laps", sortOrder: "upwards" }]));
    const twice = join(dir, "twice.json");
    writeFileSync(twice, JSON.stringify([{ boardId: "laps" }, { boardId: "laps" }]));
    const notArray = join(dir, "object.json");
    writeFileSync(notArray, JSON.stringify({ boardId: "laps" }));
    const lines = [
      ["boards", "define", "laps"],
      ["boards", "define", "Laps!", "--title", "Best lap"],
      ["boards", "define", "laps", "--title", "Best lap", "--operator", "max"],
      ["boards", "define", "laps", "--title", "Best lap", "--metadata-max-bytes", "5000"],
      ["boards", "update", "laps", "--sort", "asc"],
      ["boards", "update", "laps", "--min", "low"],
      ["boards", "update", "laps", "--requires-ticket", "--no-requires-ticket"],
      ["boards", "archive"],
      ["boards", "archive", "laps", "--title", "x"],
      ["boards", "list", "everything"],
      ["boards", "show", "laps", "more"],
      ["boards", "seasons"],
      ["boards", "apply"],
      ["boards", "apply", join(dir, "missing.json")],
      ["boards", "apply", badFile],
      ["boards", "apply", twice],
      ["boards", "apply", notArray],
    ];
    const runs = await Promise.all(lines.map((args) => scoreboard(args, env)));
    for (const [i, run] of runs.entries()) {
      const what = lines[i]!.join(" ");
      expect(run.code, `${what}: ${run.stderr}`).toBe(2);
      expectOneLineError(run, what);
      expect(run.stderr, what).toContain("(scoreboard boards --help for usage)");
    }
    expect(runs[14]!.stderr).toContain('[0]: sortOrder must be one of descending, ascending, got "upwards"');
    expect(runs[15]!.stderr).toContain('board "laps" is defined twice');
    expect(connections).toBe(0);
  });

  it("answers an unknown command or none with exit 2, and --help with the overview", async () => {
    const [unknown, none, help] = await Promise.all([scoreboard(["frobnicate"], env), scoreboard([], env), scoreboard(["--help"], env, "cli/scoreboard")]);
    expect(unknown.code).toBe(2);
    expectOneLineError(unknown, "unknown");
    expect(none.code).toBe(2);
    expect(none.stderr).toContain("usage: scoreboard <command>");
    // The launcher (package.json's bin) runs the same program.
    expect(help.code, help.stderr).toBe(0);
    for (const c of commands) expect(help.stdout).toContain(`  ${c.name}`);
    expect(connections).toBe(0);
  });

  it("fails in one line with exit 1 when a store does not answer, and with exit 2 on bad configuration", async () => {
    const [down, unconfigured] = await Promise.all([
      scoreboard(["users", "show", "bob"], env),
      scoreboard(["migrate"], { ...env, DATABASE_URL: "mysql://nowhere" }),
    ]);
    expect(down.code, down.stderr).toBe(1);
    expectOneLineError(down, "users show with PostgreSQL down");
    expect(unconfigured.code).toBe(2);
    expect(unconfigured.stderr).toContain("invalid configuration: DATABASE_URL must use postgres: or postgresql:");
    expectOneLineError(unconfigured, "migrate with a bad DATABASE_URL");
  });
});

describe("real runs with --json", () => {
  let env: Record<string, string>;

  beforeAll(async () => {
    // An empty database, so migrate has migrations to apply; Redis's database 7, so reconcile touches no other test's boards.
    const { databaseUrl, redisUrl, natsUrl } = inject("infra");
    const name = `cli_${randomBytes(6).toString("hex")}`;
    const admin = new pg.Client({ connectionString: databaseUrl });
    await admin.connect();
    await admin.query(`CREATE DATABASE ${name}`).finally(() => admin.end());
    const url = new URL(databaseUrl);
    url.pathname = `/${name}`;
    env = { DATABASE_URL: url.toString(), REDIS_URL: `${redisUrl}/7`, NATS_URL: natsUrl, JWT_SECRET: "s".repeat(40) };
  });

  const json = async (args: string[]) => {
    const run = await scoreboard([...args, "--json"], env);
    expect(run.code, `${args.join(" ")}: ${run.stderr}`).toBe(0);
    return JSON.parse(run.stdout);
  };

  it("migrates, manages users and the catalog, reconciles, lists dead letters and mints a token", async () => {
    expect((await json(["migrate"])).applied.length).toBeGreaterThan(0);
    expect(await json(["migrate"])).toEqual({ applied: [] });

    expect(await json(["users", "add", "cli-ann", "--name", "Ann", "--role", "admin"])).toEqual({ userId: "cli-ann", username: "Ann", role: "admin" });
    expect((await json(["users", "new-api-key", "cli-ann"])).apiKey).toMatch(/^[\w-]{32}$/);
    expect(await json(["users", "show", "cli-ann"])).toMatchObject({ userId: "cli-ann", username: "Ann", role: "admin", score: 0 });
    const missing = await scoreboard(["users", "set-role", "nobody", "banned"], env);
    expect(missing.code).toBe(1);
    expectOneLineError(missing, "set-role of an unknown user");

    expect((await json(["catalog", "seed-demo"])).added).toBeGreaterThan(0);
    expect(await json(["catalog", "set", "cli-quest", "42", "A", "quest", "--requires-ticket"])).toEqual({
      actionId: "cli-quest",
      points: 42,
      description: "A quest",
      requiresTicket: true,
    });
    expect(await json(["catalog", "list"])).toContainEqual({ actionId: "cli-quest", points: 42, description: "A quest", requiresTicket: true });

    const report = await json(["reconcile"]);
    expect(report).toMatchObject({ checked: 0, repaired: [] });
    expect(Array.isArray(await json(["dead-letters", "list"]))).toBe(true);
    expect((await json(["token", "cli-ann", "--ttl", "5m"])).token.split(".")).toHaveLength(3);
  });
});
