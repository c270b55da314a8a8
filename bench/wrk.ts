// Runs wrk with bench/wrk-post-score.lua against the gateway's public
// POST /api/score/{user_id} and reads the one result line the script prints.
import { execFile } from "node:child_process";
import { writeFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { exitedChildrenCpuMs } from "./process-cpu.js";

const run = promisify(execFile);
const script = fileURLToPath(new URL("./wrk-post-score.lua", import.meta.url));

export interface WrkResult {
  seconds: number;
  requests: number;
  /** Answers by HTTP status. */
  statuses: Map<number, number>;
  /** 2xx answers: the grants. */
  ok: number;
  /** Everything that was not a 2xx answer: other statuses, connect/read/write errors, timeouts. */
  failures: string[];
  p50Ms: number;
  p99Ms: number;
  /** CPU milliseconds wrk itself used (it has exited and been reaped). */
  cpuMs: number;
}

/** Writes `{ {path, authorization}, ... }` for the script's users file. */
export async function writeUsersFile(path: string, users: { userId: string; token: string }[]): Promise<void> {
  const quote = (s: string) => JSON.stringify(s); // a JSON string of ASCII is a valid Lua string
  const rows = users.map((u) => `{${quote(`/api/score/${encodeURIComponent(u.userId)}`)},${quote(`Bearer ${u.token}`)}}`);
  await writeFile(path, `return {\n${rows.join(",\n")}\n}\n`);
}

/**
 * Closed loop without `ratePerS` (`threads` threads sharing `connections`);
 * with it, one connection per thread, each on its own schedule (see the script).
 */
export async function runWrk(options: {
  baseUrl: string;
  usersFile: string;
  connections: number;
  threads: number;
  seconds: number;
  ratePerS?: number;
}): Promise<WrkResult> {
  const threads = options.ratePerS ? options.connections : options.threads;
  const args = [
    "-t",
    String(threads),
    "-c",
    String(options.connections),
    "-d",
    `${options.seconds}s`,
    "--timeout",
    "10s",
    "-s",
    script,
    options.baseUrl,
    "--",
    options.usersFile,
    String(threads),
  ];
  if (options.ratePerS) args.push(String(Math.max(1, Math.round(options.ratePerS))));
  const cpuBefore = exitedChildrenCpuMs();
  const { stdout } = await run("wrk", args, { maxBuffer: 16 << 20 });
  const cpuMs = exitedChildrenCpuMs() - cpuBefore;
  return { ...parseResult(stdout), cpuMs };
}

function parseResult(stdout: string): Omit<WrkResult, "cpuMs"> {
  const line = stdout.split("\n").find((l) => l.startsWith("SB_WRK "));
  if (!line) throw new Error(`wrk printed no result line:\n${stdout}`);
  const fields = new Map(
    line
      .slice(7)
      .split(" ")
      .map((kv) => kv.split("=") as [string, string]),
  );
  const num = (key: string) => Number(fields.get(key) ?? 0);
  const statuses = new Map<number, number>();
  for (const [key, value] of fields) if (key.startsWith("status_")) statuses.set(Number(key.slice(7)), Number(value));
  let ok = 0;
  const failures: string[] = [];
  for (const [status, count] of [...statuses].sort((a, b) => a[0] - b[0])) {
    if (status >= 200 && status < 300) ok += count;
    else failures.push(`${count} × HTTP ${status}`);
  }
  for (const key of ["connect_errors", "read_errors", "write_errors", "timeouts"]) {
    if (num(key) > 0) failures.push(`${num(key)} ${key.replace("_", " ")}`);
  }
  return {
    seconds: num("duration_us") / 1e6,
    requests: num("requests"),
    statuses,
    ok,
    failures,
    p50Ms: num("p50_us") / 1000,
    p99Ms: num("p99_us") / 1000,
  };
}
