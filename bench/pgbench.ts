// pgbench's bare grant against a mesh's PostgreSQL: a ledger insert and a
// score upsert in one transaction, into copies of the ledger and scores
// tables, as a floor for what one grant costs in the database alone.
import { execFile } from "node:child_process";
import { mkdtemp, readFile, readdir, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import type { Mesh } from "../test/harness/mesh.js";

const run = promisify(execFile);
const ACTIONS = 20_000;

export interface PgbenchResult {
  throughput: number;
  transactions: number;
  p50Ms: number;
  p99Ms: number;
}

export async function pgbenchBareGrant(mesh: Mesh, options: { concurrency: number; seconds: number }): Promise<PgbenchResult> {
  const dir = await mkdtemp(join(tmpdir(), "sb-pgbench-"));
  await mesh.sql(`
    CREATE TABLE IF NOT EXISTS bench_ledger (LIKE ledger INCLUDING ALL);
    CREATE TABLE IF NOT EXISTS bench_scores (LIKE scores INCLUDING ALL);`);
  const script = join(dir, "grant.sql");
  await writeFile(
    script,
    `\\set user random(1, 1000000000)
\\set action random(1, ${ACTIONS})
BEGIN;
INSERT INTO bench_ledger (user_id, action_id, points, new_score) VALUES ('b' || :user, 'a' || :action, 10, 10) ON CONFLICT (user_id, action_id) DO NOTHING;
INSERT INTO bench_scores (user_id, score, version, updated_at) VALUES ('b' || :user, 10, 1, now())
  ON CONFLICT (user_id) DO UPDATE SET score = bench_scores.score + excluded.score, version = bench_scores.version + 1, updated_at = excluded.updated_at;
COMMIT;
`,
  );
  const bindir = (await readdir("/usr/lib/postgresql")).sort().at(-1);
  const url = new URL(mesh.databaseUrl);
  const { stdout } = await run(
    `/usr/lib/postgresql/${bindir}/bin/pgbench`,
    [
      "-n",
      "-M",
      "prepared",
      "-c",
      String(options.concurrency),
      "-j",
      "2",
      "-T",
      String(options.seconds),
      "-f",
      script,
      "-l",
      "--log-prefix",
      join(dir, "log"),
      "-h",
      url.hostname,
      "-p",
      url.port,
      "-U",
      url.username || "postgres",
      url.pathname.slice(1),
    ],
    { cwd: dir },
  );
  const tps = Number(/tps = ([\d.]+)/.exec(stdout)?.[1]);
  const transactions = Number(/number of transactions actually processed: (\d+)/.exec(stdout)?.[1]);
  const latencies: number[] = [];
  for (const file of (await readdir(dir)).filter((f) => f.startsWith("log"))) {
    for (const line of (await readFile(join(dir, file), "utf8")).split("\n")) {
      const micros = Number(line.split(" ")[2]);
      if (Number.isFinite(micros) && line) latencies.push(micros / 1000);
    }
  }
  return { throughput: tps, transactions, p50Ms: percentile(latencies, 50), p99Ms: percentile(latencies, 99) };
}

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
}
