// npm run bench:fanout — BENCH_SUBSCRIBERS stream subscribers on the gateway
// (default 10,000: half SSE, half Connect WatchLeaderboard) while grants change
// the top 10 at a steady rate. Prints delivered messages/s, latency from a
// grant's 200 to delivery (p50/p99 over every subscriber), and the gateway's
// and push's resident memory per subscriber. Beside it, in the same run: the
// latency of the same grants seen by a single subscriber before the crowd
// connects.
import { setMaxListeners } from "node:events";
import http from "node:http";
import { readFileSync } from "node:fs";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { PushService } from "@scoreboard/gen/scoreboard/v1/push_pb";
import { startInfra, stopAll } from "../test/harness/infra.js";
import { startMesh } from "../test/harness/mesh.js";

const subscribers = Number(process.env.BENCH_SUBSCRIBERS ?? 10_000);
const grantsPerSecond = Number(process.env.BENCH_GRANTS_PER_S ?? 5);
const seconds = Number(process.env.BENCH_SECONDS ?? 10);

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

function sse(agent: http.Agent): Promise<http.ClientRequest> {
  return new Promise((resolve, reject) => {
    const req = http.get(`${mesh.urls.gateway}/api/leaderboard/stream`, { agent }, (res) => {
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

const connectAbort = new AbortController();
setMaxListeners(0, connectAbort.signal); // one listener per Connect subscriber
try {
  await mesh.sql("INSERT INTO actions (action_id, points) SELECT 'a' || g, g FROM generate_series(1, 100000) g");
  const token = await mesh.token("leader");
  const agent = new http.Agent({ keepAlive: false, maxSockets: Infinity });

  // Baseline: one SSE subscriber.
  const single = await sse(agent);
  await new Promise((r) => setTimeout(r, 500));
  const action = await grantLoop(token, 4, 0);
  await new Promise((r) => setTimeout(r, 500));
  const baseline = { p50: percentile(latencies, 0.5), p99: percentile(latencies, 0.99) };
  single.destroy();
  latencies.length = 0;

  const gatewayBefore = rssMb(mesh.pid("gateway"));
  const pushBefore = rssMb(mesh.pid("push"));
  const requests: http.ClientRequest[] = [];
  const transport = createConnectTransport({ baseUrl: mesh.urls.gateway, httpVersion: "2" });
  const push = createClient(PushService, transport);
  for (let i = 0; i < subscribers; i++) {
    if (i % 2 === 0) {
      requests.push(await sse(agent));
    } else {
      void (async () => {
        let last = -1;
        try {
          for await (const update of push.watchLeaderboard({ limit: 10 }, { signal: connectAbort.signal })) {
            const leader = update.entries.find((e) => e.userId === "leader");
            if (leader && Number(leader.score) !== last) {
              last = Number(leader.score);
              seen(last);
            }
          }
        } catch {
          // aborted at the end
        }
      })();
    }
  }
  await new Promise((r) => setTimeout(r, 2_000));
  const gatewayAfter = rssMb(mesh.pid("gateway"));
  const pushAfter = rssMb(mesh.pid("push"));
  delivered = 0;
  const started = performance.now();
  await grantLoop(token, seconds, action);
  await new Promise((r) => setTimeout(r, 1_000));
  const elapsedS = (performance.now() - started) / 1000;

  console.log(`\n${subscribers} subscribers (${Math.ceil(subscribers / 2)} SSE, ${Math.floor(subscribers / 2)} Connect), ${grantsPerSecond} top-10 changes/s for ${seconds} s`);
  console.log(`delivered messages/s            ${(delivered / elapsedS).toFixed(0)}`);
  console.log(`grant 200 -> delivery, 1 sub     p50 ${baseline.p50.toFixed(1)} ms  p99 ${baseline.p99.toFixed(1)} ms`);
  console.log(`grant 200 -> delivery, all subs  p50 ${percentile(latencies, 0.5).toFixed(1)} ms  p99 ${percentile(latencies, 0.99).toFixed(1)} ms  (${latencies.length} deliveries)`);
  console.log(`gateway RSS per subscriber       ${(((gatewayAfter - gatewayBefore) * 1024) / subscribers).toFixed(1)} KiB (${gatewayBefore.toFixed(0)} -> ${gatewayAfter.toFixed(0)} MiB)`);
  console.log(`push RSS (gateway shares one stream per board): ${pushBefore.toFixed(0)} -> ${pushAfter.toFixed(0)} MiB`);
  for (const req of requests) req.destroy();
} finally {
  connectAbort.abort();
  await mesh.stop();
  await stopAll();
}
