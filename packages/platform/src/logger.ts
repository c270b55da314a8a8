import { context, isSpanContextValid, trace } from "@opentelemetry/api";
import { pino, type DestinationStream, type Logger, type LoggerOptions } from "pino";

export type { Logger };

// Anything that could carry a credential is censored at the logger, so a
// careless `log.info({ req })` cannot leak a token.
const redactPaths = [
  "authorization",
  "*.authorization",
  "headers.authorization",
  "*.headers.authorization",
  "token",
  "*.token",
  "jwtSecret",
  "*.jwtSecret",
  "password",
  "*.password",
];

/** `destination`: stdout unless given; the CLI logs to stderr so its stdout stays the command's output. */
export function createLogger(service: string, level = process.env.LOG_LEVEL ?? "info", destination?: DestinationStream): Logger {
  const options: LoggerOptions = {
    level,
    base: { service },
    timestamp: pino.stdTimeFunctions.isoTime,
    redact: { paths: redactPaths, censor: "[redacted]" },
    formatters: { level: (label) => ({ level: label }) },
    mixin: activeTraceIds,
  };
  return destination ? pino(options, destination) : pino(options);
}

// A line logged inside a span names it, so logs and traces join up. Without
// a started SDK the active context is always empty: one lookup per line.
function activeTraceIds(): Record<string, string> {
  const span = trace.getSpan(context.active());
  if (!span) return {};
  const ids = span.spanContext();
  return isSpanContextValid(ids) ? { trace_id: ids.traceId, span_id: ids.spanId } : {};
}
