// npm run bench:e2e — how long from a grant's HTTP answer until an SSE client
// on the gateway sees it, beside the grant's own round trip in the same run.
// Starts its own PostgreSQL, Redis, NATS and the four processes on free ports.
import { startInfra, stopAll } from "../test/harness/infra.js";
import { startMesh } from "../test/harness/mesh.js";

const grants = Number(process.env.BENCH_GRANTS ?? 300);
const infra = await startInfra();
const mesh = await startMesh(
  { databaseUrl: infra.postgres.url, redisUrl: infra.redis.url, natsUrl: infra.nats.url },
  { LOG_LEVEL: "warn", RATE_LIMIT_ACTIONS_USER: "100000/1m" },
);

try {
  await mesh.sql("INSERT INTO actions (action_id, points) SELECT 'a' || g, g FROM generate_series(1, 1000) g");
  const seen = new Map<string, number>();
  const abort = new AbortController();
  const sse = await fetch(`${mesh.urls.gateway}/api/leaderboard/stream`, { signal: abort.signal });
  void (async () => {
    const decoder = new TextDecoder();
    let buffer = "";
    try {
      for await (const chunk of sse.body! as unknown as AsyncIterable<Uint8Array>) {
        buffer += decoder.decode(chunk, { stream: true });
        for (let end = buffer.indexOf("\n\n"); end >= 0; end = buffer.indexOf("\n\n")) {
          const event = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const data = event.split("\n").find((l) => l.startsWith("data: "));
          if (!event.startsWith("event: score:update") || !data) continue;
          const now = performance.now();
          for (const u of (JSON.parse(data.slice(6)) as { topUsers: { userId: string; score: number }[] }).topUsers) {
            const key = `${u.userId}:${u.score}`;
            if (!seen.has(key)) seen.set(key, now);
          }
        }
      }
    } catch {
      // aborted at the end
    }
  })();

  const token = await mesh.token("bench-leader");
  const ackMs: number[] = [];
  const deliveryMs: number[] = [];
  let total = 0;
  for (let i = 1; i <= grants; i++) {
    // One user climbs, so every grant changes the top 10 and must be streamed.
    const started = performance.now();
    const res = await fetch(`${mesh.urls.gateway}/api/actions`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
      body: JSON.stringify({ actionId: `a${i}` }),
    });
    const answered = performance.now();
    if (res.status !== 200) throw new Error(`grant ${i}: HTTP ${res.status} ${await res.text()}`);
    total += i;
    const key = `bench-leader:${total}`;
    const deadline = Date.now() + 5_000;
    while (!seen.has(key) && Date.now() < deadline) await new Promise((r) => setImmediate(r));
    if (!seen.has(key)) throw new Error(`grant ${i} never reached the stream`);
    ackMs.push(answered - started);
    deliveryMs.push(seen.get(key)! - started);
  }
  abort.abort();

  const pct = (values: number[], p: number) => [...values].sort((a, b) => a - b)[Math.min(values.length - 1, Math.floor((p / 100) * values.length))]!;
  const fmt = (v: number) => v.toFixed(1).padStart(7);
  console.log(`\ngrants: ${grants}, sequential, one SSE subscriber, loopback`);
  console.log(`                          p50      p90      p99  (ms)`);
  console.log(`grant answered (200)  ${fmt(pct(ackMs, 50))}  ${fmt(pct(ackMs, 90))}  ${fmt(pct(ackMs, 99))}`);
  console.log(`seen on SSE stream    ${fmt(pct(deliveryMs, 50))}  ${fmt(pct(deliveryMs, 90))}  ${fmt(pct(deliveryMs, 99))}`);
  console.log(
    `ratio stream/answer   ${(pct(deliveryMs, 50) / pct(ackMs, 50)).toFixed(2).padStart(7)}  ${(pct(deliveryMs, 90) / pct(ackMs, 90)).toFixed(2).padStart(7)}  ${(pct(deliveryMs, 99) / pct(ackMs, 99)).toFixed(2).padStart(7)}`,
  );
} finally {
  await mesh.stop();
  await stopAll();
}
