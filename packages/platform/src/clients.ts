import * as grpc from "@grpc/grpc-js";
import {
  createContextKey,
  createContextValues,
  type ContextValues,
  type Interceptor,
  type StreamRequest,
  type StreamResponse,
  type Transport,
  type UnaryRequest,
  type UnaryResponse,
} from "@connectrpc/connect";
import { create, fromBinary, isMessage, toBinary, type DescMessage, type DescMethod, type DescService } from "@bufbuild/protobuf";
import { MethodOptions_IdempotencyLevel as Idempotency } from "@bufbuild/protobuf/wkt";
import { connectErrorOf, headersOf, metadataOf, toBuffer } from "./grpc-codec.js";
import { withInterceptors } from "./interceptor-chain.js";
import { clientTracing } from "./rpc-tracing.js";

export interface ServiceTransport {
  transport: Transport;
  close(): void;
}

export interface ServiceTransportOptions {
  /** Deadline of a unary call that sets none (every call has one). */
  defaultTimeoutMs?: number;
  /** Ping interval on a connection; a peer that misses a ping is dropped and re-resolved. */
  keepaliveTimeMs?: number;
}

const DEFAULT_TIMEOUT_MS = 10_000;

/**
 * A connect `Transport` over @grpc/grpc-js, so callers keep connect's typed
 * `createClient` while the calls between our services run on grpc-js:
 *
 * - `dns:///host:port` targets resolve to every address (a headless Service's
 *   pods) and calls go round robin over them; grpc-js re-resolves when a
 *   connection drops, and servers end connections after a maximum age, so
 *   new pods get traffic from clients that were already running.
 * - keepalive pings find a dead peer during long streams.
 * - every unary call has a deadline.
 * - methods the contract marks side-effect free or idempotent
 *   (`option idempotency_level`) are retried on UNAVAILABLE; writes never
 *   are (their Idempotency-Key is the caller's to resend).
 *
 * `target` is `dns:///host:port`, or `http(s)://host:port` as before.
 */
export function createServiceTransport(target: string, services: DescService[], options: ServiceTransportOptions = {}): ServiceTransport {
  const { address, credentials } = parseTarget(target);
  const client = new grpc.Client(address, credentials, {
    "grpc.service_config": JSON.stringify(serviceConfig(services)),
    "grpc.keepalive_time_ms": options.keepaliveTimeMs ?? 10_000,
    "grpc.keepalive_timeout_ms": 5_000,
    "grpc.keepalive_permit_without_calls": 1,
    // Pod addresses change with rollouts and scaling: look again soon.
    "grpc.dns_min_time_between_resolutions_ms": 5_000,
    // A restarted pod is back within a second, not after grpc-js's default
    // backoff (up to 2 minutes): our services are on the same network.
    "grpc.initial_reconnect_backoff_ms": 100,
    "grpc.max_reconnect_backoff_ms": 1_000,
  });
  const transport = new GrpcJsTransport(client, [clientTracing], options.defaultTimeoutMs ?? DEFAULT_TIMEOUT_MS);
  return { transport, close: () => client.close() };
}

export function parseTarget(target: string): { address: string; credentials: grpc.ChannelCredentials } {
  if (target.startsWith("dns:")) return { address: target, credentials: grpc.credentials.createInsecure() };
  const url = new URL(target);
  if (url.protocol !== "http:" && url.protocol !== "https:") throw new Error(`unsupported gRPC target "${target}"`);
  const port = url.port || (url.protocol === "https:" ? "443" : "80");
  return {
    address: `dns:///${url.hostname}:${port}`,
    credentials: url.protocol === "https:" ? grpc.credentials.createSsl() : grpc.credentials.createInsecure(),
  };
}

/** round_robin over every resolved address; retries for the contract's idempotent methods. */
export function serviceConfig(services: DescService[]) {
  const idempotent = services.flatMap((service) =>
    service.methods
      .filter((m) => m.methodKind === "unary" && m.idempotency !== Idempotency.IDEMPOTENCY_UNKNOWN)
      .map((m) => ({ service: service.typeName, method: m.name })),
  );
  return {
    loadBalancingConfig: [{ round_robin: {} }],
    methodConfig:
      idempotent.length === 0
        ? []
        : [
            {
              name: idempotent,
              retryPolicy: {
                maxAttempts: 3,
                initialBackoff: "0.05s",
                maxBackoff: "0.5s",
                backoffMultiplier: 2,
                retryableStatusCodes: ["UNAVAILABLE"],
              },
            },
          ],
  };
}

const neverAborted = new AbortController().signal;

class GrpcJsTransport implements Transport {
  private readonly unaryNext: (req: UnaryRequest) => Promise<UnaryResponse>;
  private readonly streamNext: (req: StreamRequest) => Promise<StreamResponse>;

  constructor(
    private readonly client: grpc.Client,
    interceptors: Interceptor[],
    private readonly defaultTimeoutMs: number,
  ) {
    this.unaryNext = withInterceptors(interceptors, (req: UnaryRequest) => this.callUnary(req));
    this.streamNext = withInterceptors(interceptors, (req: StreamRequest) => this.callServerStream(req));
  }

