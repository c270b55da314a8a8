import type { IncomingHttpHeaders } from "node:http";

/** What a stream's token may come in: a Node request, or a Connect handler's headers and URL. */
export interface StreamRequest {
  headers: IncomingHttpHeaders | Headers;
  url?: string;
}

const BEARER = /^Bearer\s+(\S+)\s*$/i;

/**
 * The credential a stream's client presented, as an Authorization value
 * ("Bearer <jwt>"), or undefined: the one way every stream (SSE, WebSocket,
 * Connect, gRPC-Web, gRPC) reads its token. Browsers cannot set headers on
 * an EventSource or a WebSocket, so after `Authorization: Bearer` the token
 * may come as the WebSocket subprotocol pair ["bearer", "<jwt>"] or as
 * ?access_token=. Only the form is read here; the verifier judges the token.
 */
export function streamToken(request: StreamRequest): string | undefined {
  const token = BEARER.exec(headerOf(request, "authorization") ?? "")?.[1] ?? subprotocolToken(request) ?? queryToken(request);
  return token ? `Bearer ${token}` : undefined;
}

function subprotocolToken(request: StreamRequest): string | undefined {
  const protocols = (headerOf(request, "sec-websocket-protocol") ?? "").split(",").map((p) => p.trim());
  const index = protocols.indexOf("bearer");
  return index >= 0 ? protocols[index + 1] || undefined : undefined;
}

function queryToken(request: StreamRequest): string | undefined {
  const query = request.url?.indexOf("?") ?? -1;
  if (query < 0) return undefined;
  return new URLSearchParams(request.url!.slice(query + 1)).get("access_token") || undefined;
}

function headerOf({ headers }: StreamRequest, name: string): string | undefined {
  const value = headers instanceof Headers ? headers.get(name) : headers[name];
  return typeof value === "string" ? value : undefined;
}
