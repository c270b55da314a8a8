import {
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  TraceFlags,
  context,
  propagation,
  trace,
  type Attributes,
  type Context,
  type Span,
  type TextMapGetter,
  type TextMapSetter,
} from "@opentelemetry/api";
import { randomBytes } from "node:crypto";
import type { IncomingHttpHeaders } from "node:http";
import { Match, headers as natsHeaders, type MsgHdrs } from "nats";

/**
 * OpenTelemetry for every process. Spans are made by hand at the few places
 * a score crosses a process (RPC, JetStream, core NATS) plus the grant; the
 * SQL and Redis spans under them come from OpenTelemetry's pg and ioredis
 * instrumentations (driver-tracing.ts). All are exported over OTLP to
 * whatever the standard OTEL_* variables name. Without an endpoint nothing
 * is started: the API stays a no-op and every helper below returns early,
 * so dev and tests without a collector pay nothing.
 */
export const tracer = trace.getTracer("scoreboard");

let sdk: { shutdown(): Promise<void> } | undefined;

/** Whether spans are being made in this process (startTracing found a destination). */
export function isTracing(): boolean {
  return sdk !== undefined;
}

/**
 * Tracing is on when an OTLP endpoint is configured or OTEL_TRACES_EXPORTER
 * names an exporter; the SDK's own default (OTLP to localhost) would
 * otherwise log export errors in every process that has no collector.
 */
export function tracingWanted(env: NodeJS.ProcessEnv = process.env): boolean {
  if (env.OTEL_SDK_DISABLED?.trim().toLowerCase() === "true") return false;
  const exporters =
    env.OTEL_TRACES_EXPORTER?.split(",")
      .map((s) => s.trim())
      .filter(Boolean) ?? [];
  if (exporters.length > 0) return !(exporters.length === 1 && exporters[0] === "none");
  return !!(env.OTEL_EXPORTER_OTLP_ENDPOINT?.trim() || env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT?.trim());
}

/**
 * Starts the SDK for one process ("score" → service.name "scoreboard-score",
 * unless OTEL_SERVICE_NAME says otherwise). Exporter, protocol, sampler and
 * batching come from the standard variables (OTEL_EXPORTER_OTLP_*,
 * OTEL_TRACES_SAMPLER*, OTEL_BSP_*). Loaded lazily: a process without
 * tracing never loads the SDK.
 */
export async function startTracing(processName: string, env: NodeJS.ProcessEnv = process.env): Promise<void> {
  if (sdk || !tracingWanted(env)) return;
  const [{ NodeSDK }, { instrumentDrivers }] = await Promise.all([import("@opentelemetry/sdk-node"), import("./driver-tracing.js")]);
  const node = new NodeSDK({
    serviceName: env.OTEL_SERVICE_NAME?.trim() || `scoreboard-${processName}`,
    // Traces only: metrics are Prometheus's, logs go to stdout with trace ids.
    metricReaders: [],
    logRecordProcessors: [],
    // None through the SDK's loader hooks: instrumentDrivers patches the drivers it is given.
    instrumentations: [],
  });
  node.start();
  instrumentDrivers();
  sdk = node;
}

/** Exports what is buffered and stops; bounded, so a dead collector cannot hold a shutdown. */
export async function stopTracing(timeoutMs = 3_000): Promise<void> {
  const current = sdk;
  if (!current) return;
  sdk = undefined;
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    current.shutdown().catch(() => {}),
    new Promise<void>((resolve) => {
      timer = setTimeout(resolve, timeoutMs);
    }),
  ]);
  clearTimeout(timer);
}

export interface SpanOptions<T> {
  kind?: SpanKind;
  attributes?: Attributes;
  /** The parent; the active context when absent. */
  parent?: Context;
  /** Attributes learned from the result (an outcome, a count). */
  describe?: (result: T) => Attributes;
}

/** Runs `fn` inside a new active span that ends when it settles; a plain call when tracing is off. */
export function inSpan<T>(name: string, fn: () => Promise<T>, options: SpanOptions<T> = {}): Promise<T> {
  if (!sdk) return fn();
  const span = tracer.startSpan(name, { kind: options.kind ?? SpanKind.INTERNAL, attributes: options.attributes }, options.parent ?? context.active());
  return context.with(trace.setSpan(options.parent ?? context.active(), span), async () => {
    try {
      const result = await fn();
      if (options.describe) span.setAttributes(options.describe(result));
      return result;
    } catch (err) {
      failSpan(span, err);
      throw err;
    } finally {
      span.end();
    }
  });
}

/** Starts a span that is not made active (for callbacks that cannot be wrapped); undefined when tracing is off. */
export function startSpan(name: string, kind: SpanKind, parent: Context, attributes?: Attributes): Span | undefined {
  return sdk ? tracer.startSpan(name, { kind, attributes }, parent) : undefined;
}

export function failSpan(span: Span, err: unknown, markError = true): void {
  if (err instanceof Error) span.recordException({ name: err.name, message: err.message });
  if (markError) span.setStatus({ code: SpanStatusCode.ERROR, message: err instanceof Error ? err.message : String(err) });
}

/**
 * The active trace context as a W3C carrier ({traceparent, tracestate?}), to
 * store with work that continues later (an outbox row); undefined when there
 * is nothing to carry.
 */
