import type { ServerResponse } from "node:http";
import { create, fromBinary, fromJson, toBinary, toJson } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import {
  LeaderboardUpdateSchema,
  WatchLeaderboardRequestSchema,
  type LeaderboardUpdate,
  type WatchLeaderboardRequest,
} from "@scoreboard/gen/scoreboard/v1/push_pb";
import type { Logger } from "@scoreboard/platform/logger";
import type { RpcRecorder } from "@scoreboard/platform/rpc-metrics";
import type { NodeHandler } from "@scoreboard/platform/rpc-server";
import { startRpcServerSpan } from "@scoreboard/platform/rpc-tracing";
import { StreamRegistry } from "./stream-registry.js";
import { streamToken } from "./stream-token.js";
import { type AdmittedWatch, admitWatch, streamWatch, type WatchLeaderboardDeps } from "./watch-leaderboard.js";

type Request = Parameters<NodeHandler>[0];
// Both response kinds have the few methods used here; one type keeps the calls simple.
type Response = ServerResponse;

const SERVICE = "scoreboard.v1.PushService";
const METHOD = "WatchLeaderboard";
const PATH = `/${SERVICE}/${METHOD}`;
const MAX_REQUEST_BYTES = 4 * 1024;

/**
 * WatchLeaderboard for Connect and gRPC-Web clients (browsers, connect-web,
 * connect-node), written straight to the response instead of through
 * connect-node's handler. Every client of a feed gets the same update; its
 * protobuf or JSON body is encoded once and each stream only adds its own
 * sequence number (protobuf fields may come in any order, so the sequence
 * field is appended to the shared bytes). Through connect-node each message
 * crossed half a dozen async generators per stream, and with thousands of
 * streams that, not the network, bounded the fan-out.
 *
 * Everything else (plain gRPC with HTTP/2 trailers, gRPC-Web text,
 * compressed requests) is left to connect-node: the handler answers false.
 */
export interface WatchStreamOptions extends WatchLeaderboardDeps {
  logger: Logger;
  clientAddress: (req: Request) => string;
  /** Counts each stream in sb_rpc_requests_total / sb_rpc_duration_seconds, as connect-node's streams are. */
  recordRpc?: RpcRecorder;
}

export function createWatchStreamHandler(options: WatchStreamOptions) {
  return (req: Request, response: Parameters<NodeHandler>[1], shutdownSignal: AbortSignal): boolean => {
    const res = response as unknown as Response;
    if (req.method !== "POST" || (req.url ?? "").split("?")[0] !== PATH) return false;
    const protocol = protocolOf(req);
    if (!protocol) return false;
    void serve(req, res, protocol, StreamRegistry.of(shutdownSignal), options, shutdownSignal);
    return true;
  };
}

interface Protocol {
  kind: "connect" | "grpc-web";
  json: boolean;
  contentType: string;
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
  registry: StreamRegistry,
  options: WatchStreamOptions,
  shutdownSignal: AbortSignal,
): Promise<void> {
  const startedAt = performance.now();
  const endSpan = startRpcServerSpan(SERVICE, METHOD, req.headers);
  // Same labels and rules as connect-node's interceptors: a stream the client
  // left is canceled, one our shutdown ended is ok.
  const record = (error?: ConnectError) => {
    options.recordRpc?.(SERVICE, METHOD, error?.code ?? 0, (performance.now() - startedAt) / 1_000);
    endSpan(error);
  };
  let watch: AdmittedWatch;
  try {
    watch = await admitWatch(options, options.clientAddress(req), streamToken(req), async () => decodeRequest(await readBody(req), protocol.json));
  } catch (err) {
    refuse(res, protocol, ConnectError.from(err), record);
    return;
  }

  res.writeHead(200, { "content-type": protocol.contentType, "cache-control": "no-cache, no-transform", "x-accel-buffering": "no" });
  const stop = streamWatch(options, watch, res, (update, sequence) =>
    update ? updateFrame(update, sequence, protocol.json) : heartbeatFrame(sequence, protocol.json),
  );

  let finished = false;
  const finish = () => {
    if (finished) return;
    finished = true;
    stop();
    unregister();
    record(shutdownSignal.aborted ? undefined : new ConnectError("the client went away", Code.Canceled));
  };
  // Shutdown ends the stream cleanly, so clients reconnect elsewhere.
  const unregister = registry.add(() => {
    finish();
    res.end(endFrame(protocol, undefined));
  });
  res.once("close", finish);
}

