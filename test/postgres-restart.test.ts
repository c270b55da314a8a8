// PostgreSQL restarting (a planned fast restart, a SIGKILL) under a steady
// load of grants: no process dies, every acknowledged grant is in the ledger
// once, the outbox drains by itself and Redis agrees with PostgreSQL. And a
// process started while its datastores are down stays up, not ready, and
// becomes ready when they return.
import { spawn, type ChildProcess } from "node:child_process";
import { execFile } from "node:child_process";
import { once } from "node:events";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterAll, beforeAll, expect, inject, it } from "vitest";
import { sql } from "kysely";
import { Redis } from "ioredis";
import { createDb } from "@scoreboard/platform/db";
import { RedisBoards } from "../services/ranking/src/boards.js";
import { freePort, startNats, startPostgres, startRedis, type NatsInstance, type PostgresInstance, type RedisInstance } from "./harness/infra.js";
import { eventually, serviceEntries, startMesh, type Mesh, type ServiceName } from "./harness/mesh.js";
import { grantUntilAnswered, type AnsweredGrant } from "./harness/retried-grant.js";

const root = fileURLToPath(new URL("../", import.meta.url));
const USERS = 8;
const ACTIONS = 1_500;
let postgres: PostgresInstance;
let mesh: Mesh;
const extra: { nats?: NatsInstance; redis?: RedisInstance; children: ChildProcess[] } = { children: [] };

beforeAll(async () => {
  // Its own PostgreSQL, so this file can take it away without touching the others.
  postgres = await startPostgres();
  mesh = await startMesh({ ...inject("infra"), databaseUrl: postgres.url }, { RATE_LIMIT_ACTIONS_USER: "100000/1m", RATE_LIMIT_WRITES_IP: "100000/1m" });
  await mesh.sql(`INSERT INTO actions (action_id, points) SELECT 'p' || g, 1 + g % 17 FROM generate_series(1, ${ACTIONS}) g`);
});
afterAll(async () => {
  await Promise.all(
    extra.children
      .filter((c) => c.exitCode === null && c.signalCode === null)
      .map((c) => {
        c.kill("SIGKILL");
        return once(c, "exit");
      }),
  );
  await mesh?.stop();
  await Promise.all([postgres?.stop(), extra.nats?.stop(), extra.redis?.stop()]);
});

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

it("keeps a pg client that loses its server while checked out from crashing the process, and connects afresh", async () => {
  const db = createDb(mesh.databaseUrl, 2);
  try {
    const failed = db.transaction().execute(async (trx) => {
      const { rows } = await sql<{ pid: number }>`SELECT pg_backend_pid() AS pid`.execute(trx);
      await mesh.sql("SELECT pg_terminate_backend($1)", [rows[0]!.pid]);
      // The client is checked out (in a transaction) when its server goes away.
      await sql`SELECT pg_sleep(5)`.execute(trx);
    });
    await expect(failed).rejects.toThrow();
    const { rows } = await sql<{ one: number }>`SELECT 1 AS one`.execute(db);
    expect(rows[0]!.one).toBe(1);
  } finally {
    await db.destroy();
  }
});

type Acknowledged = AnsweredGrant;

