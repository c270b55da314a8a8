// Throwaway PostgreSQL / Redis / NATS JetStream instances for integration tests:
// free ports, private temp dirs, and crash (kill) / restart control.
import { execFile, execFileSync, spawn, type ChildProcess } from "node:child_process";
import { chownSync, closeSync, existsSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { createConnection, createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { connect as connectNats } from "nats";
import pg from "pg";

export interface ManagedProcess {
  readonly pid: number | undefined;
  stop(): Promise<void>;
  kill(signal?: NodeJS.Signals): Promise<void>;
  restart(): Promise<void>;
}
export interface PostgresInstance extends ManagedProcess {
  port: number;
  url: string; // postgres://postgres@127.0.0.1:PORT/scoreboard
  createDatabase(name: string): Promise<string>; // url of the new, empty database
}
export interface RedisInstance extends ManagedProcess {
  port: number;
  url: string;
}
export interface NatsInstance extends ManagedProcess {
  port: number;
  url: string;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const isRoot = process.getuid?.() === 0;

// Ports are handed out below Linux's ephemeral range (32768+): a port taken
// from that range can be grabbed by any outgoing connection (or a client's
// connect-to-self) between the check here and the server's bind.
const PORT_RANGE = { low: 20_000, high: 32_000 };
const handedOut = new Set<number>();

/** A port nothing listens on, never handed out twice by this process. */
export async function freePort(): Promise<number> {
  for (let attempt = 0; attempt < 200; attempt++) {
    const port = PORT_RANGE.low + Math.floor(Math.random() * (PORT_RANGE.high - PORT_RANGE.low));
    if (handedOut.has(port)) continue;
    if (await canBind(port)) {
      handedOut.add(port);
      return port;
    }
  }
  throw new Error(`no free port in ${PORT_RANGE.low}..${PORT_RANGE.high}`);
}

const canBind = (port: number) =>
  new Promise<boolean>((resolve) => {
    const srv = createServer();
    srv.unref();
    srv.once("error", () => resolve(false));
    srv.listen(port, "127.0.0.1", () => srv.close(() => resolve(true)));
  });

const canConnect = (port: number) =>
  new Promise<boolean>((resolve) => {
    const s = createConnection({ host: "127.0.0.1", port });
    s.once("connect", () => {
      s.destroy();
      resolve(true);
    }).once("error", () => resolve(false));
  });

export async function waitForPort(port: number, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await canConnect(port))) {
    if (Date.now() > deadline) throw new Error(`port ${port} did not open within ${timeoutMs}ms`);
    await sleep(50);
  }
}

/** Sends one line and resolves with the first reply chunk (or '' on error), for protocol-level readiness checks. */
function probe(port: number, send: string | undefined): Promise<string> {
  return new Promise((resolve) => {
    const s = createConnection({ host: "127.0.0.1", port });
    const done = (v: string) => {
      s.destroy();
      resolve(v);
    };
    s.setTimeout(2000, () => done(""));
    s.once("connect", () => {
      if (send) s.write(send);
    });
    s.once("data", (d) => done(d.toString()));
    s.once("error", () => done(""));
  });
}

// Zombies still answer kill(pid, 0); in containers whose PID 1 does not reap, orphans stay zombies forever.
function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, "utf8"));
  } catch {
    return true;
  }
}

/** Live (non-zombie) members of a process group; postgres backends outlive a SIGKILLed postmaster otherwise. */
function groupMembers(pgid: number): number[] {
  if (!existsSync("/proc/self/stat")) {
    try {
      process.kill(-pgid, 0);
      return [pgid];
    } catch {
      return [];
    }
  }
  const out: number[] = [];
  for (const e of readdirSync("/proc")) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const fields = readFileSync(`/proc/${e}/stat`, "utf8")
        .replace(/^.*\) /, "")
        .split(" ");
      if (fields[0] !== "Z" && Number(fields[3]) === pgid) out.push(Number(e));
    } catch {
      /* exited meanwhile */
    }
  }
  return out;
}

function binary(name: string): string {
  const candidates = ["/usr/bin", "/usr/sbin", "/usr/local/bin", ...(process.env.PATH ?? "").split(":")];
  for (const dir of candidates) if (dir && existsSync(join(dir, name))) return join(dir, name);
  throw new Error(`${name} not found; run: bash scripts/infra.sh install`);
}

function pgBinDir(): string {
  const root = "/usr/lib/postgresql";
  const versions = existsSync(root)
    ? readdirSync(root)
        .filter((v) => existsSync(join(root, v, "bin", "postgres")))
        .sort((a, b) => Number(b) - Number(a))
    : [];
  if (!versions[0]) throw new Error("postgres not found under /usr/lib/postgresql; run: bash scripts/infra.sh install");
  return join(root, versions[0], "bin");
}

