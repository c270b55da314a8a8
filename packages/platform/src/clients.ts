import type { Transport } from "@connectrpc/connect";
import { Http2SessionManager, createGrpcTransport } from "@connectrpc/connect-node";
import { clientTracing } from "./rpc-tracing.js";

export interface ServiceTransport {
  transport: Transport;
  close(): void;
}

/**
 * A gRPC (HTTP/2) transport to one of our services. One HTTP/2 session is
 * shared by every call; pings keep it honest across idle periods and detect a
 * dead peer, so long streams notice a vanished server.
 */
export function createServiceTransport(baseUrl: string): ServiceTransport {
  const sessionManager = new Http2SessionManager(baseUrl, {
    pingIntervalMs: 10_000,
    pingTimeoutMs: 5_000,
    idleConnectionTimeoutMs: 60_000,
  });
  const transport = createGrpcTransport({ baseUrl, sessionManager, interceptors: [clientTracing] });
  return { transport, close: () => sessionManager.abort() };
}
