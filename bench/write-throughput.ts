// npm run bench:write — the public write path end to end: wrk drives
// POST /api/score/{user_id} {"increment":1} through the gateway (REST, token
// check, rate limits), score's gRPC AddScore and its PostgreSQL grant, the
// outbox to NATS, ranking into Redis and push, as many users. Beside it, in
// the same run, pgbench's bare grant on the same PostgreSQL.
//   1. peak: wrk closed loop, BENCH_CONCURRENCY connections;
//   2. pgbench at the same concurrency;
//   3. half the peak rate, paced (bench/wrk-post-score.lua says how).
// CPU per grant comes from /proc for every process, wrk shown apart.
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startInfra, stopAll } from "../test/harness/infra.js";
import { startMesh } from "../test/harness/mesh.js";
import { pgbenchBareGrant } from "./pgbench.js";
import { cpuSnapshot, exitedChildrenCpuMs, settled } from "./process-cpu.js";
import { bucketPercentile, rpcBuckets } from "./score-histogram.js";
import { runWrk, writeUsersFile, type WrkResult } from "./wrk.js";

const connections = Number(process.env.BENCH_CONCURRENCY ?? 32);
const seconds = Number(process.env.BENCH_SECONDS ?? 20);
const userCount = Number(process.env.BENCH_USERS ?? 2_000);
const warmupSeconds = Number(process.env.BENCH_WARMUP_SECONDS ?? 3);
// The level every process uses when LOG_LEVEL is unset (packages/platform
// config.ts) and the chart's config.logLevel: the shipped one, passed
// explicitly so the figure does not depend on the harness's choice.
const SHIPPED_LOG_LEVEL = "info";
// The two rules POST /api/score/{user_id} meets (gateway/src/rest/write-rules.ts).
// All the generator's users come from 127.0.0.1, so the per-address rule
// (600/min) would refuse them; the per-user one (100/min) would at peak rates
// above users × 100/min. The gateway has no per-user exemption, so these two
// rules are raised for everyone; the limiter still runs on every request, and
// windows stay as short as the traffic allows (the Redis sets hold what they
// would in production).
const RATE_LIMITS = {
  RATE_LIMIT_WRITES_IP: "100000/1s",
  RATE_LIMIT_SCORE_INCREMENT_USER: "100000/1m",
};

const infra = await startInfra({ durable: true });
const mesh = await startMesh(
  { databaseUrl: infra.postgres.url, redisUrl: infra.redis.url, natsUrl: infra.nats.url },
  { LOG_LEVEL: SHIPPED_LOG_LEVEL, ...RATE_LIMITS },
);

/** fsync, synchronous_commit and full_page_writes as the bench's PostgreSQL runs them; throws unless all are on. */
async function durability(): Promise<string> {
  const settings = await mesh.sql<{ name: string; setting: string }>(
    "SELECT name, setting FROM pg_settings WHERE name IN ('fsync', 'synchronous_commit', 'full_page_writes') ORDER BY name",
  );
  const text = settings.map((s) => `${s.name}=${s.setting}`).join(" ");
  if (settings.length !== 3 || settings.some((s) => s.setting !== "on")) throw new Error(`PostgreSQL is not durable: ${text}`);
  return text;
}

const fmt = (n: number, width = 9, digits = 1) => n.toFixed(digits).padStart(width);
const rate = (r: WrkResult) => r.ok / r.seconds;
const failuresOf = (r: WrkResult) => (r.failures.length ? `NOT 2xx: ${r.failures.join(", ")}` : "all 2xx");