// PostgreSQL refuses to run as root, so as root everything postgres touches belongs to the postgres user.
const asPg = (cmd: string, args: string[]): [string, string[]] => (isRoot ? ["runuser", ["-u", "postgres", "--", cmd, ...args]] : [cmd, args]);

interface Spec {
  name: string;
  dir: string; // removed on final stop
  cmd: string;
  args: string[];
  stopSignal: NodeJS.Signals;
  ready(): Promise<boolean>;
  /** The process that actually serves, when `cmd` is a wrapper such as runuser. */
  servingPid?(): number | undefined;
}

const live = new Set<Managed>();

class Managed implements ManagedProcess {
  private child: ChildProcess | undefined;
  private realPid: number | undefined;
  private finished = false;
  constructor(private readonly spec: Spec) {}

  get pid(): number | undefined {
    return this.realPid ?? this.child?.pid;
  }

  async start(timeoutMs = 60_000): Promise<void> {
    if (this.finished) throw new Error(`${this.spec.name} was stopped for good; start a new instance`);
    const log = join(this.spec.dir, `${this.spec.name}.log`);
    const fd = openSync(log, "a");
    // Own process group, so a SIGKILL can take down the server together with its children at once.
    const child = spawn(this.spec.cmd, this.spec.args, { stdio: ["ignore", fd, fd], detached: true });
    closeSync(fd);
    child.unref(); // a forgotten instance must not keep the test runner alive; the exit hook kills it
    child.on("error", () => undefined); // surfaced as "exited early" below
    this.child = child;
    this.realPid = undefined;
    live.add(this);
    const deadline = Date.now() + timeoutMs;
    while (!(await this.spec.ready().catch(() => false))) {
      if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) {
        throw new Error(`${this.spec.name} exited early:\n${tail(log)}`);
      }
      if (Date.now() > deadline) throw new Error(`${this.spec.name} not ready after ${timeoutMs}ms:\n${tail(log)}`);
      await sleep(50);
    }
    this.realPid = this.spec.servingPid?.() ?? child.pid;
  }

  private running(): boolean {
    if (!this.child) return false;
    return (this.child.exitCode === null && this.child.signalCode === null) || isAlive(this.pid!);
  }

  private async terminate(signal: NodeJS.Signals, timeoutMs = 30_000): Promise<void> {
    const child = this.child;
    if (!child?.pid || !this.running()) return;
    const pgid = child.pid;
    const server = this.pid!;
    const send = (target: number, sig: NodeJS.Signals) => {
      try {
        process.kill(target, sig);
      } catch {
        /* gone */
      }
    };
    // Spare a wrapper (runuser) so it reaps the server: an orphaned server pid would linger as a zombie
    // under a PID 1 that does not reap (common in containers) and look alive to kill(pid, 0).
    const killHard = () => {
      send(server, "SIGKILL");
      for (const pid of groupMembers(pgid)) if (pid !== pgid || pgid === server) send(pid, "SIGKILL");
    };
    let hard = signal === "SIGKILL";
    if (hard) killHard();
    else send(server, signal);
    const deadline = Date.now() + timeoutMs;
    // Wait for Node to have reaped the child too: until then its pid is a zombie that kill(pid, 0) still finds,
    // and a wrapper only exits after reaping the server.
    const reaped = () => child.exitCode !== null || child.signalCode !== null;
    while (!reaped() || isAlive(server) || groupMembers(pgid).length > 0) {
      if (Date.now() > deadline) {
        if (hard) send(-pgid, "SIGKILL");
        if (Date.now() > deadline + 5000) throw new Error(`${this.spec.name} (pid ${server}) survived SIGKILL`);
        hard = true;
      }
      if (hard) killHard();
      await sleep(25);
    }
  }

  async kill(signal: NodeJS.Signals = "SIGKILL"): Promise<void> {
    await this.terminate(signal);
  }

  async stop(): Promise<void> {
    if (this.finished) return;
    await this.terminate(this.spec.stopSignal);
    this.finished = true;
    live.delete(this);
    rmSync(this.spec.dir, { recursive: true, force: true });
  }

  async restart(): Promise<void> {
    await this.terminate(this.spec.stopSignal);
    await this.start();
  }

  /** Synchronous last resort for the process 'exit' hook. */
  killNow(): void {
    if (this.child?.pid)
      try {
        process.kill(-this.child.pid, "SIGKILL");
      } catch {
        /* gone */
      }
    try {
      rmSync(this.spec.dir, { recursive: true, force: true });
    } catch {
      /* best effort */
    }
  }
}

