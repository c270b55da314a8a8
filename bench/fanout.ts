// npm run bench:fanout — BENCH_SUBSCRIBERS stream subscribers on the gateway
// (default 10,000: half SSE, half Connect WatchLeaderboard) while grants change
// the top 10 at a steady rate. Prints delivered messages/s, latency from a
// grant's 200 to delivery (p50/p99 over every subscriber), and the gateway's
// and push's resident memory per subscriber. Beside it, in the same run: the
// latency of the same grants seen by a single subscriber before the crowd
// connects.
//
// The crowd connects two ways, one after the other (BENCH_TRANSPORTS picks):
// - "h1": each subscriber on its own HTTP/1.1 connection, as browsers reaching
//   a gateway directly: one socket write per subscriber per change.
// - "h2": subscribers multiplexed BENCH_STREAMS_PER_CONNECTION (default 100)
//   streams per HTTP/2 connection, as the gateway sees them in Kubernetes:
//   clients speak to Envoy, whose "gateway" cluster carries every SSE and
//   Connect stream over HTTP/2, a connection per Envoy worker and gateway pod
//   (charts/scoreboard/templates/envoy-config.yaml); 100 per connection
//   is fewer streams per connection than that.
// BENCH_DEBUG=1 also prints the slowest changes (first, median and last delivery).
// Every subscriber is read by a lean client (raw HTTP/1.1 bodies, or
// test/harness/lean-h2.ts) so that ten thousand receivers in this one process
// measure the gateway rather than Node's HTTP clients.
import http from "node:http";
import { readFileSync } from "node:fs";
import { availableParallelism } from "node:os";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { LeaderboardUpdateSchema, WatchLeaderboardRequestSchema } from "@scoreboard/gen/scoreboard/v1/push_pb";
import { startInfra, stopAll } from "../test/harness/infra.js";
import { startMesh } from "../test/harness/mesh.js";
import { LeanHttp2Connection } from "../test/harness/lean-h2.js";

const subscribers = Number(process.env.BENCH_SUBSCRIBERS ?? 10_000);
const grantsPerSecond = Number(process.env.BENCH_GRANTS_PER_S ?? 5);
const seconds = Number(process.env.BENCH_SECONDS ?? 10);
// Gateway replicas the subscribers are spread over (as a Service would); by
// default one per core, as the gateway's HPA would run them on this machine.
const gatewayCount = Number(process.env.BENCH_GATEWAYS ?? availableParallelism());
const transports = (process.env.BENCH_TRANSPORTS ?? "h1,h2").split(",").map((t) => t.trim()) as Transport[];
const streamsPerConnection = Number(process.env.BENCH_STREAMS_PER_CONNECTION ?? 100);
type Transport = "h1" | "h2";
type Kind = "sse" | "connect";

const infra = await startInfra();
const mesh = await startMesh(
  { databaseUrl: infra.postgres.url, redisUrl: infra.redis.url, natsUrl: infra.nats.url },
  {
    LOG_LEVEL: "warn",
    RATE_LIMIT_ACTIONS_USER: "100000/1m",
    RATE_LIMIT_WRITES_IP: "100000/1m",
    // Every subscriber connects from 127.0.0.1: the per-address caps (256
    // connections, 32 streams) would refuse the crowd, as behind Envoy they
    // are lifted for the proxy's address too.
    GATEWAY_MAX_CONNECTIONS_PER_IP: "0",
    GATEWAY_MAX_STREAMS_PER_IP: "0",
  },
);
const rssMb = (pid: number) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))![1]) / 1024;
const percentile = (v: number[], p: number) => [...v].sort((a, b) => a - b)[Math.min(v.length - 1, Math.floor(p * v.length))] ?? NaN;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Marks by the score each grant should produce: the key every subscriber waits for. */
const expected = new Map<number, number>(); // score → time the grant was answered
const latencies: number[] = [];
let delivered = 0;
const seen = (score: number) => {
  delivered++;
  const answeredAt = expected.get(score);
  if (answeredAt !== undefined) {
    latencies.push(performance.now() - answeredAt);
    changesSeen.add(score);
    if (process.env.BENCH_DEBUG) (perChange.get(score) ?? perChange.set(score, []).get(score)!).push(performance.now() - answeredAt);
  }
};
const changesSeen = new Set<number>();
const perChange = new Map<number, number[]>();

// Every SSE stream is sent the same event bytes, so a chunk that is exactly
// one whole event is parsed once for all of them (same bytes, same answer).
const parsedEvents = new Map<string, number | undefined>();
function leaderScoreIn(event: string): number | undefined {
  const match = /"userId":"leader","score":(\d+)/.exec(event);
  return match ? Number(match[1]) : undefined;
}