try {
  const pgSettings = await durability();
  const dir = await mkdtemp(join(tmpdir(), "sb-bench-write-"));
  const usersFile = join(dir, "users.lua");
  const users = await Promise.all(Array.from({ length: userCount }, async (_, i) => ({ userId: `bench-u${i}`, token: await mesh.token(`bench-u${i}`) })));
  await writeUsersFile(usersFile, users);

  const processes = {
    gateway: mesh.pid("gateway"),
    score: mesh.pid("score"),
    ranking: mesh.pid("ranking"),
    push: mesh.pid("push"),
    postgres: infra.postgres.pid!,
    redis: infra.redis.pid!,
    nats: infra.nats.pid!,
  };
  const meshPids = Object.values(processes);
  const wrk = { baseUrl: mesh.urls.gateway, usersFile, connections, threads: 2 };

  // JIT, pools and first-touch costs before anything is counted.
  const warmup = await runWrk({ ...wrk, seconds: warmupSeconds });
  await settled(meshPids);

  const peakCpu = cpuSnapshot(processes);
  const peak = await runWrk({ ...wrk, seconds });
  // The grants' events still in flight (outbox, ranking, push) belong to them.
  await settled(meshPids);
  const peakMs = peakCpu.since();

  const pgbenchCpu = cpuSnapshot({ postgres: infra.postgres.pid! }, { pgbench: exitedChildrenCpuMs });
  const bare = await pgbenchBareGrant(mesh, { concurrency: connections, seconds });
  const bareMs = pgbenchCpu.since();

  const bucketsBefore = await rpcBuckets(`${mesh.urls.score}/metrics`, "AddScore");
  const half = await runWrk({ ...wrk, seconds, ratePerS: rate(peak) / 2 });
  const bucketsAfter = await rpcBuckets(`${mesh.urls.score}/metrics`, "AddScore");
  await settled(meshPids);

  // Every acknowledged grant is in PostgreSQL: the figures count real grants.
  const [stored] = await mesh.sql<{ total: string }>("SELECT coalesce(sum(score), 0)::text AS total FROM scores WHERE user_id LIKE 'bench-u%'");
  const acknowledged = warmup.ok + peak.ok + half.ok;

  console.log(
    `\nPOST /api/score/{user_id} {"increment":1} through the gateway: REST → score (gRPC AddScore, PostgreSQL grant + outbox) → NATS → ranking (Redis), push`,
  );
  console.log(
    `config: LOG_LEVEL=${SHIPPED_LOG_LEVEL} (the shipped default); PostgreSQL ${pgSettings}; ${Object.entries(RATE_LIMITS)
      .map(([k, v]) => `${k}=${v}`)
      .join(", ")}, other limits as shipped`,
  );
  console.log(
    `load: wrk, ${userCount} users (one at random per request, its own token and path), ${connections} connections, ${seconds} s per phase after ${warmupSeconds} s warm-up, loopback`,
  );
  const row = (label: string, grants: number, p50: number, p99: number, note = "") =>
    console.log(`${label.padEnd(44)}${fmt(grants)} ${fmt(p50)} ${fmt(p99)}   ${note}`);
  console.log(`\n${"".padEnd(44)}${"grants/s".padStart(9)} ${"p50 ms".padStart(9)} ${"p99 ms".padStart(9)}`);
  row("peak, wrk closed loop", rate(peak), peak.p50Ms, peak.p99Ms, failuresOf(peak));
  row("half peak, paced, latency from due time", rate(half), half.p50Ms, half.p99Ms, `${failuresOf(half)} (target ${(rate(peak) / 2).toFixed(0)}/s)`);
  row(`pgbench bare grant, ${connections} clients`, bare.throughput, bare.p50Ms, bare.p99Ms);
  console.log(
    `  score's own AddScore answer time at half peak (its histogram): p50 ${bucketPercentile(bucketsBefore, bucketsAfter, 0.5)}, p99 ${bucketPercentile(bucketsBefore, bucketsAfter, 0.99)}`,
  );
  // wrk stops counting with requests still in flight (at most one per
  // connection per phase): those are granted but not acknowledged to it.
  const unacknowledged = Number(stored?.total) - acknowledged;
  const consistent = unacknowledged >= 0 && unacknowledged <= 3 * connections;
  console.log(
    `  grants acknowledged (2xx, all phases) ${acknowledged}, points in PostgreSQL ${stored?.total}` +
      (consistent ? ` (${unacknowledged} in flight when wrk stopped)` : "  MISMATCH: acknowledged grants are missing or extra"),
  );
  if (warmup.failures.length) console.log(`  warm-up: ${failuresOf(warmup)}`);

  // Where each grant's CPU went at peak, until the mesh was idle again.
  const grants = peak.ok;
  const meshMs = Object.values(peakMs).reduce((a, b) => a + b, 0);
  const bareTotalMs = bareMs.postgres! + bareMs.pgbench!;
  console.log(`\nCPU ms per grant at peak (${grants} grants; /proc utime+stime, PostgreSQL with its reaped backends)`);
  for (const [name, ms] of Object.entries(peakMs)) console.log(`  ${name.padEnd(22)}${fmt(ms / grants, 8, 3)}`);
  console.log(`  ${"mesh total".padEnd(22)}${fmt(meshMs / grants, 8, 3)}   (${(meshMs / (peak.seconds * 10)).toFixed(0)}% of one core over the phase)`);
  console.log(`  ${"load generator (wrk)".padEnd(22)}${fmt(peak.cpuMs / grants, 8, 3)}`);
  console.log(
    `pgbench bare grant: PostgreSQL ${(bareMs.postgres! / bare.transactions).toFixed(3)} + pgbench ${(bareMs.pgbench! / bare.transactions).toFixed(3)} = ${(bareTotalMs / bare.transactions).toFixed(3)} ms per grant`,
  );
  const ratio = bareTotalMs / bare.transactions / (meshMs / grants);
  console.log(`ratio pgbench CPU per grant ÷ mesh CPU per grant: ${ratio.toFixed(3)} (the mesh spends ${(1 / ratio).toFixed(1)}× the bare grant's CPU)`);
} finally {
  await mesh.stop();
  await stopAll();
}
