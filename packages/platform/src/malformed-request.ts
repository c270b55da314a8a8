import type { ConnectRouter } from "@connectrpc/connect";
import type { UniversalHandler, UniversalServerResponse } from "@connectrpc/connect/protocol";

// connect's binary serialization reports a request it cannot decode as
// INTERNAL with this prefix ("parse binary: premature EOF").
const PARSE_FAILURE = "parse binary:";
const INTERNAL = 13;
const INVALID_ARGUMENT = 3;

/**
 * connect-node answers a request body that is not the method's protobuf
 * message with INTERNAL, an HTTP 500: the client's mistake reported as our
 * bug, and before any interceptor runs. This rewrites that one answer to
 * INVALID_ARGUMENT on Connect (400), gRPC-Web and gRPC; everything else
 * passes untouched. The failure is always the first (and only) thing a call
 * answers, so only the first body chunk is looked at.
 */
export function reportMalformedRequests(router: ConnectRouter): void {
  const handlers = router.handlers as UniversalHandler[];
  for (let i = 0; i < handlers.length; i++) {
    const handler = handlers[i]!;
    handlers[i] = Object.assign(async (req: Parameters<UniversalHandler>[0]) => rewrite(await handler(req)), handler);
  }
}

async function rewrite(res: UniversalServerResponse): Promise<UniversalServerResponse> {
  const type = res.header?.get("content-type") ?? "";
  if (res.status === 500 && type.startsWith("application/json") && res.body) return rewriteConnectUnary(res);
  if (type.startsWith("application/grpc-web")) return { ...res, body: res.body && mapFirstChunk(res.body, rewriteGrpcWebTrailer) };
  if (type.startsWith("application/grpc")) {
    const trailer = res.trailer;
    // connect-node reads the trailer once the body is written: the status is final by then.
    if (trailer) return Object.defineProperty({ ...res }, "trailer", { get: () => rewriteGrpcTrailer(trailer), enumerable: true });
    return res;
  }
  if (type.startsWith("application/connect+")) return { ...res, body: res.body && mapFirstChunk(res.body, rewriteConnectEndStream) };
  return res;
}

async function rewriteConnectUnary(res: UniversalServerResponse): Promise<UniversalServerResponse> {
  const chunks: Uint8Array[] = [];
  for await (const chunk of res.body!) chunks.push(chunk);
  let body = Buffer.concat(chunks);
  let status = res.status;
  const error = parseJson(body) as { code?: unknown; message?: unknown } | undefined;
  if (error?.code === "internal" && typeof error.message === "string" && error.message.startsWith(PARSE_FAILURE)) {
    body = Buffer.from(JSON.stringify({ ...error, code: "invalid_argument" }));
    status = 400;
    res.header!.set("content-length", String(body.length));
  }
  return {
    ...res,
    status,
    body: (async function* () {
      yield body;
    })(),
  };
}

function rewriteGrpcTrailer(trailer: Headers): Headers {
  if (trailer.get("grpc-status") === String(INTERNAL) && decode(trailer.get("grpc-message") ?? "").startsWith(PARSE_FAILURE)) {
    trailer.set("grpc-status", String(INVALID_ARGUMENT));
    trailer.delete("grpc-status-details-bin");
  }
  return trailer;
}

/** gRPC-Web's trailers travel as a last envelope flagged 0x80. */
function rewriteGrpcWebTrailer(chunk: Uint8Array): Uint8Array {
  if (chunk.length < 5 || chunk[0] !== 0x80) return chunk;
  const text = Buffer.from(chunk.subarray(5)).toString("latin1");
  const message = /grpc-message: ?([^\r\n]*)/i.exec(text)?.[1] ?? "";
  if (!/grpc-status: ?13\r?\n/i.test(text) || !decode(message).startsWith(PARSE_FAILURE)) return chunk;
  return envelope(
    0x80,
    Buffer.from(text.replace(/grpc-status: ?13/i, `grpc-status: ${INVALID_ARGUMENT}`).replace(/grpc-status-details-bin:[^\r\n]*\r?\n/i, "")),
  );
}

/** Connect's end of a stream: an envelope flagged 0x02 holding {"error":{"code","message"}}. */
function rewriteConnectEndStream(chunk: Uint8Array): Uint8Array {
  if (chunk.length < 5 || chunk[0] !== 0x02) return chunk;
  const end = parseJson(Buffer.from(chunk.subarray(5))) as { error?: { code?: unknown; message?: unknown } } | undefined;
  const error = end?.error;
  if (error?.code !== "internal" || typeof error.message !== "string" || !error.message.startsWith(PARSE_FAILURE)) return chunk;
  return envelope(0x02, Buffer.from(JSON.stringify({ ...end, error: { ...error, code: "invalid_argument" } })));
}

/** The same stream with its first chunk mapped; later chunks go straight through. */
function mapFirstChunk(body: AsyncIterable<Uint8Array>, map: (chunk: Uint8Array) => Uint8Array): AsyncIterable<Uint8Array> {
  return {
    [Symbol.asyncIterator]() {
      const it = body[Symbol.asyncIterator]();
      const rest: AsyncIterator<Uint8Array> = {
        next: async () => {
          const first = await it.next();
          rest.next = () => it.next();
          return first.done ? first : { done: false, value: map(first.value) };
        },
        ...(it.return ? { return: (value?: unknown) => it.return!(value) } : {}),
        ...(it.throw ? { throw: (e?: unknown) => it.throw!(e) } : {}),
      };
      return rest;
    },
  };
}

function envelope(flags: number, payload: Buffer): Uint8Array {
  const frame = Buffer.allocUnsafe(5 + payload.length);
  frame[0] = flags;
  frame.writeUInt32BE(payload.length, 1);
  payload.copy(frame, 5);
  return frame;
}

function parseJson(bytes: Buffer): unknown {
  try {
    return JSON.parse(bytes.toString("utf8"));
  } catch {
    return undefined;
  }
}

function decode(value: string): string {
  try {
    return decodeURIComponent(value);
  } catch {
    return value;
  }
}