export function traceCarrier(ctx: Context = context.active()): Record<string, string> | undefined {
  if (!sdk) return undefined;
  const carrier: Record<string, string> = {};
  propagation.inject(ctx, carrier);
  return carrier.traceparent ? carrier : undefined;
}

/** The context a stored carrier describes (ROOT when none). */
export function contextFromCarrier(carrier: Record<string, string> | null | undefined): Context {
  if (!sdk || !carrier) return ROOT_CONTEXT;
  return propagation.extract(ROOT_CONTEXT, carrier);
}

const natsGetter: TextMapGetter<MsgHdrs> = {
  keys: (h) => [...h.keys()],
  get: (h, key) => {
    // A relay or a person may have changed the header's case on the way.
    const values = h.values(key, Match.IgnoreCase);
    return values.length > 0 ? values : undefined;
  },
};
const natsSetter: TextMapSetter<MsgHdrs> = { set: (h, key, value) => h.set(key, value) };

/** The trace context a NATS message carries in its headers (ROOT when none). */
export function contextFromNats(h: MsgHdrs | undefined): Context {
  if (!sdk || !h) return ROOT_CONTEXT;
  return propagation.extract(ROOT_CONTEXT, h, natsGetter);
}

/** Writes the span's context into NATS headers (created when absent); `h` unchanged when tracing is off. */
export function injectNats(span: Span | undefined, h?: MsgHdrs): MsgHdrs | undefined {
  if (!span) return h;
  const target = h ?? natsHeaders();
  propagation.inject(trace.setSpan(ROOT_CONTEXT, span), target, natsSetter);
  return target;
}

/**
 * The header of a message that carries several events (a ScoreChangedBatch):
 * each event's W3C traceparent, in event order, separated by commas, an empty
 * entry for an event without a trace. One trace per grant survives batching.
 */
export const TRACEPARENTS_HEADER = "Sb-Traceparents";

/** Writes each span's traceparent into TRACEPARENTS_HEADER (created when absent); nothing when no span is traced. */
export function injectNatsEach(spans: readonly (Span | undefined)[], h?: MsgHdrs): MsgHdrs | undefined {
  if (!spans.some((span) => span !== undefined)) return h;
  const target = h ?? natsHeaders();
  const entries = spans.map((span) => {
    if (!span) return "";
    const carrier: Record<string, string> = {};
    propagation.inject(trace.setSpan(ROOT_CONTEXT, span), carrier);
    return carrier.traceparent ?? "";
  });
  target.set(TRACEPARENTS_HEADER, entries.join(","));
  return target;
}

/** The trace context of each of a message's `count` events, from TRACEPARENTS_HEADER (ROOT for an event without one). */
export function contextsFromNatsEach(h: MsgHdrs | undefined, count: number): Context[] {
  const contexts: Context[] = new Array(count).fill(ROOT_CONTEXT);
  if (!sdk || !h) return contexts;
  const entries = h.values(TRACEPARENTS_HEADER, Match.IgnoreCase).join(",").split(",");
  for (let i = 0; i < count; i++) {
    const traceparent = entries[i]?.trim();
    if (traceparent) contexts[i] = propagation.extract(ROOT_CONTEXT, { traceparent });
  }
  return contexts;
}

/**
 * A SERVER span for one REST route, ended with the response. Only the
 * method, the route pattern and the status are recorded: never the URL's
 * query (an SSE client's access_token rides there) nor a header.
 */
export function inRouteSpan(
  req: { method?: string; headers: IncomingHttpHeaders },
  res: { statusCode: number; once(event: "close", listener: () => void): unknown },
  route: string,
  fn: () => void | Promise<void>,
): Promise<void> {
  if (!sdk) return Promise.resolve(fn());
  const method = req.method ?? "GET";
  const parent = propagation.extract(ROOT_CONTEXT, req.headers);
  const span = tracer.startSpan(`${method} ${route}`, { kind: SpanKind.SERVER, attributes: { "http.request.method": method, "http.route": route } }, parent);
  res.once("close", () => {
    span.setAttribute("http.response.status_code", res.statusCode);
    if (res.statusCode >= 500) span.setStatus({ code: SpanStatusCode.ERROR });
    span.end();
  });
  return context.with(trace.setSpan(parent, span), () => Promise.resolve(fn()));
}

/** Runs `fn` outside any trace: for work one request starts but many share (a long-lived upstream stream). */
export function outsideAnyTrace<T>(fn: () => T): T {
  return sdk ? context.with(ROOT_CONTEXT, fn) : fn();
}

/**
 * Runs `fn` as the root of an unsampled trace: routine background calls (a
 * periodic refresh) then make no spans here nor, through the propagated
 * "not sampled" flag, in the services they call, instead of a stream of
 * one-span traces in Jaeger. A sampler that ignores parents still records them.
 */
export function unsampled<T>(fn: () => T): T {
  if (!sdk) return fn();
  const root = trace.setSpanContext(ROOT_CONTEXT, {
    traceId: randomBytes(16).toString("hex"),
    spanId: randomBytes(8).toString("hex"),
    traceFlags: TraceFlags.NONE,
  });
  return context.with(root, fn);
}

export { SpanKind };
export type { Context, Span };
