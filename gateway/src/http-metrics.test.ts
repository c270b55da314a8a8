import { EventEmitter } from "node:events";
import { describe, expect, it } from "vitest";
import { ProcessMetrics } from "@scoreboard/platform/metrics";
import type { Response } from "./http.js";
import { RouteMeter } from "./http-metrics.js";

function seriesValue(text: string, series: string): number | undefined {
  const line = text.split("\n").find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

/** A response that closes when told to, with the status its handler set. */
function response(statusCode: number) {
  const res = Object.assign(new EventEmitter(), { statusCode });
  return { res: res as unknown as Response, close: () => res.emit("close") };
}

describe("RouteMeter", () => {
  it("counts by route pattern, method and status when the response closes, and times it", async () => {
    const metrics = new ProcessMetrics();
    const meter = new RouteMeter(metrics, "/api/score/:userId", "POST");
    const ok = response(200);
    meter.track(ok.res);
    expect(seriesValue(await metrics.registry.metrics(), 'sb_http_requests_total{route="/api/score/:userId",method="POST",status="200"}')).toBeUndefined();
    ok.close();
    const limited = response(429);
    meter.track(limited.res);
    limited.close();
    const again = response(200);
    meter.track(again.res);
    again.close();
    const text = await metrics.registry.metrics();
    expect(seriesValue(text, 'sb_http_requests_total{route="/api/score/:userId",method="POST",status="200"}')).toBe(2);
    expect(seriesValue(text, 'sb_http_requests_total{route="/api/score/:userId",method="POST",status="429"}')).toBe(1);
    expect(seriesValue(text, 'sb_http_duration_seconds_count{route="/api/score/:userId",method="POST"}')).toBe(3);
  });
});