process.once("exit", () => {
  for (const m of live) m.killNow();
});

function tail(file: string): string {
  try {
    return readFileSync(file, "utf8").split("\n").slice(-30).join("\n");
  } catch {
    return "(no log)";
  }
}

const tempDir = (prefix: string) => mkdtempSync(join(tmpdir(), `scoreboard-${prefix}-`));

export async function stopAll(): Promise<void> {
  const errors: unknown[] = [];
  await Promise.all([...live].map((m) => m.stop().catch((e: unknown) => errors.push(e))));
  if (errors.length) throw new AggregateError(errors, "stopAll failed");
}

async function pgQuery(url: string, sql: string): Promise<void> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 2000 });
  client.on("error", () => undefined);
  try {
    await client.connect();
    await client.query(sql);
  } finally {
    await client.end().catch(() => undefined);
  }
}

export interface PostgresOptions {
  /**
   * fsync and full-page writes on, as in production. Tests leave them off;
   * benchmarks turn them on, since the cost of a durable commit is part of
   * what they compare.
   */
  durable?: boolean;
}

export async function startPostgres(options: PostgresOptions = {}): Promise<PostgresInstance> {
  const bin = pgBinDir();
  const dir = tempDir("pg");
  const data = join(dir, "data");
  if (isRoot) {
    const id = (flag: string) => Number(execFileSync("id", [flag, "postgres"], { encoding: "utf8" }).trim());
    chownSync(dir, id("-u"), id("-g"));
  }
  const [initCmd, initArgs] = asPg(join(bin, "initdb"), ["-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync"]);
  try {
    // Async so startInfra can bring up redis and nats while initdb (the slowest step, ~1s) runs.
    await promisify(execFile)(initCmd, initArgs);
  } catch (e) {
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`initdb failed: ${(e as { stderr?: string }).stderr ?? String(e)}`);
  }
  const port = await freePort();
  const admin = `postgres://postgres@127.0.0.1:${port}/postgres`;
  // fsync/full_page_writes only protect against OS crash or power loss, which tests never simulate.
  // synchronous_commit stays ON: with it off, commits acked in the last ~200ms live only in shared
  // memory and vanish on kill(), so "committed data survives a crash" tests would flake.
  const [cmd, args] = asPg(join(bin, "postgres"), [
    "-D",
    data,
    "-p",
    String(port),
    "-k",
    dir,
    "-c",
    "listen_addresses=127.0.0.1",
    ...(options.durable ? [] : ["-c", "fsync=off", "-c", "full_page_writes=off"]),
  ]);
  const proc = new Managed({
    name: "postgres",
    dir,
    cmd,
    args,
    stopSignal: "SIGINT", // fast shutdown: disconnect clients instead of waiting for them
    ready: () => pgQuery(admin, "select 1").then(() => true),
    // With runuser the spawned pid is the wrapper's; the postmaster's pid is line 1 of postmaster.pid.
    servingPid: () => Number(readFileSync(join(data, "postmaster.pid"), "utf8").split("\n")[0]),
  });
  try {
    await proc.start();
    await pgQuery(admin, "create database scoreboard");
  } catch (e) {
    await abandon(proc);
    throw e;
  }
  const urlFor = (db: string) => `postgres://postgres@127.0.0.1:${port}/${encodeURIComponent(db)}`;
  return Object.assign(proc, {
    port,
    url: urlFor("scoreboard"),
    async createDatabase(name: string) {
      await pgQuery(admin, `create database "${name.replace(/"/g, '""')}"`);
      return urlFor(name);
    },
  });
}

export async function startRedis(): Promise<RedisInstance> {
  const dir = tempDir("redis");
  const port = await freePort();
  const proc = new Managed({
    name: "redis",
    dir,
    cmd: binary("redis-server"),
    stopSignal: "SIGTERM",
    args: [
      "--bind",
      "127.0.0.1",
      "--port",
      String(port),
      "--dir",
      dir,
      "--appendonly",
      "yes",
      "--appendfsync",
      "everysec",
      "--save",
      "",
      "--daemonize",
      "no",
      "--logfile",
      "",
    ],
    // -LOADING is answered while the AOF replays; only PONG means usable.
    ready: async () => (await probe(port, "PING\r\n")).startsWith("+PONG"),
  });
  await startOrCleanup(proc);
  return Object.assign(proc, { port, url: `redis://127.0.0.1:${port}` });
}

