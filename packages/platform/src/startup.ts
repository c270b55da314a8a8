import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import type { EnvReader } from "./config.js";
import type { Logger } from "./logger.js";
import { DependencyDown, type DependencyCheck } from "./probes.js";

export interface WaitOptions {
  /**
   * Give up after this long, throwing a DatastoreUnavailable that says what
   * did not answer (one-shot jobs); a service waits for as long as it takes.
   */
  maxWaitMs?: number;
  /** Errors worth waiting out (the store is down or restarting); any other is thrown at once. Default: all. */
  retryable?: (err: unknown) => boolean;
  /** First retry after this long, doubling up to maxDelayMs (defaults 200 ms and 5 s). */
  initialDelayMs?: number;
  maxDelayMs?: number;
}

/** A datastore did not answer within a one-shot job's bounded wait. */
export class DatastoreUnavailable extends Error {
  override name = "DatastoreUnavailable";
}

/**
 * Runs `attempt` until it succeeds, retrying with backoff while it fails with
 * a retryable error, and logs each new reason once (not every retry).
 * `onWaiting` hears why we are waiting, for readiness to report.
 */
export async function waitForDatastore<T>(
  name: string,
  attempt: () => Promise<T>,
  logger: Pick<Logger, "warn" | "info">,
  options: WaitOptions & { onWaiting?: (reason: string) => void } = {},
): Promise<T> {
  const { maxWaitMs, retryable = () => true, initialDelayMs = 200, maxDelayMs = 5_000 } = options;
  const started = Date.now();
  let delay = initialDelayMs;
  let lastReason: string | undefined;
  for (;;) {
    try {
      const result = await attempt();
      if (lastReason !== undefined) logger.info({ datastore: name }, `${name} answers: going on`);
      return result;
    } catch (err) {
      if (!retryable(err)) throw err;
      const reason = (err instanceof Error ? err.message : String(err)) || "failed";
      options.onWaiting?.(reason);
      if (maxWaitMs !== undefined && Date.now() - started >= maxWaitMs) {
        throw new DatastoreUnavailable(`${name} did not answer within ${Math.round(maxWaitMs / 1000)} s (last error: ${reason})`, { cause: err });
      }
      if (reason !== lastReason) logger.warn({ datastore: name, err: reason }, `waiting for ${name}`);
      lastReason = reason;
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, maxDelayMs);
    }
  }
}

/**
 * A service's start-up that needs datastores: the RPC server listens first
 * (GET /healthz answers, so Kubernetes does not restart a process that is only
 * waiting), while /readyz fails with `check` naming what start-up waits for,
 * grpc.health says NOT_SERVING and RPCs are answered UNAVAILABLE
 * (`interceptor`). Each step waits out its datastore with backoff, however
 * long the outage; `complete()` then lets traffic in. Exiting instead would
 * turn an outage into a CrashLoopBackOff that outlasts it.
 */
export class Startup {
  private waitingFor: { name: string; reason: string } | undefined;
  private done = false;
  private resolveCompleted!: () => void;
  /** Resolves once every start-up step has run. */
  readonly completed = new Promise<void>((resolve) => (this.resolveCompleted = resolve));

  constructor(private readonly logger: Pick<Logger, "warn" | "info">) {}

  /** Runs one start-up step, waiting out its datastore's outage. */
  waitFor<T>(name: string, attempt: () => Promise<T>, options: Omit<WaitOptions, "maxWaitMs"> = {}): Promise<T> {
    this.waitingFor = { name, reason: "connecting" };
    return waitForDatastore(name, attempt, this.logger, {
      ...options,
      onWaiting: (reason) => (this.waitingFor = { name, reason }),
    }).finally(() => (this.waitingFor = undefined));
  }

  complete(): void {
    this.done = true;
    this.waitingFor = undefined;
    this.resolveCompleted();
  }

  get isComplete(): boolean {
    return this.done;
  }

  /** For Readiness: fails until start-up is complete, saying what it waits for. */
  readonly check: DependencyCheck = async () => {
    if (this.done) return;
    throw new DependencyDown(this.waitingFor ? `waiting for ${this.waitingFor.name}: ${this.waitingFor.reason}` : "starting");
  };

  /** Refuses every RPC but health and reflection until start-up is complete. */
  readonly interceptor: Interceptor = (next) => async (req) => {
    if (!this.done && !EXEMPT.has(req.service.typeName)) {
      const why = this.waitingFor ? `waiting for ${this.waitingFor.name}` : "starting";
      throw new ConnectError(`not ready: ${why}`, Code.Unavailable);
    }
    return next(req);
  };
}

const EXEMPT = new Set(["grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection"]);

/**
 * How long a one-shot job (the migrate Job, the reconcile CronJob) waits for
 * each datastore before exiting 1: long enough to ride out a restart, short
 * enough that Kubernetes' own retry (backoffLimit) takes over a long outage.
 */
export function readJobWaitMs(env: EnvReader): number {
  return env.int("DATASTORE_WAIT_S", 60, 0, 3_600) * 1_000;
}
