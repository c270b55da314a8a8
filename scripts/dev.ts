// The process supervisor behind `npm start`: migrates, seeds the demo
// catalog, runs the four processes with prefixed logs, waits until each is
// serving, prints where to look, and stops everything on Ctrl-C.
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { createInterface } from "node:readline";
import { defaultPorts } from "@scoreboard/platform/config";

if (existsSync(".env.local")) process.loadEnvFile(".env.local");

const processes = [
  { name: "score", entry: "services/score/src/main.ts", port: Number(process.env.SCORE_PORT ?? defaultPorts.score) },
  { name: "ranking", entry: "services/ranking/src/main.ts", port: Number(process.env.RANKING_PORT ?? defaultPorts.ranking) },
  { name: "push", entry: "services/push/src/main.ts", port: Number(process.env.PUSH_PORT ?? defaultPorts.push) },
  { name: "gateway", entry: "gateway/src/main.ts", port: Number(process.env.GATEWAY_PORT ?? defaultPorts.gateway) },
] as const;
const colors = { score: 33, ranking: 36, push: 35, gateway: 32 } as const;
const children = new Map<string, ChildProcess>();
let stopping = false;

function run(command: string, args: string[]): void {
  const result = spawnSync(command, args, { stdio: "inherit" });
  if (result.status !== 0) throw new Error(`${command} ${args.join(" ")} failed`);
}

function startProcess(name: keyof typeof colors, entry: string): void {
  // Own process group: a terminal's Ctrl-C reaches only this supervisor, which
  // then stops each process once, in order, with SIGTERM.
  const child = spawn(process.execPath, ["--import", "tsx", entry], {
    stdio: ["ignore", "pipe", "pipe"],
    env: process.env,
    detached: true,
  });
  children.set(name, child);
  const prefix = `\u001b[${colors[name]}m${name.padEnd(8)}\u001b[0m|`;
  for (const stream of [child.stdout, child.stderr]) {
    createInterface({ input: stream }).on("line", (line) => console.log(`${prefix} ${line}`));
  }
  child.once("exit", (code, signal) => {
    children.delete(name);
    if (!stopping) {
      console.error(`${prefix} exited (${signal ?? code}); stopping everything`);
      void stopAll(1);
    }
  });
}

async function waitServing(port: number, deadlineMs = 60_000): Promise<void> {
  const deadline = Date.now() + deadlineMs;
  while (Date.now() < deadline && !stopping) {
    try {
      const res = await fetch(`http://127.0.0.1:${port}/grpc.health.v1.Health/Check`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: "{}",
      });
      if (res.ok && ((await res.json()) as { status?: string }).status === "SERVING") return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`nothing serving on port ${port}`);
}

async function stopAll(exitCode: number): Promise<void> {
  if (stopping) return;
  stopping = true;
  console.log("\nStopping…");
  await Promise.all(
    [...children.values()].map(
      (child) =>
        new Promise<void>((resolve) => {
          child.once("exit", () => resolve());
          child.kill("SIGTERM");
          setTimeout(() => child.kill("SIGKILL"), 10_000).unref();
        }),
    ),
  );
  if (process.env.KEEP_INFRA !== "1") spawnSync("bash", ["scripts/infra.sh", "stop"], { stdio: "inherit" });
  process.exit(exitCode);
}

process.on("SIGINT", () => void stopAll(0));
process.on("exit", () => {
  for (const child of children.values()) child.kill("SIGKILL");
});
process.on("SIGTERM", () => void stopAll(0));

run(process.execPath, ["--import", "tsx", "cli/main.ts", "catalog", "seed-demo"]);
for (const p of processes) {
  startProcess(p.name, p.entry);
  // score migrates the database; the rest can start in parallel after it.
  if (p.name === "score") await waitServing(p.port);
}
await Promise.all(processes.map((p) => waitServing(p.port)));

const gateway = `http://localhost:${processes[3].port}`;
console.log(`
\u001b[1mScoreboard is running.\u001b[0m
  Live leaderboard:  ${gateway}/
  REST:              ${gateway}/api/leaderboard   (stream: ${gateway}/api/leaderboard/stream)
  Mint a token:      npm run token -- alice
  Submit an action:  curl -X POST ${gateway}/api/actions -H "Authorization: Bearer $(npm run -s token -- alice)" \\
                       -H 'content-type: application/json' -d '{"actionId":"daily-login"}'
  Catalog:           npm run catalog -- list
Press Ctrl-C to stop everything.
`);
