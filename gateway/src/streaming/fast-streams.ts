import type { ServerResponse } from "node:http";
import { type DescMessage, fromBinary, fromJson, type MessageShape } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import type { RpcRecorder } from "@scoreboard/platform/rpc-metrics";
import type { NodeHandler } from "@scoreboard/platform/rpc-server";
import { startRpcServerSpan } from "@scoreboard/platform/rpc-tracing";
import { stopOnCloseOrShutdown } from "./stream-registry.js";

export type Request = Parameters<NodeHandler>[0];
// Both response kinds have the few methods used here; one type keeps the calls simple.
export type Response = ServerResponse;

const MAX_REQUEST_BYTES = 4 * 1024;

/** How the client speaks: Connect or gRPC-Web, protobuf or JSON. */
export interface Protocol {
  kind: "connect" | "grpc-web";
  json: boolean;
  contentType: string;
}

/**
 * A server-streaming method served by the fast path. `open` admits the
 * request (reading its one message with `request`) and returns how to start
 * the stream on the response (which returns how to stop it); refusals throw
 * ConnectErrors.
 */
export interface FastStreamMethod {
  service: string;
  method: string;
  open(req: Request, protocol: Protocol, request: <S extends DescMessage>(schema: S) => Promise<MessageShape<S>>): Promise<(res: Response) => () => void>;
}

/**
 * The gateway's server streams for Connect and gRPC-Web clients (browsers,
 * connect-web, connect-node), written straight to the response instead of
 * through connect-node's handler: through connect-node each message crossed
 * half a dozen async generators per stream, and with thousands of streams
 * that, not the network, bounded the fan-out. Each method frames its own
 * messages (envelope()).
 *
 * Everything else (plain gRPC with HTTP/2 trailers, gRPC-Web text,
 * compressed requests) is left to connect-node: the handler answers false.
 */
export function createFastStreamHandler(methods: FastStreamMethod[], recordRpc?: RpcRecorder) {
  const byPath = new Map(methods.map((m) => [`/${m.service}/${m.method}`, m]));
  return (req: Request, response: Parameters<NodeHandler>[1], shutdownSignal: AbortSignal): boolean => {
    if (req.method !== "POST") return false;
    const method = byPath.get((req.url ?? "").split("?")[0]!);
    if (!method) return false;
    const protocol = protocolOf(req);
    if (!protocol) return false;
    void serve(req, response as unknown as Response, protocol, method, shutdownSignal, recordRpc);
    return true;
  };
}

function protocolOf(req: Request): Protocol | undefined {
  const contentType = String(req.headers["content-type"] ?? "")
    .split(";")[0]!
    .trim()
    .toLowerCase();
  const encoding = req.headers["connect-content-encoding"] ?? req.headers["grpc-encoding"];
  if (encoding && encoding !== "identity") return undefined;
  switch (contentType) {
    case "application/connect+proto":
      return { kind: "connect", json: false, contentType };
    case "application/connect+json":
      return { kind: "connect", json: true, contentType };
    case "application/grpc-web":
    case "application/grpc-web+proto":
      return { kind: "grpc-web", json: false, contentType };
    case "application/grpc-web+json":
      return { kind: "grpc-web", json: true, contentType };
    default:
      return undefined;
  }
}

async function serve(
  req: Request,
  res: Response,
  protocol: Protocol,
  method: FastStreamMethod,
  shutdownSignal: AbortSignal,
  recordRpc?: RpcRecorder,
): Promise<void> {
  const startedAt = performance.now();
  const endSpan = startRpcServerSpan(method.service, method.method, req.headers);
  // Same labels and rules as connect-node's interceptors: a stream the client
  // left is canceled, one our shutdown ended is ok.
  const record = (error?: ConnectError) => {
    recordRpc?.(method.service, method.method, error?.code ?? 0, (performance.now() - startedAt) / 1_000);
    endSpan(error);
  };
  let start: (res: Response) => () => void;
  try {
    start = await method.open(req, protocol, async (schema) => decodeRequest(schema, await readBody(req), protocol.json));
  } catch (err) {
    res.writeHead(200, { "content-type": protocol.contentType });
    const error = ConnectError.from(err);
    res.end(endFrame(protocol, error));
    record(error);
    return;
  }

  res.writeHead(200, { "content-type": protocol.contentType, "cache-control": "no-cache, no-transform", "x-accel-buffering": "no" });
  const stop = start(res);
  // Shutdown ends the stream cleanly (ok), so clients reconnect elsewhere; a client that left is canceled.
  stopOnCloseOrShutdown(
    res,
    shutdownSignal,
    (byShutdown) => {
      stop();
      record(byShutdown ? undefined : new ConnectError("the client went away", Code.Canceled));
    },
    () => res.end(endFrame(protocol, undefined)),
  );
}

async function readBody(req: Request): Promise<Buffer> {
  // Refused on its declared length, before a byte of it is read.
  if (Number(req.headers["content-length"] ?? 0) > MAX_REQUEST_BYTES) {
    throw new ConnectError(`request larger than ${MAX_REQUEST_BYTES} bytes`, Code.ResourceExhausted);
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_REQUEST_BYTES) throw new ConnectError(`request larger than ${MAX_REQUEST_BYTES} bytes`, Code.ResourceExhausted);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

/** The one enveloped request message of a server stream. */
function decodeRequest<S extends DescMessage>(schema: S, body: Buffer, json: boolean): MessageShape<S> {
  const name = schema.name;
  if (body.length < 5 || body.length !== 5 + body.readUInt32BE(1) || (body[0]! & ~0x01) !== 0) {
    throw new ConnectError(`malformed request envelope: expected one enveloped ${name}`, Code.InvalidArgument);
  }
  if (body[0] === 0x01) throw new ConnectError("compressed request messages are not accepted", Code.InvalidArgument);
  const message = body.subarray(5);
  try {
    return json ? fromJson(schema, JSON.parse(message.toString("utf8"))) : fromBinary(schema, message);
  } catch (err) {
    throw new ConnectError(`cannot decode ${name}: ${(err as Error).message}`, Code.InvalidArgument);
  }
}

/** One message frame: flags, length, payload. */
export function envelope(flags: number, payload: Buffer | Uint8Array): Buffer {
  const frame = Buffer.allocUnsafe(5 + payload.length);
  frame[0] = flags;
  frame.writeUInt32BE(payload.length, 1);
  frame.set(payload, 5);
  return frame;
}

/** Connect's end-of-stream message, or gRPC-Web's trailers frame. */
function endFrame(protocol: Protocol, error: ConnectError | undefined): Buffer {
  if (protocol.kind === "connect") {
    const end = error ? { error: { code: Code[error.code].replace(/([a-z])([A-Z])/g, "$1_$2").toLowerCase(), message: error.rawMessage } } : {};
    return envelope(0x02, Buffer.from(JSON.stringify(end)));
  }
  const status = error ? error.code : 0;
  const message = error ? encodeURIComponent(error.rawMessage) : "";
  return envelope(0x80, Buffer.from(`grpc-status: ${status}\r\ngrpc-message: ${message}\r\n`));
}
