import * as grpc from "@grpc/grpc-js";
import { ConnectError } from "@connectrpc/connect";

/** A view of protobuf bytes as the Buffer grpc-js writes, without copying. */
export function toBuffer(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** gRPC metadata as Fetch Headers (what connect handlers and interceptors read); binary values in base64. */
export function headersOf(metadata: grpc.Metadata): Headers {
  const headers = new Headers();
  for (const [key, value] of Object.entries(metadata.getMap())) {
    headers.set(key, typeof value === "string" ? value : Buffer.from(value).toString("base64"));
  }
  return headers;
}

export function metadataOf(headers: Headers): grpc.Metadata {
  const metadata = new grpc.Metadata();
  headers.forEach((value, key) => {
    metadata.add(key, key.endsWith("-bin") ? Buffer.from(value, "base64") : value);
  });
  return metadata;
}

export function hasEntries(headers: Headers | undefined): headers is Headers {
  if (!headers) return false;
  for (const _ of headers.keys()) return true;
  return false;
}

/** A grpc-js error as the ConnectError callers handle; connect's codes are gRPC's status codes. */
export function connectErrorOf(err: unknown): ConnectError {
  if (err instanceof ConnectError) return err;
  const status = err as Partial<grpc.ServiceError>;
  if (typeof status.code === "number" && status.code !== grpc.status.OK) {
    return new ConnectError(status.details ?? status.message ?? "", status.code as number, status.metadata ? headersOf(status.metadata) : undefined);
  }
  return ConnectError.from(err);
}
