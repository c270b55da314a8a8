import { ROOT_CONTEXT, context, propagation, trace, type Context, type Span, type TextMapGetter, type TextMapSetter } from "@opentelemetry/api";
import type { IncomingHttpHeaders } from "node:http";
import { Code, ConnectError, type Interceptor, type StreamResponse, type UnaryResponse } from "@connectrpc/connect";
import { codeName } from "./errors.js";
import { SpanKind, failSpan, isTracing, tracer } from "./tracing.js";

// connect-node speaks HTTP/2 through node:http2, which no stock
// instrumentation covers; these interceptors make the RPC spans and carry
// W3C traceparent in the request headers (gRPC metadata) instead.

const headersGetter: TextMapGetter<Headers> = {
  keys: (h) => [...h.keys()],
  get: (h, key) => h.get(key) ?? undefined,
};
const headersSetter: TextMapSetter<Headers> = { set: (h, key, value) => h.set(key, value) };

// Probes and reflection run every few seconds and say nothing about a score.
// A batch of writes is no step of any one grant: each write in it has its
// own client and server span, in its own trace (ScoreBatchService).
const untraced = new Set([
  "grpc.health.v1.Health",
  "grpc.reflection.v1.ServerReflection",
  "grpc.reflection.v1alpha.ServerReflection",
  "scoreboard.v1.ScoreBatchService",
]);

// Codes that mean the server failed, not the caller (OpenTelemetry's RPC conventions).
const serverFaults = new Set([Code.Unknown, Code.DeadlineExceeded, Code.Unimplemented, Code.Internal, Code.Unavailable, Code.DataLoss]);

/** A CLIENT span per outgoing call, its context injected into the call's headers. */
export const clientTracing: Interceptor = (next) => async (req) => {
  if (!isTracing() || untraced.has(req.service.typeName)) return next(req);
  const span = tracer.startSpan(`${req.service.typeName}/${req.method.name}`, {
    kind: SpanKind.CLIENT,
    attributes: rpcAttributes(req.service.typeName, req.method.name),
  });
  propagation.inject(trace.setSpan(context.active(), span), req.header, headersSetter);
  return settle(span, false, () => next(req));
};

/**
 * A SERVER span per incoming call, the child of the caller's span when its
 * headers carry one; the handler runs with it active. Only the method and
 * status are recorded: never a header (authorization, API keys).
 */
export const serverTracing: Interceptor = (next) => async (req) => {
  if (!isTracing() || untraced.has(req.service.typeName)) return next(req);
  const parent = propagation.extract(ROOT_CONTEXT, req.header, headersGetter);
  const span = tracer.startSpan(
    `${req.service.typeName}/${req.method.name}`,
    { kind: SpanKind.SERVER, attributes: rpcAttributes(req.service.typeName, req.method.name) },
    parent,
  );
  const active = trace.setSpan(parent, span);
  return settle(span, true, () => context.with(active, () => next(req)), active);
};

/**
 * The SERVER span of a call answered outside connect-node (the gateway's
 * WatchLeaderboard fast path), made as serverTracing makes it. Returns what
 * ends it with the call's error, if any.
 */
export function startRpcServerSpan(service: string, method: string, headers: IncomingHttpHeaders): (error?: ConnectError) => void {
  if (!isTracing()) return () => {};
  const parent = propagation.extract(ROOT_CONTEXT, headers);
  const span = tracer.startSpan(`${service}/${method}`, { kind: SpanKind.SERVER, attributes: rpcAttributes(service, method) }, parent);
  return (error) => end(span, true, error);
}

type AnyResponse = UnaryResponse | StreamResponse;

/** Ends the span when a unary call answers, or when a stream ends (which may be much later). */
async function settle(span: Span, server: boolean, call: () => Promise<AnyResponse>, active?: Context): Promise<AnyResponse> {
  let res: AnyResponse;
  try {
    res = await call();
  } catch (err) {
    end(span, server, err);
    throw err;
  }
  if (!res.stream) {
    end(span, server);
    return res;
  }
  return { ...res, message: endWhenDone(res.message, span, server, active) };
}

async function* endWhenDone<T>(messages: AsyncIterable<T>, span: Span, server: boolean, active: Context | undefined): AsyncGenerator<T> {
  // A server stream's handler runs as it is iterated: keep its span active there.
  const iterator = messages[Symbol.asyncIterator]();
  const step = () => (active ? context.with(active, () => iterator.next()) : iterator.next());
  let failure: unknown;
  try {
    for (let r = await step(); !r.done; r = await step()) yield r.value;
  } catch (err) {
    failure = err;
    throw err;
  } finally {
    if (failure === undefined) await iterator.return?.();
    end(span, server, failure);
  }
}

function end(span: Span, server: boolean, err?: unknown): void {
  if (err !== undefined) {
    const code = ConnectError.from(err).code;
    span.setAttribute("rpc.connect_rpc.error_code", codeName(code));
    // A cancelled call (a client went away, a stream closed at shutdown) is no failure.
    failSpan(span, err, code !== Code.Canceled && (!server || serverFaults.has(code)));
  }
  span.end();
}

function rpcAttributes(service: string, method: string) {
  return { "rpc.system": "connect_rpc", "rpc.service": service, "rpc.method": method };
}
