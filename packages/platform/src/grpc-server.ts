import * as grpc from "@grpc/grpc-js";
import { create, fromBinary, isMessage, toBinary, type DescMessage, type DescMethod, type DescService } from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  createContextValues,
  type HandlerContext,
  type Interceptor,
  type ServiceImpl,
  type StreamRequest,
  type StreamResponse,
  type UnaryRequest,
  type UnaryResponse,
} from "@connectrpc/connect";
import { hasEntries, headersOf, metadataOf, toBuffer } from "./grpc-codec.js";
import { withInterceptors } from "./interceptor-chain.js";

/** A service descriptor and its implementation: what a server serves, on every port. */
export interface ServedService {
  service: DescService;
  impl: Partial<ServiceImpl<DescService>>;
}

/** Pairs a generated service descriptor with its handlers, typed against each other. */
export function serve<S extends DescService>(service: S, impl: Partial<ServiceImpl<S>>): ServedService {
  return { service, impl: impl as Partial<ServiceImpl<DescService>> };
}

export interface GrpcServerOptions {
  host: string;
  port: number;
  services: ServedService[];
  /** Connect interceptors (tracing, metrics), run around every handler as connect-node runs them. */
  interceptors: Interceptor[];
  /** Aborted when shutdown begins; streams end on it. */
  shutdownSignal: AbortSignal;
  /** Largest request message accepted (bytes); larger ones are refused before they are parsed. */
  maxRequestBytes: number;
  /** Connections are closed (GOAWAY) after this long, so clients re-resolve and spread over new pods. */
  maxConnectionAgeMs: number;
  /** Server pings an idle connection this often to find dead peers. */
  keepaliveTimeMs: number;
}

export interface GrpcServer {
  readonly port: number;
  /** Stops taking calls, lets calls in flight finish for up to graceMs, then cuts the rest. */
  close(graceMs: number): Promise<void>;
}

/**
 * The internal gRPC port on @grpc/grpc-js, serving the same handlers as the
 * Connect port: each method is adapted from its connect `ServiceImpl`, with
 * the same interceptors, so handlers, tracing and metrics have one home.
 * grpc-js costs less than half of connect-node's gRPC per call on this path.
 */
export async function startGrpcServer(options: GrpcServerOptions): Promise<GrpcServer> {
  const server = new grpc.Server({
    "grpc.max_receive_message_length": options.maxRequestBytes,
    "grpc.max_connection_age_ms": options.maxConnectionAgeMs,
    // A stream (WatchLeaderboard) may outlive the age: the client reconnects
    // when it ends, which the gateway's feeds already do.
    "grpc.max_connection_age_grace_ms": 30_000,
    "grpc.keepalive_time_ms": options.keepaliveTimeMs,
    "grpc.keepalive_timeout_ms": 5_000,
  });
  for (const { service, impl } of options.services) {
    const definition: Record<string, grpc.MethodDefinition<unknown, unknown>> = {};
    const handlers: grpc.UntypedServiceImplementation = {};
    for (const method of service.methods) {
      const fn = impl[method.localName as keyof typeof impl] as unknown as MethodFn | undefined;
      if (!fn) continue;
      definition[method.localName] = methodDefinition(method);
      handlers[method.localName] = adaptMethod(method, fn.bind(impl), options);
    }
    server.addService(definition, handlers);
  }
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(`${options.host}:${options.port}`, grpc.ServerCredentials.createInsecure(), (err, bound) => (err ? reject(err) : resolve(bound))),
  );
  return {
    port,
    async close(graceMs) {
      const cut = setTimeout(() => server.forceShutdown(), graceMs);
      await new Promise<void>((resolve) => server.tryShutdown(() => resolve()));
      clearTimeout(cut);
    },
  };
}

type MethodFn = (input: unknown, ctx: HandlerContext) => unknown;

// A request that is not valid protobuf: answered InvalidArgument by the
// handler wrapper (grpc-js would answer INTERNAL for a throwing deserializer).
class MalformedRequest {
  constructor(readonly reason: string) {}
}

function methodDefinition(method: DescMethod): grpc.MethodDefinition<unknown, unknown> {
  return {
    path: `/${method.parent.typeName}/${method.name}`,
    requestStream: method.methodKind === "client_streaming" || method.methodKind === "bidi_streaming",
    responseStream: method.methodKind === "server_streaming" || method.methodKind === "bidi_streaming",
    requestSerialize: (m) => toBuffer(toBinary(method.input, m as never)),
    requestDeserialize: (bytes: Buffer) => parseRequest(method.input, bytes),
    responseSerialize: (m) => toBuffer(toBinary(method.output, m as never)),
    responseDeserialize: (bytes: Buffer) => fromBinary(method.output, bytes),
  };
}

