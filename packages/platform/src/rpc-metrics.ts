import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import type { DescMethod } from "@bufbuild/protobuf";
import { codeName } from "./errors.js";
import type { ProcessMetrics } from "./metrics.js";

interface MethodMeter {
  duration: { observe(seconds: number): void };
  /** Counter children by Code (0 is OK), made on first use. */
  byCode: Array<{ inc(): void } | undefined>;
  service: string;
  method: string;
}

/**
 * Counts and times every RPC the server answers: unary calls when the
 * handler returns, streams when they end. A stream whose client hung up (or
 * whose deadline passed) counts as canceled (deadline_exceeded) even when the
 * handler then returned quietly, as ours do; one ended by our own shutdown
 * counts as ok. Labels come from the method descriptors, never from the
 * request, and each method's metric children are made once, so a call costs
 * two map lookups and the observations.
 */
export function rpcMetricsInterceptor(metrics: ProcessMetrics, shutdownSignal?: AbortSignal): Interceptor {
  const requests = metrics.rpcRequests;
  const duration = metrics.rpcDuration;
  const meters = new Map<DescMethod, MethodMeter>();
  const meterOf = (method: DescMethod): MethodMeter => {
    let meter = meters.get(method);
    if (!meter) {
      const service = method.parent.typeName;
      meter = { duration: duration.labels(service, method.name), byCode: [], service, method: method.name };
      meters.set(method, meter);
    }
    return meter;
  };
  const record = (meter: MethodMeter, startedAt: number, code: Code | 0) => {
    meter.duration.observe((performance.now() - startedAt) / 1_000);
    let counter = meter.byCode[code];
    if (!counter) {
      counter = requests.labels(meter.service, meter.method, code === 0 ? "ok" : codeName(code));
      meter.byCode[code] = counter;
    }
    counter.inc();
  };

  return (next) => async (req) => {
    const meter = meterOf(req.method);
    const startedAt = performance.now();
    let res: Awaited<ReturnType<typeof next>>;
    try {
      res = await next(req);
    } catch (err) {
      record(meter, startedAt, ConnectError.from(err).code);
      throw err;
    }
    if (!res.stream) {
      record(meter, startedAt, 0);
      return res;
    }
    const endedBy = (): Code | 0 => {
      if (!req.signal.aborted || shutdownSignal?.aborted) return 0;
      const reason: unknown = req.signal.reason;
      return reason instanceof ConnectError && reason.code === Code.DeadlineExceeded ? Code.DeadlineExceeded : Code.Canceled;
    };
    return { ...res, message: measuredStream(res.message, endedBy, (code) => record(meter, startedAt, code)) };
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
