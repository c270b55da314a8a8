import http from "node:http";
import http2 from "node:http2";
import net from "node:net";
import type { Socket } from "node:net";
import type { ConnectRouter, Interceptor } from "@connectrpc/connect";
import { connectNodeAdapter, type ConnectNodeAdapterOptions } from "@connectrpc/connect-node";
import type { DescService } from "@bufbuild/protobuf";
import { Health } from "@scoreboard/gen/grpc/health/v1/health_pb";
import { startGrpcServer, type GrpcServer, type ServedService } from "./grpc-server.js";
import { HealthStatus } from "./health.js";
import { reportMalformedRequests } from "./malformed-request.js";
import { reflectionService } from "./reflection.js";
import { serverTracing } from "./rpc-tracing.js";
import { rpcMetricsInterceptor } from "./rpc-metrics.js";
import { createProbeHandler, type Readiness } from "./probes.js";
import type { ProcessMetrics } from "./metrics.js";
import type { Logger } from "./logger.js";
import type { Startup } from "./startup.js";

/** A plain Node request handler, as connect-node's adapter accepts for its fallback. */
export type NodeHandler = NonNullable<ConnectNodeAdapterOptions["fallback"]>;

export interface RpcServerOptions {
  name: string;
  host: string;
  port: number;
  logger: Logger;
  /** The services this process implements: served on both ports, listed by reflection and health. */
  services: ServedService[];
  /**
   * Connect-only routes on the shared port (the gateway's proxy of the
   * services behind it), with the services they answer for reflection and health.
   */
  connectOnly?: { services: DescService[]; routes: (router: ConnectRouter) => void };
  interceptors?: Interceptor[];
  /** Serves every request that is not an RPC (REST, pages, probes). */
  fallback?: NodeHandler;
  /**
   * A second port speaking only gRPC, on @grpc/grpc-js: how our services
   * call each other (see grpc-server.ts).
   */
  grpcPort?: number;
  /** Connection age and keepalive of the gRPC port (defaults: 5 min, 10 s). */
  grpc?: { maxConnectionAgeMs?: number; keepaliveTimeMs?: number };
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
  /**
   * Start-up still waiting for datastores: until it completes, grpc.health
   * says NOT_SERVING and every other RPC is answered UNAVAILABLE (put
   * `startup.check` among the readiness checks for /readyz).
   */
  startup?: Startup;
  /** Timeouts and the per-address connection cap of the shared port (defaults: DEFAULT_CONNECTION_LIMITS). */
  limits?: Partial<ConnectionLimits>;
  /** Values handlers read from their context (the gateway's client address), from the Node request. */
  contextValues?: ConnectNodeAdapterOptions["contextValues"];
}

/** What one client may hold of the shared port: time to send a request, idle time, connections. */
export interface ConnectionLimits {
  /** A connection's request headers (and its first bytes) must arrive within this; else 408 and closed. */
  headersTimeoutMs: number;
  /** A whole request, body included, must arrive within this (a stream's response may last longer). */
  requestTimeoutMs: number;
  /** An HTTP/1.1 connection between requests, or an h2c connection without traffic, is closed after this. */
  idleTimeoutMs: number;
  /** Open connections per remote address; more are closed at once (0: no cap). */
  maxConnectionsPerAddress: number;
}

export const DEFAULT_CONNECTION_LIMITS: ConnectionLimits = {
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 30_000,
  // Longer than the 60 s idle timeout of common load balancers, so they close first.
  idleTimeoutMs: 65_000,
  maxConnectionsPerAddress: 256,
};

/** Request headers beyond this are answered 431 (a JWT from an IdP is a few KiB). */
export const MAX_HEADER_BYTES = 16 * 1024;

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

export { serve, type ServedService } from "./grpc-server.js";

const HTTP2_PREFACE = "PRI * HTTP/2.0";

/** The largest RPC request body the shared port reads (our messages are a few hundred bytes). */
export const MAX_REQUEST_BYTES = 64 * 1024;
/** The gRPC port's limit: room for a batch of writes with their tokens (ScoreBatchService). */
export const MAX_INTERNAL_REQUEST_BYTES = 1024 * 1024;

