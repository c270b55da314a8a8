// Starts the four Scoreboard processes as real child processes against real
// PostgreSQL, Redis and NATS, each test file on its own fresh database.
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { once } from "node:events";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { connect } from "nats";
import { Redis } from "ioredis";
import pg from "pg";
import { mintToken, type MintOptions } from "@scoreboard/platform/auth";
import type { AuthConfig } from "@scoreboard/platform/config";
import { freshMigratedDb } from "./database.js";
import { freePort } from "./infra.js";

export type ServiceName = "score" | "ranking" | "push" | "gateway";

const root = fileURLToPath(new URL("../../", import.meta.url));
/** Extra node flags for every service process, e.g. MESH_NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/prof" to profile a benchmark. */
const nodeArgs = process.env.MESH_NODE_ARGS?.split(" ").filter(Boolean) ?? [];
/** Each process's entry point, relative to the repository root. */
export const serviceEntries: Record<ServiceName, string> = {
  score: "services/score/src/main.ts",
  ranking: "services/ranking/src/main.ts",
  push: "services/push/src/main.ts",
  gateway: "gateway/src/main.ts",
};

export interface InfraUrls {
  databaseUrl: string;
  redisUrl: string;
  natsUrl: string;
}

export interface Mesh {
  urls: Record<ServiceName, string>;
  /** The HTTP/2-only ports the services call each other on. */
  grpcUrls: Record<Exclude<ServiceName, "gateway">, string>;
  databaseUrl: string;
  /** Every process's environment, for a test that starts one of its own. */
  env: Readonly<NodeJS.ProcessEnv>;
  auth: AuthConfig;
  /** Recent output of each process, for failure messages. */
  logs: Record<ServiceName, string[]>;
  token(userId: string, options?: MintOptions): Promise<string>;
  /** POST /api/actions through the gateway, as `userId` with a fresh token (its claims from `options`). */
  submitAction(userId: string, actionId: string, options?: MintOptions): Promise<Response>;
  sql<T extends pg.QueryResultRow>(text: string, params?: unknown[]): Promise<T[]>;
  pid(name: ServiceName): number;
  /** Signals a process and resolves with how it exited. */
  kill(name: ServiceName, signal?: NodeJS.Signals): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Starts a process again, with `env` added to (or overriding) the mesh's environment. */
  start(name: ServiceName, env?: Record<string, string>): Promise<void>;
  /** Starts one more replica of a service on its own port; stopped with the mesh. */
  startReplica(name: ServiceName): Promise<string>;
  stop(): Promise<void>;
}

/**
 * A fresh database, an empty Redis and no SCORES stream, then score (which
 * migrates), ranking, push and the gateway, each waited for until its
 * grpc.health.v1 says SERVING.
 */
export interface MeshOptions {
  /**
   * A folder holding each process's image bundle (scripts/bundle.ts into
   * <bundles>/<name>): the processes then run those, as in their images,
   * instead of their sources under tsx.
   */
  bundles?: string;
}

