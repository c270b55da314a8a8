// npm run bench:standings — players watching their own standing while the
// board moves under them. A board ("global") of BENCH_USERS users (default
// 100,000: seeded in PostgreSQL, then ranking's own rebuild into Redis, as
// bench:rebuild), BENCH_WATCHERS standing watchers of as many distinct users
// (default 10,000, each with its own token: half SSE, each on its own
// HTTP/1.1 connection, half LiveService.WatchStanding over Connect on HTTP/2,
// BENCH_STREAMS_PER_CONNECTION streams per connection), then
// BENCH_GRANTS_PER_S grants (default 500) to random users of the board for
// BENCH_SECONDS (default 20), each +1..BENCH_INCREMENT_MAX points (default 5,
// the shipped SCORE_MAX_INCREMENT: it passes that many users, whose ranks
// change). Watchers ask for BENCH_AROUND neighbours (default 2).
//
// Prints: time to connect the watchers (until each had its first standing);
// delivered standing messages/s, total and per protocol; latency from a
// grant's 200 to the granted user's own watcher showing it (the first
// standing whose score reaches the score the grant returned), and grants to
// watched users not seen within 5 s; gateway and push memory per watcher
// (VmRSS and V8 heap from /metrics, with the watchers open minus before; the
// SSE half opens first, so each protocol's share is measured too);
// CPU ms per delivered message per process from /proc, the load generator
// (this process: the grant driver and every watcher) apart; the gateway's
// merge interval. Grants are paced by a fixed-rate driver in this process
// (wrk's -R is not in Debian's wrk): grant i is due at start + i / rate,
// whatever the earlier ones' answers, on a keep-alive pool, and its answer
// time is counted from when it was due.
import { readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { join } from "node:path";
import { loadavg, tmpdir } from "node:os";
import { bundleDeployable, bundleEntries, type Deployable } from "../scripts/bundle.js";
import { Redis } from "ioredis";
import { REBUILT_MARKER } from "../services/ranking/src/rebuild.js";
import { startInfra, stopAll } from "../test/harness/infra.js";
import { LeanHttp2Connection } from "../test/harness/lean-h2.js";
import { startMesh } from "../test/harness/mesh.js";
import { cpuSnapshot, ownCpuMs, settled } from "./process-cpu.js";
import { counterValue, type ProcessMemory, processMemory } from "./process-metrics.js";
import { GRANT_SOCKETS, type GrantPlan, runGrants } from "./paced-grants.js";
import { type Closable, connectWatcher, sseWatcher } from "./standing-watchers.js";

const users = Number(process.env.BENCH_USERS ?? 100_000);
const watcherCount = Math.min(users, Number(process.env.BENCH_WATCHERS ?? 10_000));
const grantsPerSecond = Number(process.env.BENCH_GRANTS_PER_S ?? 500);
const seconds = Number(process.env.BENCH_SECONDS ?? 20);
const around = Number(process.env.BENCH_AROUND ?? 2);
const incrementMax = Number(process.env.BENCH_INCREMENT_MAX ?? 5);
const streamsPerConnection = Number(process.env.BENCH_STREAMS_PER_CONNECTION ?? 100);
const BOARD = "global";
const WARMUP_SECONDS = 3;
/** The same grants without watchers, for what they cost alone. */
const BASELINE_SECONDS = 5;
const SEEN_WITHIN_MS = 5_000;
const CONNECT_TIMEOUT_MS = 120_000;
/** Watchers opening at once (not yet sent their first standing): more would only fill the listen backlog. */
const OPENING_AT_ONCE = 500;
const TARGET_P99_MS = 250;
const TARGET_KIB_PER_WATCHER = 10;

// The processes run their image bundles (scripts/bundle.ts), as deployed.
// Under tsx (BENCH_SOURCES=1) every function carries a `name` property from
// esbuild's keepNames, which puts each closure in dictionary mode: ~1 KiB
// more per watcher in the gateway than its image spends.
const bundles = process.env.BENCH_SOURCES ? undefined : await mkdtemp(join(tmpdir(), "sb-bench-standings-"));
if (bundles) for (const name of Object.keys(bundleEntries) as Deployable[]) await bundleDeployable(name, join(bundles, name));
const infra = await startInfra();
const mesh = await startMesh(
  { databaseUrl: infra.postgres.url, redisUrl: infra.redis.url, natsUrl: infra.nats.url },
  {
    LOG_LEVEL: "warn",
    // One address (127.0.0.1) makes every grant and opens every stream: the
    // per-address write rule and per-user increment rule are raised (as in
    // bench:write), and the per-address connection and stream caps lifted (as
    // for Envoy's address behind a proxy).
    RATE_LIMIT_WRITES_IP: "100000/1s",
    RATE_LIMIT_SCORE_INCREMENT_USER: "100000/1m",
    GATEWAY_MAX_CONNECTIONS_PER_IP: "0",
    GATEWAY_MAX_STREAMS_PER_IP: "0",
    ...(incrementMax > 5 ? { SCORE_MAX_INCREMENT: String(incrementMax) } : {}),
  },
  { bundles },
);
const redis = new Redis(infra.redis.url);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const percentile = (v: number[], p: number) => [...v].sort((a, b) => a - b)[Math.min(v.length - 1, Math.floor(p * v.length))] ?? Number.NaN;
const ms = (n: number) => `${n.toFixed(1)} ms`;

/** One of the gateway's standing-watcher defaults (intervalMs: the merge interval; sweepMs), as its source states it. */
function standingsDefault(option: "intervalMs" | "sweepMs"): string {
  const source = readFileSync(new URL("../gateway/src/streaming/standings.ts", import.meta.url), "utf8");
  return new RegExp(`DEFAULTS[^=]*=\\s*\\{[^}]*${option}:\\s*([\\d_]+)`).exec(source)?.[1]?.replace(/_/g, "") ?? "unknown";
}

/** Throws, with its last words, if a mesh process has exited: the figures would mean nothing. */
function checkAlive(): void {
  for (const name of ["score", "ranking", "push", "gateway"] as const) {
    let state: string | undefined;
    try {
      state = /State:\s+(\w)/.exec(readFileSync(`/proc/${mesh.pid(name)}/status`, "utf8"))?.[1];
    } catch {
      // gone
    }
    if (state === undefined || state === "Z") throw new Error(`${name} exited:\n${mesh.logs[name].slice(-15).join("\n")}`);
  }
}

type Kind = "sse" | "connect";
type Memory = Record<"gateway" | "push", ProcessMemory>;
interface Watched {
  userId: string;
  kind: Kind;
  token: string;
  /** The score the last standing showed (-1 before the first, or without an entry). */
  lastScore: number;
  firstAt: number | undefined;
  failure: string | undefined;
  /** Grants answered and not yet seen: the score each returned, and when. */
  pending: { score: number; answeredAt: number }[];
  stream: Closable | undefined;
}

const watchers = new Map<string, Watched>();
const delivered: Record<Kind, number> = { sse: 0, connect: 0 };
let latencies: Record<Kind, number[]> = { sse: [], connect: [] };
let seenBeforeAnswer = 0;
/** BENCH_DEBUG: each grant seen, when it was answered, to tell a periodic stall from a steady tail. */
const seenAt: { answeredAt: number; ms: number }[] = [];
let connected = 0;
let failed = 0;

function standingSeen(w: Watched, score: number | undefined): void {
  const now = performance.now();
  delivered[w.kind] += 1;
  if (w.firstAt === undefined) {
    w.firstAt = now;
    connected += 1;
  }
  if (score === undefined) return;
  w.lastScore = score;
  if (w.pending.length === 0) return;
  w.pending = w.pending.filter((p) => {
    if (p.score > score) return true;
    latencies[w.kind].push(now - p.answeredAt);
    if (process.env.BENCH_DEBUG) seenAt.push({ answeredAt: p.answeredAt, ms: now - p.answeredAt });
    return false;
  });
}

function grantAnswered(userId: string, newScore: number): void {
  const w = watchers.get(userId);
  if (!w || w.failure) return;
  // The stream may have shown it before this process read the 200.
  if (w.lastScore >= newScore) {
    seenBeforeAnswer += 1;
    latencies[w.kind].push(0);
  } else w.pending.push({ score: newScore, answeredAt: performance.now() });
}

/** `count` distinct users of u1..u`users`, in random order. */
function sampleUsers(count: number): string[] {
  const ids = Array.from({ length: users }, (_, i) => i + 1);
  for (let i = 0; i < count; i++) {
    const j = i + Math.floor(Math.random() * (users - i));
    [ids[i], ids[j]] = [ids[j]!, ids[i]!];
  }
  return ids.slice(0, count).map((n) => `u${n}`);
}

const tokens = new Map<string, string>();
const tokenOf = (userId: string) => tokens.get(userId)!;
async function tokensFor(userIds: string[]): Promise<void> {
  const missing = [...new Set(userIds)].filter((u) => !tokens.has(u));
  for (let i = 0; i < missing.length; i += 1_000) {
    await Promise.all(missing.slice(i, i + 1_000).map(async (u) => tokens.set(u, await mesh.token(u))));
  }
}

/**
 * Seeds the board in PostgreSQL and lets ranking rebuild Redis from it, as it
 * does when it finds Redis empty: Redis is flushed and its clients dropped,
 * and ranking's reconnect finds no rebuild marker. (Restarting ranking instead
 * would free its ports for a moment, for any other process to take.)
 */
async function seedBoard(): Promise<void> {
  let t = performance.now();
  // Scores 1,000..1,000 + users - 1, each once (7,919 is prime, so coprime with
  // any board size but its multiples): a +k grant passes k users.
  await mesh.sql(`INSERT INTO users (user_id, username) SELECT 'u' || g, 'User ' || g FROM generate_series(1, ${users}) g`);
  await mesh.sql(`INSERT INTO scores (user_id, score, version) SELECT 'u' || g, 1000 + (g::bigint * 7919) % ${users}, 1 FROM generate_series(1, ${users}) g`);
  console.log(`seeded ${users} users in PostgreSQL in ${ms(performance.now() - t)}`);
  t = performance.now();
  await redis.flushall();
  await redis.client("KILL", "TYPE", "normal", "SKIPME", "yes");
  const deadline = Date.now() + 300_000;
  while (!(await redis.exists(REBUILT_MARKER))) {
    if (Date.now() > deadline) throw new Error("ranking did not rebuild the board within 300 s");
    await sleep(100);
  }
  console.log(`ranking rebuilt Redis from it in ${ms(performance.now() - t)}`);
}

/**
 * Opens a watcher of `kind` for each user, at most OPENING_AT_ONCE at a time;
 * resolves when each had its first standing or failed, with the seconds that
 * took. Connect watchers share HTTP/2 connections, added to `connections`.
 */
async function openWatchers(userIds: string[], kind: Kind, connections: LeanHttp2Connection[]): Promise<number> {
  const gateway = mesh.urls.gateway;
  const started = performance.now();
  const deadline = Date.now() + CONNECT_TIMEOUT_MS;
  const done = connected + failed;
  const settledHere = () => connected + failed - done;
  const opened: Watched[] = [];
  for (const [i, userId] of userIds.entries()) {
    while (i - settledHere() >= OPENING_AT_ONCE && Date.now() < deadline) {
      checkAlive();
      await sleep(2);
    }
    const w: Watched = { userId, kind, token: tokenOf(userId), lastScore: -1, firstAt: undefined, failure: undefined, pending: [], stream: undefined };
    watchers.set(userId, w);
    opened.push(w);
    const events = {
      standing: (score: number | undefined) => standingSeen(w, score),
      failed: (reason: string) => {
        if (w.failure) return;
        w.failure = reason;
        failed += 1;
      },
    };
    if (kind === "sse") {
      w.stream = sseWatcher(gateway, BOARD, around, w.token, events);
    } else {
      const c = Math.floor(i / streamsPerConnection);
      if (!connections[c]) {
        connections[c] = new LeanHttp2Connection(gateway);
        await connections[c].ready;
      }
      w.stream = connectWatcher(connections[c], gateway, BOARD, around, w.token, events);
    }
  }
  while (settledHere() < userIds.length && Date.now() < deadline) {
    checkAlive();
    await sleep(10);
  }
  return (Math.max(started, ...opened.map((w) => w.firstAt ?? 0)) - started) / 1000;
}

const planGrants = (count: number): GrantPlan =>
  Array.from({ length: count }, () => ({ userId: `u${1 + Math.floor(Math.random() * users)}`, increment: 1 + Math.floor(Math.random() * incrementMax) }));

const groupCounts = (reasons: Iterable<string>) => {
  const counts = new Map<string, number>();
  for (const r of reasons) counts.set(r, (counts.get(r) ?? 0) + 1);
  return [...counts].map(([r, n]) => `${n} × ${r}`).join("; ");
};

const connections: LeanHttp2Connection[] = [];
try {
  const load = () =>
    loadavg()
      .map((l) => l.toFixed(2))
      .join(" ");
  console.log(`load average at start: ${load()}`);
  await seedBoard();
  const watched = sampleUsers(watcherCount);
  const warmup = planGrants(WARMUP_SECONDS * grantsPerSecond);
  const baseline = planGrants(BASELINE_SECONDS * grantsPerSecond);
  const plan = planGrants(seconds * grantsPerSecond);
  await tokensFor([...watched, ...[...warmup, ...baseline, ...plan].map((g) => g.userId)]);
  const grantsOf = (grants: GrantPlan) => runGrants({ gateway: mesh.urls.gateway, plan: grants, ratePerS: grantsPerSecond, tokenOf, answered: grantAnswered });

  const processes = {
    gateway: mesh.pid("gateway"),
    push: mesh.pid("push"),
    ranking: mesh.pid("ranking"),
    score: mesh.pid("score"),
    redis: infra.redis.pid!,
    postgres: infra.postgres.pid!,
    nats: infra.nats.pid!,
  };
  // JIT, pools and the board's first moves before anything is counted.
  const warm = await grantsOf(warmup);
  await settled(Object.values(processes));
  const baselineCpu = cpuSnapshot(processes, { "load generator": ownCpuMs });
  const alone = await grantsOf(baseline);
  await sleep(1_000);
  const baselineMs = baselineCpu.since();
  await settled(Object.values(processes));
  checkAlive();
  const memory = () => processMemory({ gateway: { pid: mesh.pid("gateway"), url: mesh.urls.gateway }, push: { pid: mesh.pid("push"), url: mesh.urls.push } });
  const before = await memory();

  // One protocol, then the other: the memory each costs is measured apart.
  const sseUsers = watched.filter((_, i) => i % 2 === 0);
  const connectUsers = watched.filter((_, i) => i % 2 === 1);
  const sseSeconds = await openWatchers(sseUsers, "sse", connections);
  await sleep(1_000);
  const withSse = await memory();
  const connectSeconds = await openWatchers(connectUsers, "connect", connections);
  await sleep(1_000);
  const open = await memory();

  // What the grants cause, from here on.
  latencies = { sse: [], connect: [] };
  seenBeforeAnswer = 0;
  delivered.sse = 0;
  delivered.connect = 0;
  for (const w of watchers.values()) w.pending = [];
  const readsBefore = await counterValue(mesh.urls.gateway, "sb_standing_reads_total");
  const cpu = cpuSnapshot(processes, { "load generator": ownCpuMs });
  const started = performance.now();
  const grants = await grantsOf(plan);
  await sleep(1_000); // the last grants' standings, one merge interval and more after them
  const windowS = (performance.now() - started) / 1000;
  const cpuMs = cpu.since();
  checkAlive();
  const reads = (await counterValue(mesh.urls.gateway, "sb_standing_reads_total")) - readsBefore;
  const messages = { ...delivered };
  const total = messages.sse + messages.connect;
  const waitUntil = Date.now() + SEEN_WITHIN_MS;
  while ([...watchers.values()].some((w) => w.pending.length > 0) && Date.now() < waitUntil) await sleep(50);
  const all = [...latencies.sse, ...latencies.connect];
  const stillPending = [...watchers.values()].reduce((n, w) => n + w.pending.length, 0);
  const unseen = stillPending + all.filter((l) => l > SEEN_WITHIN_MS).length;
  const grantsToWatched = all.length + stillPending;

  const sseCount = Math.ceil(watcherCount / 2);
  console.log(
    `\nboard "${BOARD}", ${users} users; ${watcherCount} standing watchers of distinct users, around=${around}: ${sseCount} SSE (a HTTP/1.1 connection each), ${watcherCount - sseCount} Connect WatchStanding (binary, HTTP/2, ${streamsPerConnection} streams per connection: ${connections.length} connections); one gateway (${bundles ? "image bundles" : "sources under tsx"})`,
  );
  console.log(
    `grants: POST /api/score/{user} +1..${incrementMax} to random users, ${grantsPerSecond}/s for ${seconds} s, fixed-rate driver in this process (grant i due at start + i/${grantsPerSecond} s, keep-alive pool of ${GRANT_SOCKETS})`,
  );
  console.log(
    `merge interval: ${standingsDefault("intervalMs")} ms (gateway/src/streaming/standings.ts DEFAULTS.intervalMs; every standing is also re-read once per ${standingsDefault("sweepMs")} ms, the sweep)`,
  );
  const connectedOf = (kind: Kind) => [...watchers.values()].filter((w) => w.kind === kind && w.firstAt !== undefined).length;
  console.log(
    `\nwatchers connected               ${connected} of ${watcherCount}: SSE ${connectedOf("sse")} in ${sseSeconds.toFixed(1)} s, then Connect ${connectedOf("connect")} in ${connectSeconds.toFixed(1)} s (until each had its first standing)`,
  );
  const failures = [...watchers.values()].filter((w) => w.failure).map((w) => `${w.kind}: ${w.failure}`);
  if (failures.length > 0) console.log(`  watchers failed: ${groupCounts(failures)}`);
  console.log(
    `grants                           ${grants.ok} answered 200 of ${grants.sent} in ${grants.seconds.toFixed(1)} s (${(grants.ok / grants.seconds).toFixed(0)}/s); answer from due time p50 ${ms(percentile(grants.answerMs, 0.5))} p99 ${ms(percentile(grants.answerMs, 0.99))}`,
  );
  if (grants.failures.size > 0) console.log(`  grants failed: ${[...grants.failures].map(([r, n]) => `${n} × ${r}`).join("; ")}`);
  for (const [phase, run] of [
    ["warm-up", warm],
    ["without watchers", alone],
  ] as const) {
    if (run.failures.size > 0) console.log(`  ${phase} grants failed: ${[...run.failures].map(([r, n]) => `${n} × ${r}`).join("; ")}`);
  }
  console.log(
    `delivered standing messages/s    ${(total / windowS).toFixed(0)} (SSE ${(messages.sse / windowS).toFixed(0)}, Connect ${(messages.connect / windowS).toFixed(0)}; ${total} in ${windowS.toFixed(1)} s)`,
  );
  console.log(
    `standings the gateway re-read     ${reads} (${(reads / windowS).toFixed(0)}/s: those a move spanned, and the sweep's, every standing once per sweep interval)`,
  );
  const p99 = percentile(all, 0.99);
  console.log(
    `grant 200 -> own watcher         p50 ${ms(percentile(all, 0.5))}  p99 ${ms(p99)}  max ${ms(percentile(all, 1))}  (target p99 <= ${TARGET_P99_MS} ms: ${p99 <= TARGET_P99_MS ? "met" : "MISSED"})`,
  );
  for (const kind of ["sse", "connect"] as const) {
    const l = latencies[kind];
    console.log(
      `  ${kind === "sse" ? "SSE    " : "Connect"} p50 ${ms(percentile(l, 0.5))}  p99 ${ms(percentile(l, 0.99))}  max ${ms(percentile(l, 1))} (${l.length} grants)`,
    );
  }
  console.log(
    `  grants to watched users ${grantsToWatched}; seen before their 200 was read ${seenBeforeAnswer} (counted as 0 ms); never seen within ${SEEN_WITHIN_MS / 1000} s: ${unseen}`,
  );
  const kib = (from: Memory, to: Memory, name: keyof Memory, count: number) =>
    `RSS ${(((to[name].rssMiB - from[name].rssMiB) * 1024) / count).toFixed(2)} KiB, V8 heap used ${(((to[name].heapMiB - from[name].heapMiB) * 1024) / count).toFixed(2)} KiB`;
  for (const name of ["gateway", "push"] as const) {
    const worst = (Math.max(open[name].rssMiB - before[name].rssMiB, open[name].heapMiB - before[name].heapMiB) * 1024) / watcherCount;
    console.log(
      `${`${name} memory per watcher`.padEnd(33)}${kib(before, open, name, watcherCount)}  (target <= ${TARGET_KIB_PER_WATCHER} KiB: ${worst <= TARGET_KIB_PER_WATCHER ? "met" : "MISSED"})`,
    );
    console.log(`  per SSE watcher ${kib(before, withSse, name, sseUsers.length)}; per Connect watcher ${kib(withSse, open, name, connectUsers.length)}`);
    console.log(
      `  RSS ${before[name].rssMiB.toFixed(0)} -> ${withSse[name].rssMiB.toFixed(0)} -> ${open[name].rssMiB.toFixed(0)} MiB, heap used ${before[name].heapMiB.toFixed(0)} -> ${withSse[name].heapMiB.toFixed(0)} -> ${open[name].heapMiB.toFixed(0)} MiB`,
    );
  }
  console.log(
    `\nCPU by process (/proc utime+stime) over the grants with watchers (${total} messages, ${grants.ok} grants, ${windowS.toFixed(1)} s) and without (${alone.ok} grants)`,
  );
  console.log(`${"".padEnd(24)}${"ms/message".padStart(11)}${"ms/grant".padStart(10)}${"% core".padStart(8)}${"ms/grant without watchers".padStart(27)}`);
  const row = (name: string, used: number, usedAlone: number) =>
    console.log(
      `  ${name.padEnd(22)}${(used / total).toFixed(4).padStart(11)}${(used / grants.ok).toFixed(3).padStart(10)}${`${(used / (windowS * 10)).toFixed(0)}%`.padStart(8)}${(usedAlone / alone.ok).toFixed(3).padStart(27)}`,
    );
  for (const [name, used] of Object.entries(cpuMs)) row(name, used, baselineMs[name]!);
  const meshOf = (cpu: Record<string, number>) => Object.entries(cpu).reduce((sum, [name, used]) => (name === "load generator" ? sum : sum + used), 0);
  row("mesh total", meshOf(cpuMs), meshOf(baselineMs));
  if (process.env.BENCH_DEBUG) {
    console.log("\nBENCH_DEBUG: grant 200 -> own watcher by the second the grant was answered in (from the phase's start)");
    for (let second = 0; second <= Math.ceil(windowS); second++) {
      const l = seenAt.filter((x) => Math.floor((x.answeredAt - started) / 1000) === second).map((x) => x.ms);
      if (l.length > 0) console.log(`  ${String(second).padStart(3)} s: n ${l.length} p50 ${ms(percentile(l, 0.5))} max ${ms(percentile(l, 1))}`);
    }
  }
  console.log(`load average at the end: ${load()}`);
} finally {
  if (process.env.BENCH_DEBUG) for (const [name, lines] of Object.entries(mesh.logs)) console.log(`--- ${name}\n${lines.slice(-15).join("\n")}`);
  for (const w of watchers.values()) w.stream?.close();
  for (const c of connections) c.close();
  redis.disconnect();
  await mesh.stop();
  await stopAll();
  if (bundles) await rm(bundles, { recursive: true, force: true });
}
