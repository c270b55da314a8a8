// npm run bench:rpc — server CPU per call of each internal unary RPC on the
// services' gRPC ports (as our services call each other), beside a bare
// node:http2 server (bench/raw-grpc-server.ts) answering the same request
// with the same response bytes. h2load drives both alike: HTTP/2 over
// loopback, BENCH_CLIENTS connections × BENCH_STREAMS concurrent streams,
// every request the same bytes and headers. Only the server's own CPU
// (/proc utime+stime of its process tree) is counted, divided by the calls.
import { spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { create, toBinary, type DescMessage, type DescMethodUnary, type MessageInitShape } from "@bufbuild/protobuf";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { Health } from "@scoreboard/gen/grpc/health/v1/health_pb";
import { RankingService } from "@scoreboard/gen/scoreboard/v1/ranking_pb";
import { ScoreService } from "@scoreboard/gen/scoreboard/v1/score_pb";
import { startInfra, stopAll } from "../test/harness/infra.js";
import { eventually, startMesh } from "../test/harness/mesh.js";
import { runH2load, type H2loadResult } from "./h2load.js";
import { treeCpuMs } from "./process-cpu.js";

const seconds = Number(process.env.BENCH_SECONDS ?? 10);
const clients = Number(process.env.BENCH_CLIENTS ?? 4);
const streams = Number(process.env.BENCH_STREAMS ?? 32);
const WARMUP_CALLS = 1_000;
const USER = "rpc-u0";

interface Row {
  label: string;
  /** What one call does on the server, for the notes under the table. */
  measures: string;
  server: "score" | "ranking";
  method: DescMethodUnary<DescMessage, DescMessage>;
  request: MessageInitShape<DescMessage>;
}

const rows: Row[] = [
  {
    label: "ScoreService.AddScore",
    measures: `a real grant of +1 to ${USER}, every call (no idempotency key): token check, the grant in PostgreSQL (ledger, total, outbox, audit; durable commit; score batches concurrent grants), and score's outbox relay publishing the events to NATS (one message per relay cycle) as far as it kept up`,
    server: "score",
    method: ScoreService.method.addScore,
    request: { userId: USER, delta: 1n },
  },
  {
    label: "ScoreService.SubmitAction",
    measures:
      "the same action with the same idempotency key: after the first grant every call is a replay (token check, sb_grant in PostgreSQL finding the key and answering as the first grant did: gRPC OK, replayed=true), not a new grant",
    server: "score",
    method: ScoreService.method.submitAction,
    request: { actionId: "bench-rpc", idempotencyKey: "bench-rpc-1" },
  },
  {
    label: "RankingService.GetRank",
    measures: `${USER}'s entry on the global board from Redis`,
    server: "ranking",
    method: RankingService.method.getRank,
    request: { userId: USER },
  },
  {
    label: "RankingService.GetLeaderboard",
    measures: "the global board's top 10 from Redis",
    server: "ranking",
    method: RankingService.method.getLeaderboard,
    request: { limit: 10 },
  },
  {
    label: "Health.Check (score)",
    measures: "grpc.health.v1 overall status, in memory",
    server: "score",
    method: Health.method.check,
    request: { service: "" },
  },
];

/** The gRPC length-prefixed message: flag byte 0, 4-byte big-endian length, the protobuf. */
function grpcFrame(message: Uint8Array): Buffer {
  const frame = Buffer.alloc(5 + message.length);
  frame.writeUInt32BE(message.length, 1);
  frame.set(message, 5);
  return frame;
}

/** sb_rpc_requests_total of one method on a service's /metrics: calls answered OK and with any other code. */
async function serverCounts(metricsUrl: string, method: DescMethodUnary<DescMessage, DescMessage>): Promise<{ ok: number; other: number }> {
  const text = await (await fetch(metricsUrl)).text();
  const counts = { ok: 0, other: 0 };
  for (const m of text.matchAll(/^sb_rpc_requests_total\{([^}]*)\} ([\d.e+]+)/gm)) {
    const labels = m[1]!;
    if (!labels.includes(`service="${method.parent.typeName}"`) || !labels.includes(`method="${method.name}"`)) continue;
    if (labels.includes('code="ok"')) counts.ok += Number(m[2]);
    else counts.other += Number(m[2]);
  }
  return counts;
}

interface Measured extends H2loadResult {
  cpuMs: number;
}

/** Warm-up to size the run, then the measured run with the server's CPU before and after. */
async function measure(url: string, pid: number, bodyFile: string, headers: Record<string, string>): Promise<Measured> {
  const h2 = { url, bodyFile, headers, clients, streamsPerClient: streams };
  const warmup = await runH2load({ ...h2, calls: WARMUP_CALLS });
  const calls = Math.max(WARMUP_CALLS, Math.round((warmup.done / warmup.seconds) * seconds));
  const before = treeCpuMs(pid);
  const result = await runH2load({ ...h2, calls });
  return { ...result, cpuMs: treeCpuMs(pid) - before };
}

const infra = await startInfra({ durable: true });
const mesh = await startMesh({ databaseUrl: infra.postgres.url, redisUrl: infra.redis.url, natsUrl: infra.nats.url }, { LOG_LEVEL: "info" });
const dir = await mkdtemp(join(tmpdir(), "sb-bench-rpc-"));
let raw: ReturnType<typeof spawn> | undefined;

