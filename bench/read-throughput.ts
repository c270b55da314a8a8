// npm run bench:read — the gateway's GET /api/leaderboard beside a bare
// node:http server (its own process) answering the same bytes, driven by the
// same keep-alive load loop with the same connections, in the same run.
import { spawn } from "node:child_process";
import http from "node:http";
import { once } from "node:events";
import { startInfra, stopAll } from "../test/harness/infra.js";
import { eventually, startMesh } from "../test/harness/mesh.js";

const connections = Number(process.env.BENCH_CONNECTIONS ?? 32);
const seconds = Number(process.env.BENCH_SECONDS ?? 8);

async function load(url: string): Promise<{ rps: number; p50: number; p99: number; errors: number }> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: connections });
  const latencies: number[] = [];
  let errors = 0;
  const deadline = performance.now() + seconds * 1000;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: connections }, async () => {
      while (performance.now() < deadline) {
        const t = performance.now();
        const ok = await new Promise<boolean>((resolve) => {
          http
            .get(url, { agent }, (res) => {
              res.resume();
              res.on("end", () => resolve(res.statusCode === 200));
            })
            .on("error", () => resolve(false));
        });
        if (ok) latencies.push(performance.now() - t);
        else errors++;
      }
    }),
  );
  agent.destroy();
  latencies.sort((a, b) => a - b);
  const at = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))] ?? NaN;
  return { rps: latencies.length / ((performance.now() - started) / 1000), p50: at(0.5), p99: at(0.99), errors };
}

const infra = await startInfra();
const mesh = await startMesh({ databaseUrl: infra.postgres.url, redisUrl: infra.redis.url, natsUrl: infra.nats.url }, { LOG_LEVEL: "warn" });
let bare: ReturnType<typeof spawn> | undefined;
try {
  await mesh.sql("INSERT INTO actions (action_id, points) SELECT 'a' || g, g FROM generate_series(1, 20) g");
  for (let i = 1; i <= 12; i++) {
    await fetch(`${mesh.urls.gateway}/api/actions`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${await mesh.token(`reader-${i}`)}` },
      body: JSON.stringify({ actionId: `a${i}` }),
    });
  }
  const url = `${mesh.urls.gateway}/api/leaderboard`;
  const body = await eventually(async () => {
    const text = await (await fetch(url)).text();
    return (JSON.parse(text) as { data: unknown[] }).data.length === 10 ? text : undefined;
  });
  bare = spawn(
    process.execPath,
    [
      "-e",
      `const body = Buffer.from(process.env.BODY);
       require("node:http").createServer((req, res) => {
         res.writeHead(200, { "content-type": "application/json; charset=utf-8", "content-length": body.length, "cache-control": "no-cache" });
         res.end(body);
       }).listen(0, "127.0.0.1", function () { console.log(this.address().port); });`,
    ],
    { env: { ...process.env, BODY: body }, stdio: ["ignore", "pipe", "inherit"] },
  );
  const [portLine] = (await once(bare.stdout!, "data")) as [Buffer];
  const bareUrl = `http://127.0.0.1:${Number(String(portLine).trim())}/`;

  const baseline = await load(bareUrl);
  const gateway = await load(url);
  const fmt = (n: number) => n.toFixed(1).padStart(9);
  console.log(`\n${connections} keep-alive connections, ${seconds} s each, loopback, one load loop`);
  console.log(`                               req/s     p50 ms    p99 ms`);
  console.log(`bare node:http (same bytes) ${fmt(baseline.rps)} ${fmt(baseline.p50)} ${fmt(baseline.p99)}   errors ${baseline.errors}`);
  console.log(`gateway GET /api/leaderboard${fmt(gateway.rps)} ${fmt(gateway.p50)} ${fmt(gateway.p99)}   errors ${gateway.errors}`);
  console.log(`ratio gateway / bare         ${(gateway.rps / baseline.rps).toFixed(3).padStart(9)}`);
} finally {
  bare?.kill();
  await mesh.stop();
  await stopAll();
}