function parseRequest(schema: DescMessage, bytes: Buffer): unknown {
  try {
    return fromBinary(schema, bytes);
  } catch (err) {
    return new MalformedRequest((err as Error).message);
  }
}

function adaptMethod(method: DescMethod, fn: MethodFn, options: GrpcServerOptions): grpc.UntypedHandleCall {
  switch (method.methodKind) {
    case "unary": {
      const next = unaryCall(method, fn, options.interceptors);
      return (call: grpc.ServerUnaryCall<unknown, unknown>, callback: grpc.sendUnaryData<unknown>) => {
        if (call.request instanceof MalformedRequest) return callback(malformed(call.request));
        const cancellation = new CallCancellation(call, options.shutdownSignal);
        next(call.request, headersOf(call.metadata), cancellation)
          .then(
            (res) => {
              if (hasEntries(res.header)) call.sendMetadata(metadataOf(res.header));
              callback(null, res.message, hasEntries(res.trailer) ? metadataOf(res.trailer) : undefined);
            },
            (err: unknown) => callback(statusOf(err)),
          )
          .finally(() => cancellation.done());
      };
    }
    case "server_streaming":
    case "bidi_streaming": {
      const streamingInput = method.methodKind === "bidi_streaming";
      const next = withInterceptors(options.interceptors, async (req: StreamRequest): Promise<StreamResponse> => {
        const ctx = new CallContext(req);
        const input = streamingInput ? req.message : await first(req.message);
        return {
          stream: true,
          service: method.parent,
          method,
          header: ctx.responseHeader,
          trailer: ctx.responseTrailer,
          message: fn(input, ctx) as AsyncIterable<never>,
        } as StreamResponse;
      });
      return ((call: grpc.ServerWritableStream<unknown, unknown>) => {
        const cancellation = new CallCancellation(call, options.shutdownSignal);
        const signal = cancellation.signal;
        const input = streamingInput ? requestsOf(call as unknown as grpc.ServerDuplexStream<unknown, unknown>) : single(call.request);
        void (async () => {
          if (!streamingInput && call.request instanceof MalformedRequest) throw malformed(call.request);
          const res = await next({
            stream: true,
            service: method.parent,
            method,
            requestMethod: "POST",
            url: method.name,
            signal,
            header: headersOf(call.metadata),
            contextValues: createContextValues(),
            message: input,
          } as never);
          for await (const message of res.message) {
            if (call.cancelled) break;
            if (!call.write(asMessage(method.output, message))) await drained(call, signal);
          }
          call.end(hasEntries(res.trailer) ? metadataOf(res.trailer) : undefined);
        })()
          .catch((err: unknown) => {
            if (!call.cancelled) call.emit("error", statusOf(err));
          })
          .finally(() => cancellation.done());
      }) as grpc.handleServerStreamingCall<unknown, unknown>;
    }
    default:
      throw new Error(`${method.parent.typeName}/${method.name}: client streaming is not served`);
  }
}

/** A unary method's handler behind the interceptors: what serving one call runs, wherever it came from. */
function unaryCall(
  method: DescMethod,
  fn: MethodFn,
  interceptors: Interceptor[],
): (message: unknown, header: Headers, cancellation: { readonly signal: AbortSignal }) => Promise<UnaryResponse> {
  const next = withInterceptors(interceptors, async (req: UnaryRequest): Promise<UnaryResponse> => {
    const ctx = new CallContext(req);
    const output = await fn(req.message, ctx);
    return {
      stream: false,
      service: method.parent,
      method,
      header: ctx.sentHeader(),
      trailer: ctx.sentTrailer(),
      message: asMessage(method.output, output),
    } as UnaryResponse;
  });
  return (message, header, cancellation) =>
    next({
      stream: false,
      service: method.parent,
      method,
      requestMethod: "POST",
      url: method.name,
      // Most handlers never look at it: made on first use (see CallCancellation).
      get signal() {
        return cancellation.signal;
      },
      header,
      contextValues: createContextValues(),
      message,
    } as UnaryRequest);
}

/**
 * Serves one unary call in-process, through the same interceptors (its own
 * trace span and metrics) as a call from the network: for a batch whose
 * items are each a call of their own (ScoreBatchService).
 */
export function localUnaryCall<S extends DescService, M extends keyof ServiceImpl<S> & string>(
  service: S,
  impl: Partial<ServiceImpl<S>>,
  name: M,
  interceptors: Interceptor[],
): (message: Parameters<ServiceImpl<S>[M]>[0], header: Headers, signal: AbortSignal) => Promise<Awaited<ReturnType<ServiceImpl<S>[M]>>> {
  const method = service.methods.find((m) => m.localName === name);
  const fn = impl[name] as unknown as MethodFn | undefined;
  if (method?.methodKind !== "unary" || !fn) throw new Error(`${service.typeName}/${name} is not a served unary method`);
  const call = unaryCall(method, fn.bind(impl), interceptors);
  return async (message, header, signal) => (await call(message, header, { signal })).message as never;
}

