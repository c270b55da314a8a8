import type { IncomingMessage } from "node:http";
import { cors as connectCors } from "@connectrpc/connect";
import { IDEMPOTENCY_KEY_HEADER } from "@scoreboard/platform/idempotency-key";
import { sendJson, type Request, type Response } from "./http.js";

/** On every answer: no MIME sniffing of JSON or event streams, no URL (and its ?access_token=) in Referer. */
export const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
};

// What a page on another origin needs to call every API here: Connect's own
// list (connect-web, gRPC-Web), plus our credentials, retry key and revalidation.
const ALLOWED_HEADERS = [...connectCors.allowedHeaders, "Authorization", IDEMPOTENCY_KEY_HEADER, "X-API-Key", "If-None-Match"].join(", ");
const ALLOWED_METHODS = connectCors.allowedMethods.join(", ");
const EXPOSED_HEADERS = [...connectCors.exposedHeaders, "Retry-After", "RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset", "ETag"].join(", ");
const PREFLIGHT_MAX_AGE_S = "7200";

/**
 * The gateway's browser-facing policy: security headers on every answer and
 * CORS for the origins in CORS_ALLOWED_ORIGINS (none by default, so only the
 * gateway's own page can call it from a browser). An allowed origin gets
 * `Access-Control-Allow-Origin` on REST, SSE, Connect and gRPC-Web answers
 * and 204 to its preflights; any other origin gets no CORS header, and 403
 * to a preflight. Tokens travel in headers, never cookies, so credentials
 * are not allowed.
 */
export class EdgePolicy {
  private readonly origins: ReadonlySet<string>;

  constructor(allowedOrigins: readonly string[]) {
    this.origins = new Set(allowedOrigins);
  }

  /** Sets the headers of every answer; answers a CORS preflight itself (then true). */
  apply(req: Request, res: Response): boolean {
    for (const [name, value] of Object.entries(SECURITY_HEADERS)) res.setHeader(name, value);
    const origin = headerOf(req, "origin");
    if (this.origins.size > 0) res.setHeader("vary", "Origin");
    const allowed = origin !== undefined && this.origins.has(origin);
    if (req.method === "OPTIONS" && origin !== undefined && headerOf(req, "access-control-request-method") !== undefined) {
      if (!allowed) {
        sendJson(res, 403, { success: false, code: "permission_denied", message: `origin ${origin} is not allowed (CORS_ALLOWED_ORIGINS)` });
        return true;
      }
      res.writeHead(204, {
        "access-control-allow-origin": origin,
        "access-control-allow-methods": ALLOWED_METHODS,
        "access-control-allow-headers": ALLOWED_HEADERS,
        "access-control-max-age": PREFLIGHT_MAX_AGE_S,
        "cache-control": "no-store",
      });
      res.end();
      return true;
    }
    if (allowed) {
      res.setHeader("access-control-allow-origin", origin);
      res.setHeader("access-control-expose-headers", EXPOSED_HEADERS);
    }
    return false;
  }

  /**
   * Whether a WebSocket upgrade may proceed. Browsers send Origin on every
   * upgrade and WebSockets have no CORS, so once origins are configured a
   * page of any other origin is refused (the gateway's own page, same origin,
   * always passes). Without a list every origin passes, as before; clients
   * that are not browsers send no Origin and pass.
   */
  allowsUpgrade(req: IncomingMessage): boolean {
    const origin = headerOf(req, "origin");
    if (this.origins.size === 0 || origin === undefined || this.origins.has(origin)) return true;
    try {
      return new URL(origin).host === req.headers.host;
    } catch {
      return false;
    }
  }
}

function headerOf(req: IncomingMessage | Request, name: string): string | undefined {
  const value = req.headers[name];
  return typeof value === "string" ? value : undefined;
}