  unary<I extends DescMessage, O extends DescMessage>(
    method: DescMethod & { input: I; output: O },
    signal: AbortSignal | undefined,
    timeoutMs: number | undefined,
    header: HeadersInit | undefined,
    input: unknown,
    contextValues?: ContextValues,
  ): Promise<UnaryResponse<I, O>> {
    return this.unaryNext({
      stream: false,
      ...requestCommon(method, signal, header, withDeadline(contextValues, timeoutMs ?? this.defaultTimeoutMs)),
      message: asMessage(method.input, input),
    } as UnaryRequest) as unknown as Promise<UnaryResponse<I, O>>;
  }

  stream<I extends DescMessage, O extends DescMessage>(
    method: DescMethod & { input: I; output: O },
    signal: AbortSignal | undefined,
    timeoutMs: number | undefined,
    header: HeadersInit | undefined,
    input: AsyncIterable<unknown>,
    contextValues?: ContextValues,
  ): Promise<StreamResponse<I, O>> {
    return this.streamNext({
      stream: true,
      ...requestCommon(method, signal, header, withDeadline(contextValues, timeoutMs)),
      message: input,
    } as StreamRequest) as unknown as Promise<StreamResponse<I, O>>;
  }

  private callUnary(req: UnaryRequest): Promise<UnaryResponse> {
    const { method } = req;
    const metadata = outgoingMetadata(req.header);
    const deadline = req.contextValues.get(deadlineKey);
    return new Promise((resolve, reject) => {
      let header = new Headers();
      const call = this.client.makeUnaryRequest(
        pathOf(method),
        (m: unknown) => toBuffer(toBinary(method.input, m as never)),
        (bytes: Buffer) => fromBinary(method.output, bytes),
        req.message,
        metadata,
        { deadline },
        (err, message) => {
          req.signal.removeEventListener("abort", cancel);
          if (err) reject(connectErrorOf(err));
          else resolve({ stream: false, service: req.service, method, header, trailer: new Headers(), message } as UnaryResponse);
        },
      );
      const cancel = () => call.cancel();
      call.on("metadata", (m: grpc.Metadata) => (header = headersOf(m)));
      if (req.signal.aborted) cancel();
      else req.signal.addEventListener("abort", cancel, { once: true });
    });
  }

  private async callServerStream(req: StreamRequest): Promise<StreamResponse> {
    const { method } = req;
    if (method.methodKind !== "server_streaming") throw new Error(`${pathOf(method)}: only server streams are called over gRPC`);
    let input: unknown;
    for await (const message of req.message) {
      input = message;
      break;
    }
    const metadata = outgoingMetadata(req.header);
    const deadline = req.contextValues.get(deadlineKey);
    const call = this.client.makeServerStreamRequest(
      pathOf(method),
      (m: unknown) => toBuffer(toBinary(method.input, m as never)),
      (bytes: Buffer) => fromBinary(method.output, bytes),
      asMessage(method.input, input),
      metadata,
      { deadline },
    );
    const cancel = () => call.cancel();
    if (req.signal.aborted) cancel();
    else req.signal.addEventListener("abort", cancel, { once: true });
    return {
      stream: true,
      service: req.service,
      method,
      header: new Headers(),
      trailer: new Headers(),
      message: messagesOf(call, () => req.signal.removeEventListener("abort", cancel)),
    } as StreamResponse;
  }
}

async function* messagesOf(call: grpc.ClientReadableStream<unknown>, cleanup: () => void): AsyncGenerator<unknown> {
  try {
    for await (const message of call) yield message;
  } catch (err) {
    throw connectErrorOf(err);
  } finally {
    cleanup();
    // A consumer that stops early cancels the call; its CANCELLED status is expected.
    call.on("error", () => {});
    call.cancel();
  }
}

// The deadline travels from unary()/stream() through the interceptors to the wire.
const deadlineKey = createContextKey<number>(Infinity, { description: "grpc-js call deadline (epoch ms)" });

function withDeadline(values: ContextValues | undefined, timeoutMs: number | undefined): ContextValues {
  const contextValues = values ?? createContextValues();
  if (timeoutMs !== undefined && timeoutMs > 0) contextValues.set(deadlineKey, Date.now() + timeoutMs);
  return contextValues;
}

/**
 * Calls wait for a connection (until their deadline) instead of failing at
 * once while none is up: a service restarting or a pod being replaced is a
 * moment of latency, not a burst of UNAVAILABLE.
 */
function outgoingMetadata(header: Headers): grpc.Metadata {
  const metadata = metadataOf(header);
  metadata.setOptions({ waitForReady: true });
  return metadata;
}

/** What an interceptor sees of any call, unary or stream. */
function requestCommon(method: DescMethod, signal: AbortSignal | undefined, header: HeadersInit | undefined, contextValues: ContextValues) {
  return {
    service: method.parent,
    method,
    requestMethod: "POST",
    url: pathOf(method),
    signal: signal ?? neverAborted,
    header: new Headers(header),
    contextValues,
  };
}

function pathOf(method: DescMethod): string {
  return `/${method.parent.typeName}/${method.name}`;
}

function asMessage(schema: DescMessage, value: unknown): unknown {
  return isMessage(value, schema) ? value : create(schema, value as never);
}