export async function startMesh(infra: InfraUrls, extraEnv: Record<string, string> = {}, options: MeshOptions = {}): Promise<Mesh> {
  const databaseUrl = await freshDatabase(infra.databaseUrl);
  await resetRedisAndNats(infra);
  const pool = new pg.Pool({ connectionString: databaseUrl, max: 2 });
  pool.on("error", () => {}); // a test may stop PostgreSQL under an idle client

  const ports = { score: await freePort(), ranking: await freePort(), push: await freePort(), gateway: await freePort() };
  const grpcPorts = { score: await freePort(), ranking: await freePort(), push: await freePort() };
  const urls = Object.fromEntries(Object.entries(ports).map(([name, port]) => [name, `http://127.0.0.1:${port}`])) as Record<ServiceName, string>;
  const auth: AuthConfig = { jwtSecret: randomBytes(32).toString("hex"), issuer: "scoreboard", audience: "scoreboard-api" };
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    NODE_ENV: "development",
    LOG_LEVEL: "info",
    DATABASE_URL: databaseUrl,
    REDIS_URL: infra.redisUrl,
    NATS_URL: infra.natsUrl,
    JWT_SECRET: auth.jwtSecret,
    // Events are signed and encrypted in tests as in production.
    EVENT_HMAC_KEYS: `k1:${randomBytes(32).toString("base64")}`,
    EVENT_HMAC_KEY_ID: "k1",
    EVENT_ENCRYPTION_KEYS: `e1:${randomBytes(32).toString("base64")}`,
    EVENT_ENCRYPTION_KEY_ID: "e1",
    SCORE_PORT: String(ports.score),
    RANKING_PORT: String(ports.ranking),
    PUSH_PORT: String(ports.push),
    GATEWAY_PORT: String(ports.gateway),
    GATEWAY_HOST: "127.0.0.1",
    SCORE_GRPC_PORT: String(grpcPorts.score),
    RANKING_GRPC_PORT: String(grpcPorts.ranking),
    PUSH_GRPC_PORT: String(grpcPorts.push),
    // Services call each other on their HTTP/2-only ports, as deployed.
    SCORE_URL: `http://127.0.0.1:${grpcPorts.score}`,
    RANKING_URL: `http://127.0.0.1:${grpcPorts.ranking}`,
    PUSH_URL: `http://127.0.0.1:${grpcPorts.push}`,
    // The regions the tests' tokens name; the gateway serves only declared regions' boards.
    REGIONS: "eu,us,apac",
    ...extraEnv,
  };
  const children = new Map<ServiceName, ChildProcess>();
  const logs: Record<ServiceName, string[]> = { score: [], ranking: [], push: [], gateway: [] };

  const replicas: ChildProcess[] = [];
  const spawnService = (name: ServiceName, extra: NodeJS.ProcessEnv = {}) => {
    const [args, cwd] = options.bundles ? [["main.mjs"], join(options.bundles, name)] : [["--import", "tsx", serviceEntries[name]], root];
    return spawn(process.execPath, [...nodeArgs, ...args], { cwd, env: { ...env, ...extra }, stdio: ["ignore", "pipe", "pipe"] });
  };

  const start = async (name: ServiceName, extra: Record<string, string> = {}) => {
    const child = spawnService(name, extra);
    children.set(name, child);
    // Whole lines only: a pipe may cut a log line across two chunks, and a
    // test that parses the lines must not see either half.
    const keepLines = () => {
      let partial = "";
      return (chunk: Buffer) => {
        const lines = (partial + chunk.toString("utf8")).split("\n");
        partial = lines.pop() ?? "";
        logs[name].push(...lines.filter(Boolean));
        if (logs[name].length > 200) logs[name].splice(0, logs[name].length - 200);
      };
    };
    child.stdout!.on("data", keepLines());
    child.stderr!.on("data", keepLines());
    await waitServing(urls[name], child, () => logs[name].slice(-20).join("\n"));
  };

  const kill = async (name: ServiceName, signal: NodeJS.Signals = "SIGKILL") => {
    const child = children.get(name);
    if (!child || child.exitCode !== null || child.signalCode !== null) {
      return { code: child?.exitCode ?? null, signal: child?.signalCode ?? null };
    }
    const exited = once(child, "exit") as Promise<[number | null, NodeJS.Signals | null]>;
    child.kill(signal);
    const [code, exitSignal] = await exited;
    children.delete(name);
    return { code, signal: exitSignal };
  };

  const mesh: Mesh = {
    urls,
    grpcUrls: {
      score: `http://127.0.0.1:${grpcPorts.score}`,
      ranking: `http://127.0.0.1:${grpcPorts.ranking}`,
      push: `http://127.0.0.1:${grpcPorts.push}`,
    },
    databaseUrl,
    env,
    auth,
    logs,
    token: (userId, options) => mintToken(auth, userId, options),
    submitAction: async (userId, actionId, options) =>
      fetch(`${urls.gateway}/api/actions`, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${await mintToken(auth, userId, options)}` },
        body: JSON.stringify({ actionId }),
      }),
    sql: async (text, params) => (await pool.query(text, params)).rows,
    pid: (name) => children.get(name)?.pid ?? -1,
    kill,
    start,
    async startReplica(name) {
      const port = await freePort();
      const child = spawnService(name, {
        [`${name.toUpperCase()}_PORT`]: String(port),
        [`${name.toUpperCase()}_GRPC_PORT`]: String(await freePort()),
      });
      replicas.push(child);
      const url = `http://127.0.0.1:${port}`;
      const output: string[] = [];
      child.stdout!.on("data", (c: Buffer) => output.push(c.toString()));
      child.stderr!.on("data", (c: Buffer) => output.push(c.toString()));
      await waitServing(url, child, () => output.join("").slice(-4000));
      return url;
    },
    async stop() {
      await Promise.all(
        replicas
          .filter((c) => c.exitCode === null && c.signalCode === null)
          .map((c) => {
            const exited = once(c, "exit");
            c.kill("SIGTERM");
            return exited;
          }),
      );
      await Promise.all([...children.keys()].map((name) => kill(name, "SIGTERM")));
      runningMeshes.delete(mesh);
      await pool.end();
    },
  };
  runningMeshes.add(mesh);
  try {
    await start("score");
    await Promise.all([start("ranking"), start("push"), start("gateway")]);
  } catch (err) {
    await mesh.stop();
    throw err;
  }
  return mesh;
}

