// npm run bench:write — SubmitAction end to end over gRPC (score service,
// PostgreSQL transaction, outbox) beside pgbench running the bare equivalent
// grant (ledger insert + score upsert in one transaction) at the same
// concurrency against the same PostgreSQL, in the same run.
// Phase 1 finds each side's peak throughput (closed loop); phase 2 offers our
// service half its peak rate (open loop) and reports the latency then.
import { execFile } from "node:child_process";
import { mkdtemp, readFile, readdir, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { ScoreService } from "@scoreboard/gen/scoreboard/v1/score_pb";
import { startInfra, stopAll } from "../test/harness/infra.js";
import { startMesh } from "../test/harness/mesh.js";
import { cpuSnapshot, exitedChildrenCpuMs, ownCpuMs, perUnit } from "./process-cpu.js";

const concurrency = Number(process.env.BENCH_CONCURRENCY ?? 32);
const seconds = Number(process.env.BENCH_SECONDS ?? 10);
const ACTIONS = 20_000;
const run = promisify(execFile);

const infra = await startInfra({ durable: process.env.BENCH_PG_FSYNC !== "off" });
const mesh = await startMesh({ databaseUrl: infra.postgres.url, redisUrl: infra.redis.url, natsUrl: infra.nats.url }, { LOG_LEVEL: "warn" });

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
}

async function grantLoad(options: { ratePerS?: number; durationS: number; userPrefix: string }) {
  const transport = createGrpcTransport({ baseUrl: mesh.grpcUrls.score });
  const client = createClient(ScoreService, transport);
  const tokens = await Promise.all(Array.from({ length: concurrency }, (_, i) => mesh.token(`${options.userPrefix}${i}`)));
  const latencies: number[] = [];
  let errors = 0;
  const started = performance.now();
  const deadline = started + options.durationS * 1000;
  // Open loop: request n of a worker is due at a fixed time, whether or not
  // earlier ones were slow, so queueing shows up in the latency.
  const interval = options.ratePerS ? (1000 * concurrency) / options.ratePerS : 0;
  await Promise.all(
    tokens.map(async (token, worker) => {
      const headers = { authorization: `Bearer ${token}` };
      for (let n = 0; ; n++) {
        const due = interval ? started + worker * (interval / concurrency) + n * interval : performance.now();
        if (due >= deadline || n >= ACTIONS) return;
        const wait = due - performance.now();
        if (wait > 0) await new Promise((r) => setTimeout(r, wait));
        try {
          await client.submitAction({ actionId: `a${n + 1}` }, { headers });
          latencies.push(performance.now() - due);
        } catch {
          errors++;
        }
      }
    }),
  );
  const elapsedS = (performance.now() - started) / 1000;
  return { throughput: latencies.length / elapsedS, p50: percentile(latencies, 50), p99: percentile(latencies, 99), errors, count: latencies.length };
}

/** Score's own SubmitAction histogram (sb_rpc_duration_seconds), cumulative count per bucket bound in ms. */
async function serverBuckets(): Promise<Map<number, number>> {
  const text = await (await fetch(`${mesh.urls.score}/metrics`)).text();
  const buckets = new Map<number, number>();
  for (const m of text.matchAll(/^sb_rpc_duration_seconds_bucket\{([^}]*)\} (\d+)/gm)) {
    if (!m[1]!.includes('method="SubmitAction"')) continue;
    const le = /le="([^"]+)"/.exec(m[1]!)![1]!;
    buckets.set(le === "+Inf" ? Infinity : Number(le) * 1000, Number(m[2]));
  }
  return buckets;
}

/** The bucket bound under which a share of the calls between two scrapes were answered. */
function bucketPercentile(before: Map<number, number>, after: Map<number, number>, p: number): string {
  const bounds = [...after.keys()].sort((a, b) => a - b);
  const total = (after.get(Infinity) ?? 0) - (before.get(Infinity) ?? 0);
  const bound = bounds.find((b) => (after.get(b) ?? 0) - (before.get(b) ?? 0) >= p * total);
  return bound === undefined || bound === Infinity ? "> 10 s" : `≤ ${bound} ms`;
}