function refuse(res: Response, protocol: Protocol, error: ConnectError, record: (error: ConnectError) => void): void {
  res.writeHead(200, { "content-type": protocol.contentType });
  res.end(endFrame(protocol, error));
  record(error);
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
function decodeRequest(body: Buffer, json: boolean): WatchLeaderboardRequest {
  if (body.length < 5 || body.length !== 5 + body.readUInt32BE(1) || (body[0]! & ~0x01) !== 0) {
    throw new ConnectError("malformed request envelope: expected one enveloped WatchLeaderboardRequest", Code.InvalidArgument);
  }
  if (body[0] === 0x01) throw new ConnectError("compressed request messages are not accepted", Code.InvalidArgument);
  const message = body.subarray(5);
  try {
    return json ? fromJson(WatchLeaderboardRequestSchema, JSON.parse(message.toString("utf8"))) : fromBinary(WatchLeaderboardRequestSchema, message);
  } catch (err) {
    throw new ConnectError(`cannot decode WatchLeaderboardRequest: ${(err as Error).message}`, Code.InvalidArgument);
  }
}

function envelope(flags: number, payload: Buffer | Uint8Array): Buffer {
  const frame = Buffer.allocUnsafe(5 + payload.length);
  frame[0] = flags;
  frame.writeUInt32BE(payload.length, 1);
  frame.set(payload, 5);
  return frame;
}

// The shared part of an update, encoded once per update and format.
const sharedProto = new WeakMap<LeaderboardUpdate, Buffer>();
const sharedJson = new WeakMap<LeaderboardUpdate, string>();

// Streams that joined together count the same sequence numbers, so most of
// an update's frames are byte-identical: each (format, sequence) is built
// once per update and the same bytes are written to every such stream.
const frames = new WeakMap<LeaderboardUpdate, Map<number, Buffer>>();

function updateFrame(update: LeaderboardUpdate, sequence: number, json: boolean): Buffer {
  let built = frames.get(update);
  if (!built) {
    built = new Map();
    frames.set(update, built);
  }
  const key = json ? -sequence : sequence;
  let frame = built.get(key);
  if (!frame) {
    frame = buildUpdateFrame(update, sequence, json);
    built.set(key, frame);
  }
  return frame;
}

function buildUpdateFrame(update: LeaderboardUpdate, sequence: number, json: boolean): Buffer {
  if (json) {
    let body = sharedJson.get(update);
    if (body === undefined) {
      body = JSON.stringify(
        toJson(LeaderboardUpdateSchema, create(LeaderboardUpdateSchema, { entries: update.entries, asOf: update.asOf, position: update.position })),
      );
      sharedJson.set(update, body);
    }
    const withSequence = body === "{}" ? `{"sequence":"${sequence}"}` : `${body.slice(0, -1)},"sequence":"${sequence}"}`;
    return envelope(0, Buffer.from(withSequence));
  }
  let body = sharedProto.get(update);
  if (!body) {
    body = Buffer.from(
      toBinary(LeaderboardUpdateSchema, create(LeaderboardUpdateSchema, { entries: update.entries, asOf: update.asOf, position: update.position })),
    );
    sharedProto.set(update, body);
  }
  // Field 3 (sequence, uint64) appended as wire bytes: its tag, then the varint.
  let varintLength = 1;
  for (let v = sequence; v >= 0x80; v = Math.floor(v / 0x80)) varintLength += 1;
  const frame = Buffer.allocUnsafe(5 + body.length + 1 + varintLength);
  frame[0] = 0;
  frame.writeUInt32BE(body.length + 1 + varintLength, 1);
  body.copy(frame, 5);
  let at = 5 + body.length;
  frame[at++] = (3 << 3) | 0;
  let value = sequence;
  for (; value >= 0x80; value = Math.floor(value / 0x80)) frame[at++] = (value % 0x80) | 0x80;
  frame[at] = value;
  return frame;
}

function heartbeatFrame(sequence: number, json: boolean): Buffer {
  const message = create(LeaderboardUpdateSchema, { heartbeat: true, sequence: BigInt(sequence) });
  return envelope(0, json ? Buffer.from(JSON.stringify(toJson(LeaderboardUpdateSchema, message))) : toBinary(LeaderboardUpdateSchema, message));
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