async function freshDatabase(adminUrl: string): Promise<string> {
  const { db, url } = await freshMigratedDb(adminUrl);
  await db.destroy();
  return url;
}

async function resetRedisAndNats(infra: InfraUrls): Promise<void> {
  const redis = new Redis(infra.redisUrl, { lazyConnect: true });
  await redis.connect();
  await redis.flushall();
  redis.disconnect();
  const nc = await connect({ servers: infra.natsUrl });
  const jsm = await nc.jetstreamManager();
  for await (const stream of jsm.streams.list()) await jsm.streams.delete(stream.config.name);
  await nc.close();
}

async function waitServing(baseUrl: string, child: ChildProcess, recentLog: () => string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`${baseUrl} exited with ${child.exitCode}:\n${recentLog()}`);
    try {
      const res = await fetch(`${baseUrl}/grpc.health.v1.Health/Check`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: "{}",
      });
      if (res.ok && ((await res.json()) as { status?: string }).status === "SERVING") return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${baseUrl} did not become ready:\n${recentLog()}`);
}

/** Meshes that are running, so a timed-out wait can show what their processes said. */
const runningMeshes = new Set<Mesh>();

/**
 * Polls `probe` until it returns a value that is not undefined. On timeout the
 * error says what the last attempt saw (its error or value) and ends with the
 * recent output of every running mesh process, so a CI failure explains itself.
 */
export async function eventually<T>(probe: () => Promise<T | undefined>, timeoutMs = 10_000, what = "condition"): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  let attempts = 0;
  while (Date.now() < deadline) {
    attempts += 1;
    try {
      const value = await probe();
      if (value !== undefined) return value;
      lastError = undefined;
    } catch (err) {
      lastError = err;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  const last = lastError ? `the last attempt threw ${String(lastError)}` : "the last attempt returned undefined";
  throw new Error(`timed out waiting for ${what} after ${attempts} attempts (${last})${recentMeshOutput()}`);
}

function recentMeshOutput(): string {
  const parts: string[] = [];
  for (const mesh of runningMeshes) {
    for (const [name, lines] of Object.entries(mesh.logs)) {
      parts.push(`\n--- ${name} (last ${Math.min(lines.length, 12)} lines) ---\n${lines.slice(-12).join("\n")}`);
    }
  }
  return parts.join("");
}
