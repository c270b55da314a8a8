import { describe, expect, it } from "vitest";
import { ROOT_CONTEXT } from "@opentelemetry/api";
import { headers } from "nats";
import { contextFromCarrier, contextFromNats, inSpan, injectNats, isTracing, startTracing, traceCarrier, tracingWanted } from "./tracing.js";

describe("tracingWanted", () => {
  it("is off without an endpoint or an exporter, so processes without a collector stay quiet", () => {
    expect(tracingWanted({})).toBe(false);
    expect(tracingWanted({ OTEL_EXPORTER_OTLP_ENDPOINT: " " })).toBe(false);
    expect(tracingWanted({ OTEL_TRACES_EXPORTER: "none", OTEL_EXPORTER_OTLP_ENDPOINT: "http://jaeger:4318" })).toBe(false);
  });

  it("is on with an endpoint or a named exporter", () => {
    expect(tracingWanted({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://jaeger:4318" })).toBe(true);
    expect(tracingWanted({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "http://jaeger:4318/v1/traces" })).toBe(true);
    expect(tracingWanted({ OTEL_TRACES_EXPORTER: "console" })).toBe(true);
    expect(tracingWanted({ OTEL_TRACES_EXPORTER: "otlp" })).toBe(true);
  });

  it("honours OTEL_SDK_DISABLED", () => {
    expect(tracingWanted({ OTEL_SDK_DISABLED: "true", OTEL_EXPORTER_OTLP_ENDPOINT: "http://jaeger:4318" })).toBe(false);
  });
});

describe("with tracing off", () => {
  it("starts nothing and every helper is a pass-through", async () => {
    await startTracing("test", {});
    expect(isTracing()).toBe(false);
    await expect(inSpan("work", async () => 42)).resolves.toBe(42);
    expect(traceCarrier()).toBeUndefined();
    expect(contextFromCarrier({ traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01" })).toBe(ROOT_CONTEXT);
    const h = headers();
    h.set("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
    expect(contextFromNats(h)).toBe(ROOT_CONTEXT);
    expect(injectNats(undefined)).toBeUndefined();
  });
});