/** Calls `seen` once per new leader score in an SSE body, fed chunk by chunk. */
function sseReader(): (chunk: Buffer) => void {
  let buffer = "";
  let last = -1;
  const see = (score: number | undefined) => {
    if (score !== undefined && score !== last) {
      last = score;
      seen(score);
    }
  };
  return (chunk) => {
    const text = chunk.toString("latin1");
    if (buffer === "" && text.indexOf("\n\n") === text.length - 2) {
      if (!parsedEvents.has(text)) {
        if (parsedEvents.size > 10_000) parsedEvents.clear();
        parsedEvents.set(text, leaderScoreIn(text));
      }
      see(parsedEvents.get(text));
      return;
    }
    buffer += text;
    for (let end = buffer.indexOf("\n\n"); end >= 0; end = buffer.indexOf("\n\n")) {
      see(leaderScoreIn(buffer.slice(0, end)));
      buffer = buffer.slice(end + 2);
    }
  };
}

// Every stream of a feed is sent the same bytes but for its own sequence
// number, so identical messages are decoded once: exact bytes in, the same
// answer out, without ten thousand protobuf decodes per change.
const decoded = new Map<string, number | undefined>();
function leaderScoreOf(message: Buffer): number | undefined {
  const key = message.toString("latin1");
  if (decoded.has(key)) return decoded.get(key);
  const leader = fromBinary(LeaderboardUpdateSchema, message).entries.find((e) => e.userId === "leader");
  const score = leader ? Number(leader.score) : undefined;
  if (decoded.size > 10_000) decoded.clear();
  decoded.set(key, score);
  return score;
}

/** Calls `seen` once per new leader score in a Connect stream body (enveloped LeaderboardUpdates). */
function envelopeReader(): (chunk: Buffer) => void {
  let buffer: Buffer = Buffer.alloc(0);
  let last = -1;
  return (chunk) => {
    buffer = buffer.length === 0 ? chunk : Buffer.concat([buffer, chunk]);
    while (buffer.length >= 5 && buffer.length >= 5 + buffer.readUInt32BE(1)) {
      const end = 5 + buffer.readUInt32BE(1);
      if (buffer[0] === 0) {
        const score = leaderScoreOf(buffer.subarray(5, end));
        if (score !== undefined && score !== last) {
          last = score;
          seen(last);
        }
      }
      buffer = buffer.subarray(end);
    }
  };
}

const watchRequest = (() => {
  const message = toBinary(WatchLeaderboardRequestSchema, create(WatchLeaderboardRequestSchema, { limit: 10 }));
  const frame = Buffer.alloc(5 + message.length);
  frame.writeUInt32BE(message.length, 1);
  frame.set(message, 5);
  return frame;
})();
const SSE_PATH = "/api/leaderboard/stream";
const WATCH_PATH = "/scoreboard.v1.PushService/WatchLeaderboard";
const CONNECT_HEADERS = { "content-type": "application/connect+proto", "connect-protocol-version": "1" };

interface Closable {
  close(): void;
}

/** A subscriber on its own HTTP/1.1 connection; the body is read straight off the response. */
function h1Subscriber(agent: http.Agent, gateway: string, kind: Kind): Promise<Closable> {
  return new Promise((resolve, reject) => {
    const req =
      kind === "sse"
        ? http.get(`${gateway}${SSE_PATH}`, { agent })
        : http.request(`${gateway}${WATCH_PATH}`, { method: "POST", agent, headers: CONNECT_HEADERS });
    if (kind === "connect") req.end(watchRequest);
    req.once("response", (res) => {
      res.on("data", kind === "sse" ? sseReader() : envelopeReader());
      resolve({ close: () => req.destroy() });
    });
    req.once("error", reject);
  });
}

/** A subscriber as one stream of a shared HTTP/2 connection. */
function h2Subscriber(connection: LeanHttp2Connection, gateway: string, kind: Kind): Closable {
  const authority = new URL(gateway).host;
  const common = { ":scheme": "http", ":authority": authority };
  return kind === "sse"
    ? connection.request({ ":method": "GET", ":path": SSE_PATH, ...common }, undefined, sseReader())
    : connection.request({ ":method": "POST", ":path": WATCH_PATH, ...common, ...CONNECT_HEADERS }, watchRequest, envelopeReader());
}

let leaderScore = 0;
let action = 0;
async function grantLoop(token: string, durationS: number): Promise<void> {
  const end = Date.now() + durationS * 1000;
  while (Date.now() < end) {
    const started = Date.now();
    action += 1;
    const res = await fetch(`${mesh.urls.gateway}/api/actions`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
      body: JSON.stringify({ actionId: `a${action}` }),
    });
    if (res.status !== 200) throw new Error(`grant: HTTP ${res.status}`);
    leaderScore += action;
    expected.set(leaderScore, performance.now());
    await sleep(Math.max(0, 1000 / grantsPerSecond - (Date.now() - started)));
  }
}

