import http from "node:http";
import http2 from "node:http2";
import net from "node:net";
import type { Socket } from "node:net";
import type { ConnectRouter, Interceptor } from "@connectrpc/connect";
import { connectNodeAdapter, type ConnectNodeAdapterOptions } from "@connectrpc/connect-node";
import type { DescService } from "@bufbuild/protobuf";
import { Health } from "@scoreboard/gen/grpc/health/v1/health_pb";
import { HealthStatus } from "./health.js";
import { registerReflection } from "./reflection.js";
import { serverTracing } from "./rpc-tracing.js";
import { rpcMetricsInterceptor } from "./rpc-metrics.js";
import { createProbeHandler, type Readiness } from "./probes.js";
import type { ProcessMetrics } from "./metrics.js";
import type { Logger } from "./logger.js";

/** A plain Node request handler, as connect-node's adapter accepts for its fallback. */
export type NodeHandler = NonNullable<ConnectNodeAdapterOptions["fallback"]>;

export interface RpcServerOptions {
  name: string;
  host: string;
  port: number;
  logger: Logger;
  /** The services this process implements, for reflection and health. */
  services: DescService[];
  routes: (router: ConnectRouter) => void;
  interceptors?: Interceptor[];
  /** Serves every request that is not an RPC (REST, pages, probes). */
  fallback?: NodeHandler;
  /**
   * A second port speaking only cleartext HTTP/2 (gRPC between our services).
   * Node reads it natively; the shared port has to relay HTTP/2 through a JS
   * stream after sniffing, which costs a few milliseconds per call here.
   */
  grpcPort?: number;
  /**
   * Sees every request before the RPC router and may take it (answer true):
   * for a hand-written fast path of one RPC. Gets the shutdown signal, which
   * streams it serves must end on.
   */
  preHandler?: (req: Parameters<NodeHandler>[0], res: Parameters<NodeHandler>[1], shutdownSignal: AbortSignal) => boolean;
  /** Takes HTTP/1.1 upgrade requests (WebSocket); without it they are refused. */
  onUpgrade?: (req: http.IncomingMessage, socket: Socket, head: Buffer) => void;
  /** Counts every RPC served and answers GET /metrics. */
  metrics?: ProcessMetrics;
  /** Answers GET /healthz and /readyz; drained as soon as close() begins. */
  readiness?: Readiness;
}

export interface RpcServer {
  readonly port: number;
  /** The HTTP/2-only port, when one was asked for. */
  readonly grpcPort: number | undefined;
  readonly health: HealthStatus;
  /** Aborted when shutdown begins; long-lived streams end on it. */
  readonly shutdownSignal: AbortSignal;
  /** Stops accepting, ends streams, waits for in-flight calls (bounded), closes every socket. */
  close(graceMs?: number): Promise<void>;
}

const HTTP2_PREFACE = "PRI * HTTP/2.0";

/**
 * One port speaks HTTP/1.1 (curl, browsers, Connect and gRPC-Web) and
 * cleartext HTTP/2 (gRPC clients): the first bytes of a connection say
 * which, because h2c with prior knowledge always opens with the preface.
 */
