import type { ProcessMetrics, SecondsObserver, Tally } from "@scoreboard/platform/metrics";
import type { Response } from "./http.js";

/**
 * Counts and times one REST route, labelled by its pattern and method (never
 * the raw path: /api/score/alice and /api/score/bob are one series). Metric
 * children are made once per route and status, so a request costs a map
 * lookup, a close listener and the observations.
 */
export class RouteMeter {
  private readonly duration: SecondsObserver;
  private readonly byStatus = new Map<number, Tally>();

  constructor(
    private readonly metrics: ProcessMetrics,
    private readonly route: string,
    private readonly method: string,
  ) {
    this.duration = metrics.httpDuration.labels(route, method);
  }

  /** Starts timing; the request counts when its response closes, finished or aborted. */
  track(res: Response): void {
    const startedAt = performance.now();
    res.once("close", () => this.record(res.statusCode, startedAt));
  }

  private record(status: number, startedAt: number): void {
    this.duration.observe((performance.now() - startedAt) / 1_000);
    let count = this.byStatus.get(status);
    if (!count) {
      count = this.metrics.httpRequests.labels(this.route, this.method, String(status));
      this.byStatus.set(status, count);
    }
    count.inc();
  }
}
