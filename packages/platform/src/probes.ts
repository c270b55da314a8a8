import { sql } from "kysely";
import type { NatsConnection } from "nats";
import type { Redis } from "ioredis";
import { missingMigrations, type Db } from "./db.js";
import type { Logger } from "./logger.js";
import type { ProcessMetrics } from "./metrics.js";
import type { NodeHandler } from "./rpc-server.js";

/**
 * Resolves when the dependency answers, rejects when it does not. Only a
 * DependencyDown's message reaches the /readyz body (the gateway's is
 * public); any other error shows as "error" there and in full in the log.
 */
export type DependencyCheck = () => Promise<void>;

/** A check's failure whose message is safe to show to whoever asks /readyz. */
export class DependencyDown extends Error {}

export interface ReadinessOptions {
  /** The dependencies this process needs, by the name /readyz reports them under. */
  checks: Record<string, DependencyCheck>;
  /**
   * Checks this process can serve without, only worse (Redis for the gateway
   * and ranking, which fall back to PostgreSQL and per-replica rate limits):
   * a failure is reported under `degraded` and keeps the process ready.
   * Failing readiness there would take every replica out of its Service at
   * once and turn a Redis outage into a full one.
   */
  degradable?: string[];
  /**
   * Told at each evaluation whether each degradable dependency is failing (1)
   * or not (0): the sb_degraded gauge, which the alert on a Redis fallback
   * reads. Probes evaluate every few seconds, so it stays current without a
   * sampler of its own.
   */
  degradedGauge?: DegradedGauge;
  /** Each check fails after this long (default 1 s). */
  timeoutMs?: number;
  /** A result is reused this long, so probes cannot hammer the datastores (default 1 s). */
  cacheMs?: number;
  /** Told when a dependency starts or stops answering (once per change, not per probe). */
  logger?: Pick<Logger, "warn" | "info">;
  now?: () => number;
}

/** A prom-client Gauge<"dependency"> is one. */
export interface DegradedGauge {
  set(labels: { dependency: string }, value: number): void;
}

export interface ReadinessReport {
  status: "ready" | "not ready" | "shutting down";
  /** The checks that failed, by name. */
  failed: string[];
  /** Degradable checks that failed: the process serves, in a fallback mode. */
  degraded?: string[];
  /** Every check's result: "ok" or why it failed. */
  checks: Record<string, string>;
}

/**
 * Whether this process should get traffic: every dependency it uses answers
 * within the timeout, and it is not draining. Results are cached briefly and
 * a check still running is joined rather than started again, so however
 * often the probes come, each dependency sees at most one check at a time.
 */
export class Readiness {
  private readonly timeoutMs: number;
  private readonly cacheMs: number;
  private readonly now: () => number;
  private readonly inFlight = new Map<string, Promise<CheckResult>>();
  private cached: { at: number; report: Promise<ReadinessReport> } | undefined;
  private lastFailed = "";
  private drainingSince: number | undefined;

  constructor(private readonly options: ReadinessOptions) {
    this.timeoutMs = options.timeoutMs ?? 1_000;
    this.cacheMs = options.cacheMs ?? 1_000;
    this.now = options.now ?? Date.now;
    // From 0, so a process that never degraded still shows the series.
    for (const dependency of options.degradable ?? []) options.degradedGauge?.set({ dependency }, 0);
  }

  /** Shutdown began: not ready from now on, whatever the dependencies say. */
  drain(): void {
    this.drainingSince ??= this.now();
  }

  get draining(): boolean {
    return this.drainingSince !== undefined;
  }

  report(): Promise<ReadinessReport> {
    if (this.draining) return Promise.resolve({ status: "shutting down", failed: [], checks: {} });
    const now = this.now();
    if (!this.cached || now - this.cached.at >= this.cacheMs) {
      this.cached = { at: now, report: this.evaluate() };
    }
    return this.cached.report;
  }

  private async evaluate(): Promise<ReadinessReport> {
    const names = Object.keys(this.options.checks);
    const results = await Promise.all(names.map((name) => this.run(name)));
    const checks: Record<string, string> = {};
    const failed: string[] = [];
    const degraded: string[] = [];
    const details: Record<string, string> = {};
    names.forEach((name, i) => {
      const result = results[i]!;
      checks[name] = result.reason;
      if (result.reason === "ok") return;
      (this.options.degradable?.includes(name) ? degraded : failed).push(name);
      details[name] = result.detail;
    });
    this.logChange([...failed, ...degraded], details);
    for (const dependency of this.options.degradable ?? []) this.options.degradedGauge?.set({ dependency }, degraded.includes(dependency) ? 1 : 0);
    if (this.draining) return { status: "shutting down", failed: [], checks: {} };
    return { status: failed.length === 0 ? "ready" : "not ready", failed, ...(degraded.length > 0 ? { degraded } : {}), checks };
  }