export async function startRpcServer(options: RpcServerOptions): Promise<RpcServer> {
  const { logger } = options;
  const shutdown = new AbortController();
  const health = new HealthStatus(options.services.map((s) => s.typeName));

  const handler = connectNodeAdapter({
    routes: (router) => {
      options.routes(router);
      health.register(router);
      registerReflection(router, [...options.services, Health]);
    },
    interceptors: [serverTracing, ...(options.metrics ? [rpcMetricsInterceptor(options.metrics, shutdown.signal)] : []), ...(options.interceptors ?? [])],
    shutdownSignal: shutdown.signal,
    fallback: withProbes(options),
  });

  // In-flight requests, so shutdown can wait for them rather than for
  // clients to hang up their kept-alive connections.
  let inFlight = 0;
  const counted: NodeHandler = (req, res) => {
    inFlight += 1;
    res.once("close", () => (inFlight -= 1));
    if (options.preHandler?.(req, res, shutdown.signal)) return;
    handler(req, res);
  };
  const http1 = http.createServer(counted);
  http1.keepAliveTimeout = 65_000;
  const h2c = http2.createServer({}, counted);
  http1.on("upgrade", (req: http.IncomingMessage, socket: Socket, head: Buffer) => {
    if (options.onUpgrade) options.onUpgrade(req, socket, head);
    else socket.destroy();
  });
  const sockets = new Set<Socket>();
  const sessions = new Set<http2.Http2Session>();
  h2c.on("session", (session) => {
    sessions.add(session);
    session.once("close", () => sessions.delete(session));
  });
  for (const server of [http1, h2c]) {
    server.on("clientError", (_err: Error, socket: Socket) => socket.destroy());
  }

  // No Nagle: gRPC writes headers, data and trailers separately, and delayed
  // ACKs would hold each answer back ~40 ms.
  const front = net.createServer({ noDelay: true }, (socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
    socket.once("error", () => socket.destroy());
    socket.once("data", (first: Buffer) => {
      socket.pause();
      const isHttp2 = first.toString("latin1", 0, HTTP2_PREFACE.length) === HTTP2_PREFACE.slice(0, first.length);
      // Put back what we read to sniff. Node's HTTP/2 session feeds a socket's
      // already-buffered bytes to nghttp2 before it takes over the handle, so
      // h2c keeps the native socket: frames of many streams leave in one
      // write (a JS Duplex in between cost one write per frame).
      socket.unshift(first);
      if (isHttp2) {
        h2c.emit("connection", socket);
      } else {
        http1.emit("connection", socket);
        socket.resume();
      }
    });
  });

  await new Promise<void>((resolve, reject) => {
    front.once("error", reject);
    front.listen(options.port, options.host, () => resolve());
  });
  front.on("error", (err) => logger.error({ err }, `${options.name} listener error`));
  const address = front.address();
  const port = typeof address === "object" && address ? address.port : options.port;
  let grpcPort: number | undefined;
  if (options.grpcPort !== undefined) {
    h2c.on("connection", (socket: Socket) => {
      if (sockets.has(socket)) return;
      if (socket instanceof net.Socket) socket.setNoDelay(true);
      sockets.add(socket);
      socket.once("close", () => sockets.delete(socket));
    });
    await new Promise<void>((resolve, reject) => {
      h2c.once("error", reject);
      h2c.listen(options.grpcPort, options.host, () => resolve());
    });
    const grpcAddress = h2c.address();
    grpcPort = typeof grpcAddress === "object" && grpcAddress ? grpcAddress.port : options.grpcPort;
  }
  health.setAll(true);
  logger.info({ port, grpcPort, host: options.host }, `${options.name} listening`);

  let closing: Promise<void> | undefined;
  return {
    port,
    grpcPort,
    health,
    shutdownSignal: shutdown.signal,
    close(graceMs = 5_000) {
      closing ??= (async () => {
        // First, so load balancers stop sending while in-flight calls finish.
        options.readiness?.drain();
        health.setAll(false);
        front.close();
        if (grpcPort !== undefined) h2c.close();
        shutdown.abort();
        for (const session of sessions) session.close();
        http1.closeIdleConnections();
        const deadline = Date.now() + graceMs;
        while (inFlight > 0 && Date.now() < deadline) {
          await new Promise((r) => setTimeout(r, 20));
        }
        for (const session of sessions) session.destroy();
        for (const socket of sockets) socket.destroy();
        logger.info(`${options.name} stopped`);
      })();
      return closing;
    },
  };
}

/** The probes and /metrics first, then the process's own fallback (REST, pages), else 404. */
function withProbes(options: RpcServerOptions): NodeHandler {
  const rest = options.fallback ?? notFound;
  if (!options.metrics && !options.readiness) return rest;
  const probes = createProbeHandler(options.readiness, options.metrics, options.logger);
  return (req, res) => {
    if (!probes(req, res)) rest(req, res);
  };
}

const notFound: NodeHandler = (_req, res) => {
  const body = JSON.stringify({ success: false, error: { code: "not_found", message: "no such route" } });
  res.writeHead(404, { "content-type": "application/json", "content-length": Buffer.byteLength(body) });
  res.end(body);
};