export async function startNats(): Promise<NatsInstance> {
  const dir = tempDir("nats");
  const port = await freePort();
  const proc = new Managed({
    name: "nats",
    dir,
    cmd: binary("nats-server"),
    stopSignal: "SIGTERM",
    args: ["-a", "127.0.0.1", "-p", String(port), "-js", "-sd", join(dir, "store")],
    // The INFO banner is sent only once JetStream has recovered its streams.
    ready: async () => (await probe(port, undefined)).includes('"jetstream":true'),
  });
  await startOrCleanup(proc);
  return Object.assign(proc, { port, url: `nats://127.0.0.1:${port}` });
}

export interface NatsClusterInstance {
  /** Each node, with the server_name stream info reports as leader and replicas. */
  nodes: (NatsInstance & { serverName: string })[];
  /** Every node's client URL, comma-separated, as NATS_URL takes them. */
  url: string;
  stop(): Promise<void>;
}

/**
 * A JetStream cluster of `size` nats-server processes routed to each other on
 * localhost, for streams with more than one replica (a single server refuses
 * them). Nodes stop and restart one by one like startNats's.
 */
export async function startNatsCluster(size = 3): Promise<NatsClusterInstance> {
  const ports = await Promise.all(Array.from({ length: size }, async () => ({ client: await freePort(), route: await freePort() })));
  const routes = ports.map((p) => `nats://127.0.0.1:${p.route}`).join(",");
  const procs = ports.map(({ client, route }, i) => {
    const dir = tempDir("nats-cluster");
    const serverName = `sb-${i + 1}`;
    const proc = new Managed({
      name: `nats-${i + 1}`,
      dir,
      cmd: binary("nats-server"),
      stopSignal: "SIGTERM",
      args: [
        "-a",
        "127.0.0.1",
        "-p",
        String(client),
        "-js",
        "-sd",
        join(dir, "store"),
        "--server_name",
        serverName,
        "--cluster_name",
        "sb",
        "--cluster",
        `nats://127.0.0.1:${route}`,
        "--routes",
        routes,
      ],
      ready: async () => (await probe(client, undefined)).includes('"jetstream":true'),
    });
    return Object.assign(proc, { port: client, url: `nats://127.0.0.1:${client}`, serverName });
  });
  // Together: a node's JetStream waits for its peers to elect a meta leader.
  const started = await Promise.allSettled(procs.map((p) => startOrCleanup(p)));
  const failed = started.find((r) => r.status === "rejected");
  const stop = async () => {
    await Promise.all(procs.map((p) => p.stop()));
  };
  const url = procs.map((p) => p.url).join(",");
  try {
    if (failed) throw failed.reason;
    await waitForMetaLeader(url);
  } catch (e) {
    await stop();
    throw e;
  }
  return { nodes: procs, url, stop };
}

/** Until the nodes have elected a JetStream meta leader, every JetStream API request times out. */
async function waitForMetaLeader(url: string, timeoutMs = 30_000): Promise<void> {
  const nc = await connectNats({ servers: url.split(",") });
  try {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      try {
        await (await nc.jetstreamManager({ timeout: 1_000 })).getAccountInfo();
        return;
      } catch (e) {
        if (Date.now() > deadline) throw new Error(`the NATS cluster elected no JetStream meta leader within ${timeoutMs}ms: ${String(e)}`);
        await sleep(200);
      }
    }
  } finally {
    await nc.close();
  }
}

async function startOrCleanup(proc: Managed): Promise<void> {
  try {
    await proc.start();
  } catch (e) {
    await abandon(proc);
    throw e;
  }
}

// A half-started server gets no graceful shutdown: it may not even have installed its signal handlers.
async function abandon(proc: Managed): Promise<void> {
  await proc.kill().catch(() => undefined);
  await proc.stop().catch(() => undefined);
}

export async function startInfra(postgresOptions: PostgresOptions = {}): Promise<{ postgres: PostgresInstance; redis: RedisInstance; nats: NatsInstance }> {
  const results = await Promise.allSettled([startPostgres(postgresOptions), startRedis(), startNats()]);
  const [postgres, redis, nats] = results;
  if (postgres.status === "fulfilled" && redis.status === "fulfilled" && nats.status === "fulfilled") {
    return { postgres: postgres.value, redis: redis.value, nats: nats.value };
  }
  // Only our own instances: other suites in this worker may hold live ones.
  await Promise.all(results.map((r) => (r.status === "fulfilled" ? r.value.stop().catch(() => undefined) : undefined)));
  throw new AggregateError(
    results.flatMap((r) => (r.status === "rejected" ? [r.reason as unknown] : [])),
    "startInfra failed",
  );
}