  private run(name: string): Promise<CheckResult> {
    let running = this.inFlight.get(name);
    if (!running) {
      running = this.options.checks[name]!().then(
        () => ({ reason: "ok", detail: "ok" }),
        (err: unknown) => {
          const detail = (err instanceof Error ? err.message : String(err)) || "failed";
          return { reason: err instanceof DependencyDown ? detail : "error", detail };
        },
      );
      this.inFlight.set(name, running);
      void running.finally(() => this.inFlight.delete(name));
    }
    return withTimeout(running, this.timeoutMs);
  }

  private logChange(failed: string[], details: Record<string, string>): void {
    const key = failed.join(",");
    if (key === this.lastFailed) return;
    this.lastFailed = key;
    if (failed.length > 0) this.options.logger?.warn({ failed: details }, "not ready");
    else this.options.logger?.info("ready again");
  }
}

interface CheckResult {
  /** "ok", or why the check failed as /readyz shows it. */
  reason: string;
  /** The same with the full error, for the log. */
  detail: string;
}

function withTimeout(result: Promise<CheckResult>, timeoutMs: number): Promise<CheckResult> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<CheckResult>((resolve) => {
    timer = setTimeout(() => {
      const reason = `no answer within ${timeoutMs} ms`;
      resolve({ reason, detail: reason });
    }, timeoutMs);
  });
  return Promise.race([result, timeout]).finally(() => clearTimeout(timer));
}

/** PostgreSQL answers `select 1`. */
export function postgresCheck(db: Db): DependencyCheck {
  return async () => {
    await sql`select 1`.execute(db);
  };
}

/**
 * Every named migration has run: the schema is at least what this process
 * reads (score names all of its own; a reader names the newest it relies on).
 * Once true it stays true for the life of the process (migrations are never
 * undone under a running one), so the check then costs nothing.
 */
export function schemaCheck(db: Db, required: readonly string[]): DependencyCheck {
  let complete = false;
  return async () => {
    if (complete) return;
    const pending = await missingMigrations(db, required);
    if (pending.length > 0) throw new DependencyDown(`${pending.length} migration(s) not applied: ${pending.join(", ")}`);
    complete = true;
  };
}

/**
 * Redis answers PING. A client that is not connected fails at once: a command
 * would otherwise wait in ioredis' offline queue.
 */
export function redisCheck(redis: Redis): DependencyCheck {
  return async () => {
    if (redis.status !== "ready") throw new DependencyDown(`not connected (${redis.status})`);
    await redis.ping();
  };
}

/**
 * The NATS connection is open and the server answers a PING (flush). Given a
 * getter, a connection that start-up has not made yet reads as not connected.
 */
export function natsCheck(connection: NatsConnection | (() => NatsConnection | undefined)): DependencyCheck {
  return async () => {
    const nc = typeof connection === "function" ? connection() : connection;
    if (!nc) throw new DependencyDown("not connected yet");
    if (nc.isClosed()) throw new DependencyDown("connection closed");
    await nc.flush();
  };
}

/**
 * GET /healthz (alive: 200 unless shutting down), GET /readyz (200 when
 * every dependency answers, 503 naming the ones that do not, 503 at once
 * while draining) and GET /metrics (Prometheus text). Returns false for any
 * other request so the caller routes it.
 */
export function createProbeHandler(readiness: Readiness | undefined, metrics: ProcessMetrics | undefined, logger: Logger) {
  return (req: Parameters<NodeHandler>[0], res: Parameters<NodeHandler>[1]): boolean => {
    if (req.method !== "GET" && req.method !== "HEAD") return false;
    const path = (req.url ?? "/").split("?", 1)[0];
    if (path === "/healthz") {
      if (readiness?.draining) send(res, 503, { status: "shutting down" });
      else send(res, 200, { status: "ok" });
      return true;
    }
    if (path === "/readyz") {
      if (!readiness) return false;
      readiness.report().then(
        (report) => send(res, report.status === "ready" ? 200 : 503, report),
        (err: unknown) => {
          logger.error({ err }, "readiness check failed");
          send(res, 503, { status: "not ready", failed: ["readiness"], checks: {} });
        },
      );
      return true;
    }
    if (path === "/metrics") {
      if (!metrics) return false;
      metrics.exposition().then(
        ({ contentType, body }) => {
          res.writeHead(200, { "content-type": contentType, "content-length": Buffer.byteLength(body), "cache-control": "no-store" });
          res.end(body);
        },
        (err: unknown) => {
          logger.error({ err }, "collecting metrics failed");
          send(res, 500, { status: "error" });
        },
      );
      return true;
    }
    return false;
  };
}

function send(res: Parameters<NodeHandler>[1], status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json; charset=utf-8", "content-length": Buffer.byteLength(text), "cache-control": "no-store" });
  res.end(text);
}
