import type { HandlerContext } from "@connectrpc/connect";
import { Code, ConnectError } from "@connectrpc/connect";
import { create } from "@bufbuild/protobuf";
import {
  Health,
  HealthCheckResponseSchema,
  HealthCheckResponse_ServingStatus as ServingStatus,
  HealthListResponseSchema,
  type HealthCheckResponse,
} from "@scoreboard/gen/grpc/health/v1/health_pb";
import { serve, type ServedService } from "./grpc-server.js";

export { ServingStatus };

/**
 * grpc.health.v1 over a status table. "" is the whole server; each served
 * service is registered by its full name. Kubernetes gRPC probes, grpcurl and
 * grpc-health-probe all speak this.
 */
export class HealthStatus {
  private readonly statuses = new Map<string, ServingStatus>();
  private readonly watchers = new Set<() => void>();

  constructor(serviceNames: string[]) {
    this.statuses.set("", ServingStatus.NOT_SERVING);
    for (const name of serviceNames) this.statuses.set(name, ServingStatus.NOT_SERVING);
  }

  /** Marks the server and every registered service as serving or not. */
  setAll(serving: boolean): void {
    const status = serving ? ServingStatus.SERVING : ServingStatus.NOT_SERVING;
    for (const name of this.statuses.keys()) this.statuses.set(name, status);
    for (const notify of this.watchers) notify();
  }

  get(service: string): ServingStatus | undefined {
    return this.statuses.get(service);
  }

  isServing(): boolean {
    return this.statuses.get("") === ServingStatus.SERVING;
  }

  /** grpc.health.v1 answered from this table. */
  service(): ServedService {
    return serve(Health, {
      check: (req) => {
        const status = this.get(req.service);
        if (status === undefined) throw new ConnectError(`unknown service "${req.service}"`, Code.NotFound);
        return { status };
      },
      list: () =>
        create(HealthListResponseSchema, {
          statuses: Object.fromEntries([...this.statuses].map(([name, status]) => [name, create(HealthCheckResponseSchema, { status })])),
        }),
      watch: (req, ctx) => this.watch(req.service, ctx),
    });
  }

  private async *watch(service: string, ctx: HandlerContext): AsyncGenerator<HealthCheckResponse> {
    let wake: (() => void) | undefined;
    const notify = () => wake?.();
    this.watchers.add(notify);
    const onAbort = () => wake?.();
    ctx.signal.addEventListener("abort", onAbort);
    try {
      let last: ServingStatus | undefined;
      while (!ctx.signal.aborted) {
        const status = this.get(service) ?? ServingStatus.SERVICE_UNKNOWN;
        if (status !== last) {
          last = status;
          yield create(HealthCheckResponseSchema, { status });
          continue; // the status may have changed while the client was reading
        }
        await new Promise<void>((resolve) => (wake = resolve));
      }
    } finally {
      this.watchers.delete(notify);
      ctx.signal.removeEventListener("abort", onAbort);
    }
  }
}