try {
  await mesh.sql("INSERT INTO actions (action_id, points) VALUES ('bench-rpc', 10)");
  const headers = { "content-type": "application/grpc", te: "trailers", authorization: `Bearer ${await mesh.token(USER)}` };
  const transports = {
    score: createGrpcTransport({ baseUrl: mesh.grpcUrls.score }),
    ranking: createGrpcTransport({ baseUrl: mesh.grpcUrls.ranking }),
  };
  // A board to rank on: 50 users, USER among them, through the real event path.
  for (let i = 0; i < 50; i++) {
    const user = `rpc-u${i}`;
    await transports.score.unary(
      ScoreService.method.addScore,
      undefined,
      10_000,
      { authorization: `Bearer ${await mesh.token(user)}` },
      { userId: user, delta: BigInt(1 + (i % 5)) },
    );
  }
  await eventually(
    async () => (await transports.ranking.unary(RankingService.method.getRank, undefined, 5_000, headers, { userId: USER }).catch(() => undefined)) && true,
    30_000,
    `${USER} on the global board`,
  );

  // Each request once through a real gRPC client (a gRPC error would throw):
  // twice, so the second answer is the one every measured call gets (a
  // replay for SubmitAction); its bytes are what the bare server answers.
  const responses: Record<string, string> = {};
  const bodies = new Map<Row, string>();
  for (const row of rows) {
    const call = () => transports[row.server].unary(row.method, undefined, 10_000, headers, row.request);
    await call();
    const answer = await call();
    const path = `/${row.method.parent.typeName}/${row.method.name}`;
    responses[path] = grpcFrame(toBinary(row.method.output, answer.message)).toString("base64");
    const bodyFile = join(dir, `${row.method.name}.bin`);
    await writeFile(bodyFile, grpcFrame(toBinary(row.method.input, create(row.method.input, row.request))));
    bodies.set(row, bodyFile);
  }
  const responsesFile = join(dir, "responses.json");
  await writeFile(responsesFile, JSON.stringify(responses));
  raw = spawn(process.execPath, ["--import", "tsx", "bench/raw-grpc-server.ts", responsesFile], { stdio: ["ignore", "pipe", "inherit"] });
  const [portLine] = (await once(raw.stdout!, "data")) as [Buffer];
  const rawUrl = `http://127.0.0.1:${portLine.toString().trim()}`;

  const results: string[] = [];
  const notes: string[] = [];
  for (const row of rows) {
    const path = `/${row.method.parent.typeName}/${row.method.name}`;
    const metricsUrl = `${mesh.urls[row.server]}/metrics`;
    const countsBefore = await serverCounts(metricsUrl, row.method);
    const ours = await measure(`${mesh.grpcUrls[row.server]}${path}`, mesh.pid(row.server), bodies.get(row)!, headers);
    const countsAfter = await serverCounts(metricsUrl, row.method);
    const bare = await measure(`${rawUrl}${path}`, raw.pid!, bodies.get(row)!, headers);
    const oursPerCall = ours.cpuMs / ours.done;
    const barePerCall = bare.cpuMs / bare.done;
    results.push(
      `${row.label.padEnd(31)}${(ours.done / ours.seconds).toFixed(0).padStart(9)}${oursPerCall.toFixed(3).padStart(12)}` +
        `${(bare.done / bare.seconds).toFixed(0).padStart(11)}${barePerCall.toFixed(3).padStart(13)}${(oursPerCall / barePerCall).toFixed(1).padStart(8)}×`,
    );
    // Warm-up and measured calls as the server counted them, by gRPC code:
    // h2load itself sees only HTTP 200.
    const ok = countsAfter.ok - countsBefore.ok;
    const other = countsAfter.other - countsBefore.other;
    const checked =
      ok + other === 0
        ? "not in the server's sb_rpc_requests_total"
        : other === 0
          ? `all ${ok} gRPC OK by the server's count`
          : `${other} of ${ok + other} NOT gRPC OK by the server's count`;
    const failures = [...ours.failures, ...bare.failures.map((f) => `bare: ${f}`)];
    notes.push(`${row.label}: ${row.measures}. ${checked}${failures.length ? `; h2load: ${failures.join(", ")}` : ""}`);
  }

  console.log(
    `\nh2load, HTTP/2 over loopback, ${clients} connections × ${streams} streams, ~${seconds} s per row and side after ${WARMUP_CALLS} warm-up calls; LOG_LEVEL=info (the shipped default), durable PostgreSQL`,
  );
  console.log(`server CPU = /proc utime+stime of the answering process only (not h2load, not PostgreSQL or Redis), per completed call\n`);
  console.log(
    `${"rpc".padEnd(31)}${"calls/s".padStart(9)}${"CPU ms/call".padStart(12)}${"bare/s".padStart(11)}${"bare ms/call".padStart(13)}${"ratio".padStart(9)}`,
  );
  for (const line of results) console.log(line);
  console.log(`\nbare: node:http2 answering the same path with the service's own response bytes and grpc-status 0 (bench/raw-grpc-server.ts)`);
  for (const note of notes) console.log(`- ${note}`);
} finally {
  raw?.kill("SIGTERM");
  await mesh.stop();
  await stopAll();
}
