// npm run bench:fanout — BENCH_SUBSCRIBERS stream subscribers on the gateway
// (default 10,000: half SSE, half Connect WatchLeaderboard over HTTP/1.1, read
// by lean clients so this process does not become the bottleneck) while grants change
// the top 10 at a steady rate. Prints delivered messages/s, latency from a
// grant's 200 to delivery (p50/p99 over every subscriber), and the gateway's
// and push's resident memory per subscriber. Beside it, in the same run: the
// latency of the same grants seen by a single subscriber before the crowd
// connects.
import http from "node:http";
import { readFileSync } from "node:fs";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { LeaderboardUpdateSchema, WatchLeaderboardRequestSchema } from "@scoreboard/gen/scoreboard/v1/push_pb";
import { startInfra, stopAll } from "../test/harness/infra.js";
import { startMesh } from "../test/harness/mesh.js";

const subscribers = Number(process.env.BENCH_SUBSCRIBERS ?? 10_000);
const grantsPerSecond = Number(process.env.BENCH_GRANTS_PER_S ?? 5);
const seconds = Number(process.env.BENCH_SECONDS ?? 10);
// Gateway replicas the subscribers are spread over (as a Service would), e.g. one per core.
const gatewayCount = Number(process.env.BENCH_GATEWAYS ?? 1);

const infra = await startInfra();
const mesh = await startMesh(
  { databaseUrl: infra.postgres.url, redisUrl: infra.redis.url, natsUrl: infra.nats.url },
  { LOG_LEVEL: "warn", RATE_LIMIT_ACTIONS_USER: "100000/1m", RATE_LIMIT_WRITES_IP: "100000/1m" },
);
const rssMb = (pid: number) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))![1]) / 1024;
const percentile = (v: number[], p: number) => [...v].sort((a, b) => a - b)[Math.min(v.length - 1, Math.floor(p * v.length))] ?? NaN;

/** Marks by the score each grant should produce: the key every subscriber waits for. */
const expected = new Map<number, number>(); // score → time the grant was answered
const latencies: number[] = [];
let delivered = 0;
const seen = (score: number) => {
  delivered++;
  const answeredAt = expected.get(score);
  if (answeredAt !== undefined) latencies.push(performance.now() - answeredAt);
};

function sse(agent: http.Agent, gateway: string): Promise<http.ClientRequest> {
  return new Promise((resolve, reject) => {
    const req = http.get(`${gateway}/api/leaderboard/stream`, { agent }, (res) => {
      let buffer = "";
      let last = -1;
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => {
        buffer += chunk;
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const event = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const match = /"userId":"leader","score":(\d+)/.exec(event);
          if (match && Number(match[1]) !== last) {
            last = Number(match[1]);
            seen(last);
          }
        }
      });
      resolve(req);
    });
    req.on("error", reject);
  });
}

// A lean Connect streaming client (application/connect+proto over HTTP/1.1):
// the envelopes are read straight off the socket, so that thousands of
// receivers in this one process measure the gateway, not connect-node's
// client machinery.
const watchRequest = (() => {
  const message = toBinary(WatchLeaderboardRequestSchema, create(WatchLeaderboardRequestSchema, { limit: 10 }));
  const frame = Buffer.alloc(5 + message.length);
  frame.writeUInt32BE(message.length, 1);
  frame.set(message, 5);
  return frame;
})();
function connectStream(agent: http.Agent, gateway: string): Promise<http.ClientRequest> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      `${gateway}/scoreboard.v1.PushService/WatchLeaderboard`,
      { method: "POST", agent, headers: { "content-type": "application/connect+proto", "connect-protocol-version": "1" } },
      (res) => {
        let buffer: Buffer = Buffer.alloc(0);
        let last = -1;
        res.on("data", (chunk: Buffer) => {
          buffer = buffer.length === 0 ? chunk : Buffer.concat([buffer, chunk]);
          while (buffer.length >= 5 && buffer.length >= 5 + buffer.readUInt32BE(1)) {
            const end = 5 + buffer.readUInt32BE(1);
            if (buffer[0] === 0) {
              const update = fromBinary(LeaderboardUpdateSchema, buffer.subarray(5, end));
              const leader = update.entries.find((e) => e.userId === "leader");
              if (leader && Number(leader.score) !== last) {
                last = Number(leader.score);
                seen(last);
              }
            }
            buffer = buffer.subarray(end);
          }
        });
        resolve(req);
      },
    );
    req.on("error", reject);
    req.end(watchRequest);
  });
}

