import type { Interceptor } from "@connectrpc/connect";

/**
 * `final` wrapped in connect interceptors, the first outermost, as connect
 * runs them: for the places that call or serve RPCs outside connect's own
 * transports and routers (the grpc-js server and client, batched writes).
 */
export function withInterceptors<F extends (req: never) => Promise<unknown>>(interceptors: readonly Interceptor[], final: F): F {
  return interceptors.reduceRight((next, interceptor) => interceptor(next as never) as unknown as F, final);
}
