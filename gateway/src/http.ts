import type { NodeHandler } from "@scoreboard/platform/rpc-server";
import { Code, ConnectError } from "@connectrpc/connect";
import { isValidId } from "@scoreboard/platform/auth";
import { codeName, httpStatusOf } from "@scoreboard/platform/errors";

// The request and response connect-node hands to its fallback: HTTP/1.1 or HTTP/2.
export type Request = Parameters<NodeHandler>[0];
export type Response = Parameters<NodeHandler>[1];

/** Bodies larger than this are refused before they are parsed. */
export const MAX_BODY_BYTES = 16 * 1024;

/** A client mistake the REST layer reports as a 4xx with a JSON message. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly code: string,
  ) {
    super(message);
  }
}

export function sendJson(res: Response, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    "content-type": "application/json; charset=utf-8",
    "content-length": String(Buffer.byteLength(text)),
    "cache-control": "no-store",
    ...headers,
  });
  res.end(text);
}

// application/json, with parameters (charset) or none: not application/jsonp, not a missing type.
const JSON_MEDIA_TYPE = /^application\/json[ \t]*(;|$)/i;

/** Reads a JSON object body: 415 unless it says application/json, 413 above the limit, 400 for bad JSON. */
export async function readJsonObject(req: Request): Promise<Record<string, unknown>> {
  if (!JSON_MEDIA_TYPE.test(String(req.headers["content-type"] ?? ""))) {
    throw new HttpError(415, "content-type must be application/json", "unsupported_media_type");
  }
  const declared = Number(req.headers["content-length"] ?? 0);
  if (declared > MAX_BODY_BYTES) throw new HttpError(413, `body exceeds ${MAX_BODY_BYTES} bytes`, "payload_too_large");
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) throw new HttpError(413, `body exceeds ${MAX_BODY_BYTES} bytes`, "payload_too_large");
    chunks.push(chunk);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.concat(chunks).toString("utf8"));
  } catch {
    throw new HttpError(400, "body is not valid JSON", "invalid_json");
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    throw new HttpError(400, "body must be a JSON object", "invalid_json");
  }
  return parsed as Record<string, unknown>;
}

/** The HTTP status and JSON error fields for any failure, through the one shared code table. */
export function describeError(err: unknown): { status: number; code: string; message: string } {
  if (err instanceof HttpError) return { status: err.status, code: err.code, message: err.message };
  // Anything else is our bug: its message is not for clients.
  if (!(err instanceof ConnectError)) return { status: 500, code: "internal", message: "internal error" };
  const connect = fromUpstream(err);
  return { status: httpStatusOf(connect.code), code: codeName(connect.code), message: connect.rawMessage };
}

export function bearerOf(req: Request): string | undefined {
  const value = req.headers.authorization;
  return typeof value === "string" ? value : undefined;
}

/** A required id field: a string of 1..64 characters without control characters. */
export function idField(body: Record<string, unknown>, name: string): string {
  const value = body[name];
  if (value === undefined || value === null || value === "") throw new HttpError(400, `${name} is required`, "invalid_argument");
  if (typeof value !== "string") throw new HttpError(400, `${name} must be a string`, "invalid_argument");
  if (!isValidId(value)) throw new HttpError(400, `${name} must be 1..64 characters without control characters`, "invalid_argument");
  return value;
}

/** A required integer field within [min, max]; rejects strings, fractions, NaN and unsafe integers. */
export function integerField(body: Record<string, unknown>, name: string, min: number, max: number): number {
  const value = body[name];
  if (value === undefined || value === null) throw new HttpError(400, `${name} is required`, "invalid_argument");
  if (typeof value !== "number" || !Number.isSafeInteger(value)) throw new HttpError(400, `${name} must be an integer`, "invalid_argument");
  if (value < min || value > max) throw new HttpError(400, `${name} must be ${min}..${max}`, "invalid_argument");
  return value;
}

/** Sends a failure as `{"success":false,"message","code"}` (seeds 000, 001, 003, 004), with any extra headers. */
export function sendFailure(res: Response, err: unknown, override?: (code: string) => number | undefined): void {
  const { status, code, message } = describeError(err);
  const headers = err instanceof HttpError && "headers" in err ? (err as HttpError & { headers: Record<string, string> }).headers : {};
  sendJson(res, override?.(code) ?? status, { success: false, message, code }, headers);
}

/**
 * Our services never answer CANCELED or ABORTED themselves (but for
 * UpdateBoard's stale revision, which the RPC proxy passes on as it is): from
 * an upstream call they mean the connection broke (a service died mid-call,
 * "read ECONNRESET"). That is retryable, so clients get UNAVAILABLE (503).
 */
export function fromUpstream(err: unknown): ConnectError {
  const error = ConnectError.from(err);
  if (error.code === Code.Canceled || error.code === Code.Aborted) {
    return new ConnectError("an upstream service went away; retry", Code.Unavailable);
  }
  return error;
}