let leaderScore = 0;
async function grantLoop(token: string, durationS: number, startAction: number): Promise<number> {
  let n = startAction;
  const end = Date.now() + durationS * 1000;
  while (Date.now() < end) {
    const started = Date.now();
    n += 1;
    const res = await fetch(`${mesh.urls.gateway}/api/actions`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
      body: JSON.stringify({ actionId: `a${n}` }),
    });
    if (res.status !== 200) throw new Error(`grant: HTTP ${res.status}`);
    leaderScore += n;
    expected.set(leaderScore, performance.now());
    await new Promise((r) => setTimeout(r, Math.max(0, 1000 / grantsPerSecond - (Date.now() - started))));
  }
  return n;
}

try {
  await mesh.sql("INSERT INTO actions (action_id, points) SELECT 'a' || g, g FROM generate_series(1, 100000) g");
  const token = await mesh.token("leader");
  const agent = new http.Agent({ keepAlive: false, maxSockets: Infinity });

  // Baseline: one SSE subscriber.
  const gateways = [mesh.urls.gateway];
  while (gateways.length < gatewayCount) gateways.push(await mesh.startReplica("gateway"));
  const single = await sse(agent, mesh.urls.gateway);
  await new Promise((r) => setTimeout(r, 500));
  const action = await grantLoop(token, 4, 0);
  await new Promise((r) => setTimeout(r, 500));
  const baseline = { p50: percentile(latencies, 0.5), p99: percentile(latencies, 0.99) };
  single.destroy();
  latencies.length = 0;

  const gatewayBefore = rssMb(mesh.pid("gateway"));
  const pushBefore = rssMb(mesh.pid("push"));
  const requests: http.ClientRequest[] = [];
  for (let i = 0; i < subscribers; i++) {
    const gateway = gateways[Math.floor(i / 2) % gateways.length]!;
    requests.push(await (i % 2 === 0 ? sse(agent, gateway) : connectStream(agent, gateway)));
  }
  await new Promise((r) => setTimeout(r, 2_000));
  const gatewayAfter = rssMb(mesh.pid("gateway"));
  const pushAfter = rssMb(mesh.pid("push"));
  // Only what the grants below cause: the crowd's first snapshots (the baseline's last
  // grant, seconds old by now) are not deliveries of a change.
  latencies.length = 0;
  delivered = 0;
  const started = performance.now();
  await grantLoop(token, seconds, action);
  await new Promise((r) => setTimeout(r, 1_000));
  const elapsedS = (performance.now() - started) / 1000;

  console.log(
    `\n${subscribers} subscribers (${Math.ceil(subscribers / 2)} SSE, ${Math.floor(subscribers / 2)} Connect) on ${gateways.length} gateway process(es), ${grantsPerSecond} top-10 changes/s for ${seconds} s`,
  );
  console.log(`delivered messages/s            ${(delivered / elapsedS).toFixed(0)}`);
  console.log(`grant 200 -> delivery, 1 sub     p50 ${baseline.p50.toFixed(1)} ms  p99 ${baseline.p99.toFixed(1)} ms`);
  console.log(`grant 200 -> delivery, all subs  p50 ${percentile(latencies, 0.5).toFixed(1)} ms  p99 ${percentile(latencies, 0.99).toFixed(1)} ms  (${latencies.length} deliveries)`);
  console.log(`gateway RSS per subscriber       ${(((gatewayAfter - gatewayBefore) * 1024 * gateways.length) / subscribers).toFixed(1)} KiB (${gatewayBefore.toFixed(0)} -> ${gatewayAfter.toFixed(0)} MiB)`);
  console.log(`push RSS (gateway shares one stream per board): ${pushBefore.toFixed(0)} -> ${pushAfter.toFixed(0)} MiB`);
  for (const req of requests) req.destroy();
} finally {
  await mesh.stop();
  await stopAll();
}
