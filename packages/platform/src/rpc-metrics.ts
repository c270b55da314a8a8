import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import type { DescMethod } from "@bufbuild/protobuf";
import { codeName } from "./errors.js";
import type { ProcessMetrics } from "./metrics.js";

/** Counts one finished RPC (code 0 is OK) and observes its duration in seconds. */
export type RpcRecorder = (service: string, method: string, code: Code | 0, seconds: number) => void;

/**
 * The one way an RPC is counted, by the interceptor below and by handlers
 * that answer outside connect-node (the gateway's WatchLeaderboard path).
 * Each (service, method, code) child is made once, so a call costs a map
 * lookup and the observations.
 */
export function rpcRecorder(metrics: ProcessMetrics): RpcRecorder {
  const children = new Map<string, { duration: { observe(seconds: number): void }; byCode: Array<{ inc(): void } | undefined> }>();
  return (service, method, code, seconds) => {
    const key = `${service}/${method}`;
    let child = children.get(key);
    if (!child) {
      child = { duration: metrics.rpcDuration.labels(service, method), byCode: [] };
      children.set(key, child);
    }
    child.duration.observe(seconds);
    let counter = child.byCode[code];
    if (!counter) {
      counter = metrics.rpcRequests.labels(service, method, code === 0 ? "ok" : codeName(code));
      child.byCode[code] = counter;
    }
    counter.inc();
  };
}

/**
 * Counts and times every RPC the server answers: unary calls when the
 * handler returns, streams when they end. A stream whose client hung up (or
 * whose deadline passed) counts as canceled (deadline_exceeded) even when the
 * handler then returned quietly, as ours do; one ended by our own shutdown
 * counts as ok. Labels come from the method descriptors, never from the
 * request.
 */
export function rpcMetricsInterceptor(metrics: ProcessMetrics, shutdownSignal?: AbortSignal): Interceptor {
  const recordRpc = rpcRecorder(metrics);
  const record = (method: DescMethod, startedAt: number, code: Code | 0) =>
    recordRpc(method.parent.typeName, method.name, code, (performance.now() - startedAt) / 1_000);

  return (next) => async (req) => {
    const startedAt = performance.now();
    let res: Awaited<ReturnType<typeof next>>;
    try {
      res = await next(req);
    } catch (err) {
      record(req.method, startedAt, ConnectError.from(err).code);
      throw err;
    }
    if (!res.stream) {
      record(req.method, startedAt, 0);
      return res;
    }
    const endedBy = (): Code | 0 => {
      if (!req.signal.aborted || shutdownSignal?.aborted) return 0;
      const reason: unknown = req.signal.reason;
      return reason instanceof ConnectError && reason.code === Code.DeadlineExceeded ? Code.DeadlineExceeded : Code.Canceled;
    };
    return { ...res, message: measuredStream(res.message, endedBy, (code) => record(req.method, startedAt, code)) };
  };
}

async function* measuredStream<T>(messages: AsyncIterable<T>, endedBy: () => Code | 0, done: (code: Code | 0) => void): AsyncGenerator<T> {
  let code: Code | 0 = Code.Canceled; // unless it ends or fails on its own, the client went away
  try {
    yield* messages;
    code = endedBy();
  } catch (err) {
    code = ConnectError.from(err).code;
    throw err;
  } finally {
    done(code);
  }
}