/**
 * A handler's view of its call. connect's createHandlerContext copies the
 * request headers and makes two response Headers, a deadline timer and
 * linked AbortControllers per call; allocations like these made most of the
 * minor GCs behind grpc-js's tail latency here (p99 of a trivial call 2-4 ms
 * against 0.3 ms on raw node:http2). Response headers are made when a
 * handler sets one, the signal when it asks (CallCancellation).
 */
class CallContext implements HandlerContext {
  readonly method: DescMethod;
  readonly service: DescService;
  readonly requestMethod = "POST";
  readonly protocolName = "grpc";
  readonly url: string;
  readonly requestHeader: Headers;
  readonly values: HandlerContext["values"];
  private header: Headers | undefined;
  private trailer: Headers | undefined;

  constructor(private readonly req: UnaryRequest | StreamRequest) {
    this.method = req.method;
    this.service = req.service;
    this.url = req.url;
    this.requestHeader = req.header;
    this.values = req.contextValues;
  }

  get signal(): AbortSignal {
    return this.req.signal;
  }

  timeoutMs(): number | undefined {
    return undefined;
  }

  get responseHeader(): Headers {
    this.header ??= new Headers();
    return this.header;
  }

  get responseTrailer(): Headers {
    this.trailer ??= new Headers();
    return this.trailer;
  }

  /** The response headers a handler set, if it set any. */
  sentHeader(): Headers | undefined {
    return this.header;
  }

  sentTrailer(): Headers | undefined {
    return this.trailer;
  }
}

/** Aborted when the client cancels or shutdown begins; made on first use, as most unary handlers never ask. */
class CallCancellation {
  private controller: AbortController | undefined;
  private readonly onCancel = () => this.controller?.abort(new ConnectError("the client cancelled the call", Code.Canceled));
  private readonly onShutdown = () => this.controller?.abort(new ConnectError("the server is shutting down", Code.Unavailable));

  constructor(
    private readonly call: grpc.ServerUnaryCall<unknown, unknown> | grpc.ServerWritableStream<unknown, unknown>,
    private readonly shutdown: AbortSignal,
  ) {}

  get signal(): AbortSignal {
    if (!this.controller) {
      this.controller = new AbortController();
      if (this.call.cancelled) this.onCancel();
      else this.call.once("cancelled", this.onCancel);
      if (this.shutdown.aborted) this.onShutdown();
      else this.shutdown.addEventListener("abort", this.onShutdown, { once: true });
    }
    return this.controller.signal;
  }

  done(): void {
    if (!this.controller) return;
    this.call.removeListener("cancelled", this.onCancel);
    this.shutdown.removeEventListener("abort", this.onShutdown);
  }
}

function asMessage(schema: DescMessage, value: unknown): unknown {
  return isMessage(value, schema) ? value : create(schema, value as never);
}

/** A ConnectError (or anything thrown) as a gRPC status; connect's codes are gRPC's. */
function statusOf(err: unknown): Partial<grpc.StatusObject> {
  const error = ConnectError.from(err);
  return {
    code: error.code as number as grpc.status,
    details: error.rawMessage,
    metadata: hasEntries(error.metadata) ? metadataOf(error.metadata) : undefined,
  };
}

function malformed(request: MalformedRequest): Partial<grpc.StatusObject> {
  return { code: grpc.status.INVALID_ARGUMENT, details: `the request is not a valid protobuf message: ${request.reason}` };
}

async function first<T>(messages: AsyncIterable<T>): Promise<T> {
  for await (const message of messages) return message;
  throw new ConnectError("expected one request message", Code.InvalidArgument);
}

async function* single<T>(message: T): AsyncIterable<T> {
  yield message;
}

async function* requestsOf(call: grpc.ServerDuplexStream<unknown, unknown>): AsyncIterable<unknown> {
  // Not a plain for-await over the Duplex: ending that iterator destroys the
  // whole stream, and the answer and status still have to be written.
  for await (const message of call.iterator({ destroyOnReturn: false })) {
    if (message instanceof MalformedRequest) throw new ConnectError(malformed(message).details!, Code.InvalidArgument);
    yield message;
  }
}

function drained(call: grpc.ServerWritableStream<unknown, unknown>, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const finish = () => {
      call.removeListener("drain", finish);
      signal.removeEventListener("abort", finish);
      resolve();
    };
    call.once("drain", finish);
    signal.addEventListener("abort", finish, { once: true });
  });
}