it("loses no acknowledged grant, counts none twice and keeps every process up while PostgreSQL restarts three times under load", {
  timeout: 240_000,
}, async () => {
  const pids = Object.fromEntries((["score", "ranking", "push", "gateway"] as ServiceName[]).map((name) => [name, mesh.pid(name)]));
  const acknowledged: Acknowledged[] = [];
  const failures: Record<string, number> = {};
  let stop = false;

  // Each client grants its actions in turn, retrying one with the same
  // Idempotency-Key until it is answered (a grant whose answer was lost comes
  // back as a replay); bounded by the actions and by the tries per action.
  const client = async (userId: string) => {
    const token = await mesh.token(userId);
    for (let a = 1; a <= ACTIONS && !stop; a++) {
      const actionId = `p${a}`;
      acknowledged.push(await grantUntilAnswered(mesh.urls.gateway, token, userId, actionId, failures, 600));
      await new Promise((r) => setTimeout(r, 5)); // a steady load, not a flood
    }
  };
  const load = Promise.all(Array.from({ length: USERS }, (_, i) => client(`pgr-${i}`)));
  const progress = async (what: string) => {
    const target = acknowledged.length + 50;
    await eventually(async () => (acknowledged.length >= target ? true : undefined), 30_000, `grants to go on ${what}`);
  };

  await progress("before the first restart");
  await postgres.restart(); // fast shutdown: every connection terminated "by administrator command"
  await progress("after a fast restart");
  await postgres.kill("SIGKILL"); // the postmaster and every backend at once: crash recovery on start
  await postgres.restart();
  await progress("after a SIGKILL");
  await postgres.restart();
  await progress("after the third restart");
  stop = true;
  await load;
  expect(Object.keys(failures).length, "the restarts were felt").toBeGreaterThan(0);

  // No process died: each is the one started before the restarts.
  for (const [name, pid] of Object.entries(pids)) {
    expect(mesh.pid(name as ServiceName), name).toBe(pid);
    expect(alive(pid), `${name} is running`).toBe(true);
    expect(mesh.logs[name as ServiceName].join("\n"), name).not.toMatch(/Unhandled 'error' event|failed to start/);
  }

  // Every acknowledged grant is in the ledger once; nothing else is.
  const ledger = await mesh.sql<{ request_id: string }>("SELECT request_id::text FROM ledger WHERE user_id LIKE 'pgr-%'");
  expect(new Set(acknowledged.map((a) => a.requestId)).size).toBe(acknowledged.length);
  expect(ledger).toHaveLength(acknowledged.length);
  expect(new Set(ledger.map((r) => r.request_id))).toEqual(new Set(acknowledged.map((a) => a.requestId)));

  // The relay publishes what committed around the restarts by itself (score was never restarted).
  await eventually(
    async () => ((await mesh.sql<{ n: number }>("SELECT count(*)::int AS n FROM outbox WHERE published_at IS NULL"))[0]!.n === 0 ? true : undefined),
    30_000,
    "the outbox to drain",
  );

  // PostgreSQL's totals are what the clients were told, and Redis agrees.
  const expected = new Map<string, number>();
  for (const a of acknowledged) expected.set(a.userId, (expected.get(a.userId) ?? 0) + a.points);
  const totals = new Map(
    (await mesh.sql<{ user_id: string; score: number }>("SELECT user_id, score::int FROM scores WHERE user_id LIKE 'pgr-%'")).map((r) => [r.user_id, r.score]),
  );
  expect(totals).toEqual(expected);
  const redis = new Redis(inject("infra").redisUrl);
  try {
    const users = [...totals.keys()];
    await eventually(
      async () => {
        const scores = await new RedisBoards(redis).scoresOf("global", users);
        return users.every((userId, i) => scores[i] === totals.get(userId)) ? true : undefined;
      },
      30_000,
      "Redis to agree with PostgreSQL",
    );
  } finally {
    redis.disconnect();
  }
});

interface Started {
  name: ServiceName;
  child: ChildProcess;
  url: string;
  output: string[];
}