/** What runs around every handler on both ports: a SERVER span, then the RPC metrics. */
export function serverInterceptors(metrics?: ProcessMetrics, shutdownSignal?: AbortSignal): Interceptor[] {
  return [serverTracing, ...(metrics ? [rpcMetricsInterceptor(metrics, shutdownSignal)] : [])];
}

/**
 * One port speaks HTTP/1.1 (curl, browsers, Connect and gRPC-Web) and
 * cleartext HTTP/2 (gRPC clients): the first bytes of a connection say
 * which, because h2c with prior knowledge always opens with the preface.
 */
export async function startRpcServer(options: RpcServerOptions): Promise<RpcServer> {
  const { logger } = options;
  const shutdown = new AbortController();
  const described = [...options.services.map((s) => s.service), ...(options.connectOnly?.services ?? [])];
  const health = new HealthStatus(described.map((s) => s.typeName));
  const served = [...options.services, health.service(), reflectionService([...described, Health])];
  const interceptors = [
    ...serverInterceptors(options.metrics, shutdown.signal),
    ...(options.startup ? [options.startup.interceptor] : []),
    ...(options.interceptors ?? []),
  ];

  const limits = { ...DEFAULT_CONNECTION_LIMITS, ...options.limits };
  const handler = connectNodeAdapter({
    routes: (router) => {
      for (const { service, impl } of served) router.service(service, impl);
      options.connectOnly?.routes(router);
      reportMalformedRequests(router);
    },
    contextValues: options.contextValues,
    interceptors,
    shutdownSignal: shutdown.signal,
    // Bodies are read whole before parsing: bound them.
    readMaxBytes: MAX_REQUEST_BYTES,
    fallback: withProbes(options),
  });

  // In-flight requests, so shutdown can wait for them rather than for
  // clients to hang up their kept-alive connections.
  let inFlight = 0;
  const counted: NodeHandler = (req, res) => {
    inFlight += 1;
    res.once("close", () => (inFlight -= 1));
    keepUnreadBodyAnswerable(req, res);
    if (options.preHandler?.(req, res, shutdown.signal)) return;
    handler(req, res);
  };
  const http1 = http.createServer(
    // The timeouts below are checked this often (Node's default, 30 s, would triple a 10 s limit).
    { maxHeaderSize: MAX_HEADER_BYTES, connectionsCheckingInterval: Math.min(1_000, limits.headersTimeoutMs) },
    counted,
  );
  http1.keepAliveTimeout = limits.idleTimeoutMs;
  http1.headersTimeout = limits.headersTimeoutMs;
  http1.requestTimeout = limits.requestTimeoutMs;
  // Node checks headersTimeout and requestTimeout only on the connections of a
  // server that emitted 'listening'; this one is handed its sockets by `front`.
  http1.emit("listening");
  // `Expect: 100-continue` (curl's large uploads): no go-ahead for a body
  // larger than any route reads, so the client never sends it; the handler refuses it.
  http1.on("checkContinue", (req: http.IncomingMessage, res: http.ServerResponse) => {
    if (Number(req.headers["content-length"] ?? 0) <= MAX_REQUEST_BYTES) res.writeContinue();
    counted(req, res);
  });
  const h2c = http2.createServer({}, counted);
  h2c.setTimeout(limits.idleTimeoutMs);
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
  http1.on("clientError", answerClientError);
  h2c.on("clientError", (_err: Error, socket: Socket) => socket.destroy());
  const perAddress = new Map<string, number>();

  // No Nagle: gRPC writes headers, data and trailers separately, and delayed
  // ACKs would hold each answer back ~40 ms.
  const front = net.createServer({ noDelay: true }, (socket) => {
    const address = socket.remoteAddress ?? "unknown";
    const open = perAddress.get(address) ?? 0;
    if (limits.maxConnectionsPerAddress > 0 && open >= limits.maxConnectionsPerAddress) {
      socket.destroy();
      return;
    }
    perAddress.set(address, open + 1);
    sockets.add(socket);
    socket.once("close", () => {
      sockets.delete(socket);
      const left = (perAddress.get(address) ?? 1) - 1;
      if (left > 0) perAddress.set(address, left);
      else perAddress.delete(address);
    });
    socket.once("error", () => socket.destroy());
    // A connection that says nothing is closed like one that never finishes its headers.
    socket.setTimeout(limits.headersTimeoutMs, () => socket.destroy());
    socket.once("data", (first: Buffer) => {
      socket.setTimeout(0);
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
  let grpc: GrpcServer | undefined;
  if (options.grpcPort !== undefined) {
    grpc = await startGrpcServer({
      host: options.host,
      port: options.grpcPort,
      services: served,
      interceptors,
      shutdownSignal: shutdown.signal,
      maxRequestBytes: MAX_INTERNAL_REQUEST_BYTES,
      maxConnectionAgeMs: options.grpc?.maxConnectionAgeMs ?? 300_000,
      keepaliveTimeMs: options.grpc?.keepaliveTimeMs ?? 10_000,
    });
  }
  const grpcPort = grpc?.port;
  if (options.startup) {
    void options.startup.completed.then(() => {
      if (!shutdown.signal.aborted) health.setAll(true);
    });
  } else {
    health.setAll(true);
  }
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
        shutdown.abort();
        const grpcClosed = grpc?.close(graceMs);
        for (const session of sessions) session.close();
        http1.closeIdleConnections();
        const deadline = Date.now() + graceMs;
        while (inFlight > 0 && Date.now() < deadline) {
          await new Promise((r) => setTimeout(r, 20));
        }
        for (const session of sessions) session.destroy();
        for (const socket of sockets) socket.destroy();
        await grpcClosed;
        logger.info(`${options.name} stopped`);
      })();
      return closing;
    },
  };
}