async function pgbench() {
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
    ["-n", "-M", "prepared", "-c", String(concurrency), "-j", "2", "-T", String(seconds), "-f", script, "-l", "--log-prefix", join(dir, "log"),
      "-h", url.hostname, "-p", url.port, "-U", url.username || "postgres", url.pathname.slice(1)],
    { cwd: dir },
  );
  const tps = Number(/tps = ([\d.]+)/.exec(stdout)?.[1]);
  const latencies: number[] = [];
  for (const file of (await readdir(dir)).filter((f) => f.startsWith("log"))) {
    for (const line of (await readFile(join(dir, file), "utf8")).split("\n")) {
      const micros = Number(line.split(" ")[2]);
      if (Number.isFinite(micros) && line) latencies.push(micros / 1000);
    }
  }
  return { throughput: tps, p50: percentile(latencies, 50), p99: percentile(latencies, 99) };
}

try {
  await mesh.sql(`INSERT INTO actions (action_id, points) SELECT 'a' || g, 10 FROM generate_series(1, ${ACTIONS}) g`);
  // The load generator is this process; the rest are the mesh and its stores.
  const processes = {
    score: mesh.pid("score"),
    ranking: mesh.pid("ranking"),
    push: mesh.pid("push"),
    gateway: mesh.pid("gateway"),
    postgres: infra.postgres.pid,
    redis: infra.redis.pid,
    nats: infra.nats.pid,
  };
  const cpuAtPeak = cpuSnapshot(processes, { "load generator": ownCpuMs });
  const ours = await grantLoad({ durationS: seconds, userPrefix: "peak-" });
  const peakCpu = cpuAtPeak.since();
  const cpuOfPgbench = cpuSnapshot({ postgres: infra.postgres.pid }, { pgbench: exitedChildrenCpuMs });
  const bare = await pgbench();
  const pgbenchCpu = cpuOfPgbench.since();
  const bucketsBefore = await serverBuckets();
  const half = await grantLoad({ durationS: seconds, userPrefix: "half-", ratePerS: ours.throughput / 2 });
  const bucketsAfter = await serverBuckets();
  const fmt = (n: number) => n.toFixed(1).padStart(9);
  console.log(`\nconcurrency ${concurrency}, ${seconds} s per phase, loopback, PostgreSQL of the test harness`);
  console.log(`                                   grants/s      p50 ms    p99 ms`);
  console.log(`SubmitAction over gRPC (peak)  ${fmt(ours.throughput)}   ${fmt(ours.p50)} ${fmt(ours.p99)}   errors ${ours.errors}`);
  console.log(`pgbench bare grant (peak)      ${fmt(bare.throughput)}   ${fmt(bare.p50)} ${fmt(bare.p99)}`);
  console.log(`ratio ours / pgbench           ${(ours.throughput / bare.throughput).toFixed(3).padStart(9)}`);
  console.log(`SubmitAction at half peak      ${fmt(half.throughput)}   ${fmt(half.p50)} ${fmt(half.p99)}   errors ${half.errors}`);
  // Where the time goes: score's own view of the same calls (its histogram's
  // buckets), without the load generator's client and scheduling.
  console.log(
    `  score's own answer time at half peak: p50 ${bucketPercentile(bucketsBefore, bucketsAfter, 0.5)}, p99 ${bucketPercentile(bucketsBefore, bucketsAfter, 0.99)}`,
  );
  // Where each grant's CPU went at peak (the ledger, the outbox relay, the
  // events' way to Redis and the streams): on 2 shared cores, this is the budget.
  console.log(`  CPU ms per grant at peak, ours:    ${perUnit(peakCpu, ours.throughput * seconds, seconds)}`);
  console.log(`  CPU ms per grant at peak, pgbench: ${perUnit(pgbenchCpu, bare.throughput * seconds, seconds)}`);
} finally {
  await mesh.stop();
  await stopAll();
}