/** Connects the crowd one way, runs the grants, and prints what it measured. */
async function crowd(transport: Transport, gateways: string[], token: string, first: boolean): Promise<void> {
  const gatewayBefore = rssMb(mesh.pid("gateway"));
  const pushBefore = rssMb(mesh.pid("push"));
  const closables: Closable[] = [];
  const agent = new http.Agent({ keepAlive: false, maxSockets: Infinity });
  const connections: LeanHttp2Connection[] = [];
  const connectionCount = Math.ceil(subscribers / streamsPerConnection);
  for (let i = 0; i < subscribers; i++) {
    if (transport === "h1") {
      const kind: Kind = i % 2 === 0 ? "sse" : "connect";
      closables.push(await h1Subscriber(agent, gateways[Math.floor(i / 2) % gateways.length]!, kind));
    } else {
      // Connection c carries subscribers c, c + count, ...; the kinds alternate on each one.
      const c = i % connectionCount;
      const kind: Kind = Math.floor(i / connectionCount) % 2 === 0 ? "sse" : "connect";
      const gateway = gateways[c % gateways.length]!;
      if (!connections[c]) {
        connections[c] = new LeanHttp2Connection(gateway);
        await connections[c].ready;
      }
      closables.push(h2Subscriber(connections[c], gateway, kind));
      if (i % 500 === 499) await sleep(5); // let the gateway answer as we go
    }
  }
  await sleep(2_000);
  const gatewayAfter = rssMb(mesh.pid("gateway"));
  const pushAfter = rssMb(mesh.pid("push"));
  // Only what the grants below cause: the crowd's first snapshots (the last
  // grant, seconds old by now) are not deliveries of a change.
  latencies.length = 0;
  delivered = 0;
  changesSeen.clear();
  const started = performance.now();
  const actionsBefore = action;
  await grantLoop(token, seconds);
  const changesMade = action - actionsBefore;
  await sleep(1_000);
  const elapsedS = (performance.now() - started) / 1000;

  const how = transport === "h1" ? "HTTP/1.1, a connection each" : `HTTP/2, ${streamsPerConnection} streams per connection (${connections.length} connections)`;
  console.log(
    `\n${subscribers} subscribers (${Math.ceil(subscribers / 2)} SSE, ${Math.floor(subscribers / 2)} Connect; ${how}) on ${gateways.length} gateway process(es)`,
  );
  console.log(`  delivered messages/s            ${(delivered / elapsedS).toFixed(0)} (${latencies.length} deliveries)`);
  const merged = changesSeen.size < changesMade ? " (the rest came within push's 100 ms window and were merged into the next)" : "";
  console.log(`  changes delivered               ${changesSeen.size} of ${changesMade}${merged}`);
  console.log(
    `  grant 200 -> delivery, all subs p50 ${percentile(latencies, 0.5).toFixed(1)} ms  p90 ${percentile(latencies, 0.9).toFixed(1)} ms  p99 ${percentile(latencies, 0.99).toFixed(1)} ms  max ${percentile(latencies, 1).toFixed(1)} ms`,
  );
  // A process keeps the heap an earlier crowd grew, so only the first crowd's growth is a figure.
  const perSubscriber = first
    ? `${(((gatewayAfter - gatewayBefore) * 1024 * gateways.length) / subscribers).toFixed(1)} KiB`
    : "not measured (the previous crowd's heap is still held)";
  console.log(`  gateway RSS per subscriber      ${perSubscriber} (first gateway ${gatewayBefore.toFixed(0)} -> ${gatewayAfter.toFixed(0)} MiB)`);
  console.log(`  push RSS (one stream per board per gateway): ${pushBefore.toFixed(0)} -> ${pushAfter.toFixed(0)} MiB`);
  if (process.env.BENCH_DEBUG) {
    const rows = [...perChange].map(([score, l]) => ({ score, n: l.length, min: Math.min(...l), p50: percentile(l, 0.5), max: Math.max(...l) }));
    const answered = [...expected].sort((a, b) => a[1] - b[1]);
    const gap = (score: number) => {
      const i = answered.findIndex(([s2]) => s2 === score);
      return i > 0 ? (answered[i]![1] - answered[i - 1]![1]).toFixed(0) : "-";
    };
    for (const r of rows.sort((a, b) => b.max - a.max).slice(0, 8))
      console.log(`  change ${r.score}: n ${r.n} min ${r.min.toFixed(1)} p50 ${r.p50.toFixed(1)} max ${r.max.toFixed(1)} gap ${gap(r.score)}`);
    perChange.clear();
  }
  for (const c of closables) c.close();
  for (const c of connections) c.close();
  agent.destroy();
  await sleep(2_000); // the gateway notices the crowd left before the next one comes
}

try {
  await mesh.sql("INSERT INTO actions (action_id, points) SELECT 'a' || g, g FROM generate_series(1, 100000) g");
  const token = await mesh.token("leader");
  const gateways = [mesh.urls.gateway];
  while (gateways.length < gatewayCount) gateways.push(await mesh.startReplica("gateway"));

  // Baseline: one SSE subscriber.
  const agent = new http.Agent({ keepAlive: false });
  const single = await h1Subscriber(agent, mesh.urls.gateway, "sse");
  await sleep(500);
  await grantLoop(token, 4);
  await sleep(500);
  single.close();
  console.log(`\n${grantsPerSecond} top-10 changes/s for ${seconds} s`);
  console.log(`grant 200 -> delivery, 1 subscriber: p50 ${percentile(latencies, 0.5).toFixed(1)} ms  p99 ${percentile(latencies, 0.99).toFixed(1)} ms`);

  for (const [i, transport] of transports.entries()) await crowd(transport, gateways, token, i === 0);
} finally {
  await mesh.stop();
  await stopAll();
}