/**
 * Readers stop at their body limit (connect-node's readMaxBytes, the REST
 * and stream paths' own) by leaving a `for await` over the request. Node's
 * default iterator then destroys the request and its socket, so the client
 * got a dropped connection instead of the 413 or RESOURCE_EXHAUSTED being
 * written. Leaving keeps the request; once the answer is sent, what is left
 * of the body is discarded as it arrives, never buffered (on HTTP/1.1 the
 * request timeout then bounds how long a client may go on sending).
 */
function keepUnreadBodyAnswerable(req: Parameters<NodeHandler>[0], res: Parameters<NodeHandler>[1]): void {
  const readable = req as unknown as { iterator(options: { destroyOnReturn: boolean }): AsyncIterator<Buffer> } & AsyncIterable<Buffer>;
  readable[Symbol.asyncIterator] = () => readable.iterator({ destroyOnReturn: false });
  // HTTP/2's compatibility response emits 'finish' only once its stream
  // closed, which an unread request keeps open: watch the stream's own end.
  const answered = req instanceof http2.Http2ServerRequest ? req.stream : res;
  answered.once("finish", () => {
    if (!req.complete) req.resume();
  });
}

/**
 * A request Node's parser refused: answered with a JSON error, as Node's own
 * handler would answer it in plain text, rather than a silently dropped
 * connection (431 for oversized headers, 408 for a request that took too long).
 */
function answerClientError(err: NodeJS.ErrnoException, socket: Socket): void {
  const answer =
    err.code === "HPE_HEADER_OVERFLOW"
      ? {
          status: 431,
          reason: "Request Header Fields Too Large",
          code: "request_header_fields_too_large",
          message: `request headers exceed ${MAX_HEADER_BYTES} bytes`,
        }
      : err.code === "ERR_HTTP_REQUEST_TIMEOUT"
        ? { status: 408, reason: "Request Timeout", code: "request_timeout", message: "the request took too long to arrive" }
        : err.code?.startsWith("HPE_")
          ? { status: 400, reason: "Bad Request", code: "bad_request", message: "malformed HTTP request" }
          : undefined;
  const response = (socket as Socket & { _httpMessage?: http.ServerResponse })._httpMessage;
  if (answer && socket.writable && !response?.headersSent) {
    const body = JSON.stringify({ success: false, code: answer.code, message: answer.message });
    socket.end(
      `HTTP/1.1 ${answer.status} ${answer.reason}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n` +
        `x-content-type-options: nosniff\r\ncache-control: no-store\r\nconnection: close\r\n\r\n${body}`,
    );
    return;
  }
  socket.destroy();
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