async function spawnService(name: ServiceName, env: NodeJS.ProcessEnv, port: number): Promise<Started> {
  const child = spawn(process.execPath, ["--import", "tsx", serviceEntries[name]], {
    cwd: root,
    env: { ...mesh.env, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  extra.children.push(child);
  const output: string[] = [];
  child.stdout!.on("data", (c: Buffer) => output.push(c.toString()));
  child.stderr!.on("data", (c: Buffer) => output.push(c.toString()));
  return { name, child, url: `http://127.0.0.1:${port}`, output };
}

/** What a process says about itself: /healthz, /readyz (with the reason start-up waits) and grpc.health. */
async function probes(service: Started): Promise<{ healthz: number; readyz: number; startup?: string; health?: string }> {
  if (service.child.exitCode !== null) throw new Error(`${service.name} exited with ${service.child.exitCode}:\n${service.output.join("").slice(-3000)}`);
  const healthz = (await fetch(`${service.url}/healthz`)).status;
  const ready = await fetch(`${service.url}/readyz`);
  const report = (await ready.json()) as { checks?: Record<string, string> };
  const health = await fetch(`${service.url}/grpc.health.v1.Health/Check`, { method: "POST", headers: { "content-type": "application/json" }, body: "{}" });
  return { healthz, readyz: ready.status, startup: report.checks?.startup, health: ((await health.json()) as { status?: string }).status };
}

it("starts score, ranking and push while PostgreSQL and NATS are down: alive and not ready, then ready once they return", { timeout: 180_000 }, async () => {
  // A database nobody migrated yet: score's migrations at start wait too.
  const databaseUrl = await postgres.createDatabase("cold_start");
  extra.nats = await startNats();
  extra.redis = await startRedis();
  await postgres.kill("SIGKILL");
  await extra.nats.kill("SIGKILL");
  const ports = { score: await freePort(), ranking: await freePort(), push: await freePort() };
  const grpc = { score: await freePort(), ranking: await freePort(), push: await freePort() };
  const env = {
    DATABASE_URL: databaseUrl,
    NATS_URL: extra.nats.url,
    REDIS_URL: extra.redis.url,
    SCORE_PORT: String(ports.score),
    SCORE_GRPC_PORT: String(grpc.score),
    RANKING_PORT: String(ports.ranking),
    RANKING_GRPC_PORT: String(grpc.ranking),
    RANKING_URL: `http://127.0.0.1:${grpc.ranking}`,
    PUSH_PORT: String(ports.push),
    PUSH_GRPC_PORT: String(grpc.push),
  };
  const services = [
    await spawnService("score", env, ports.score),
    await spawnService("ranking", env, ports.ranking),
    await spawnService("push", env, ports.push),
  ];

  for (const service of services) {
    const seen = await eventually(
      async () => {
        const p = await probes(service);
        return p.startup?.startsWith("waiting for") ? p : undefined;
      },
      30_000,
      `${service.name} to report what it waits for`,
    );
    expect(seen, service.name).toMatchObject({ healthz: 200, readyz: 503, health: "NOT_SERVING" });
  }
  expect((await probes(services[0]!)).startup).toMatch(/^waiting for postgres/);
  expect((await probes(services[2]!)).startup).toMatch(/^waiting for nats/);

  await postgres.restart();
  // Score has migrated the new database and now waits for NATS, still not ready.
  const scoreWaits = await eventually(
    async () => {
      const p = await probes(services[0]!);
      return p.startup?.startsWith("waiting for nats") ? p : undefined;
    },
    30_000,
    "score to wait for NATS only",
  );
  expect(scoreWaits).toMatchObject({ readyz: 503, health: "NOT_SERVING" });

  await extra.nats.restart();
  for (const service of services) {
    await eventually(
      async () => {
        const p = await probes(service);
        return p.readyz === 200 && p.health === "SERVING" ? p : undefined;
      },
      60_000,
      `${service.name} to become ready`,
    );
    expect(service.child.exitCode, service.name).toBeNull();
  }
  const db = createDb(databaseUrl, 1);
  try {
    const { rows } = await sql<{ n: number }>`SELECT count(*)::int AS n FROM kysely_migration`.execute(db);
    expect(rows[0]!.n).toBeGreaterThan(0);
  } finally {
    await db.destroy();
  }
});

it("makes the migrate job wait for PostgreSQL, and say which store did not answer when it gives up", async () => {
  await postgres.kill("SIGKILL");
  try {
    const run = promisify(execFile)(process.execPath, ["--import", "tsx", "cli/main.ts", "migrate"], {
      cwd: root,
      env: { PATH: process.env.PATH, HOME: process.env.HOME, DATABASE_URL: mesh.databaseUrl, DATASTORE_WAIT_S: "1" },
    });
    const failed = (await run.then(
      () => undefined,
      (err: unknown) => err,
    )) as { code?: number; stdout?: string; stderr?: string } | undefined;
    expect(failed?.code).toBe(1);
    expect(`${failed?.stdout}${failed?.stderr}`).toMatch(/migration not run: PostgreSQL did not answer within 1 s \(last error: .*ECONNREFUSED/);
  } finally {
    await postgres.restart();
  }
});
