import { Readable } from "node:stream";
import { describe, expect, it } from "vitest";
import { Code, ConnectError } from "@connectrpc/connect";
import { HttpError, MAX_BODY_BYTES, bearerOf, describeError, readJsonObject, type Request } from "./http.js";

/** A request as readJsonObject sees it: a byte stream with headers. */
function request(body: string | Buffer[], headers: Record<string, string | undefined> = {}): Request & { bytesRead: () => number } {
  const chunks = typeof body === "string" ? [Buffer.from(body)] : body;
  let read = 0;
  const stream = Readable.from(
    (function* () {
      for (const chunk of chunks) {
        read += chunk.length;
        yield chunk;
      }
    })(),
  );
  return Object.assign(stream, {
    headers: { "content-type": "application/json", ...headers },
    bytesRead: () => read,
  }) as unknown as Request & { bytesRead: () => number };
}

async function httpErrorOf(promise: Promise<unknown>): Promise<HttpError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(HttpError);
  return err as HttpError;
}

describe("readJsonObject", () => {
  it("parses a JSON object", async () => {
    await expect(readJsonObject(request('{"actionId":"daily-login","n":1}'))).resolves.toEqual({ actionId: "daily-login", n: 1 });
  });

  it("joins a body that arrives in several chunks, even inside a multi-byte character", async () => {
    const bytes = Buffer.from('{"name":"Zoë 😀"}');
    const chunks = [bytes.subarray(0, 12), bytes.subarray(12, 15), bytes.subarray(15)];
    await expect(readJsonObject(request(chunks))).resolves.toEqual({ name: "Zoë 😀" });
  });

  it.each(["application/json", "application/json; charset=utf-8", "Application/JSON"])("accepts content-type %j", async (type) => {
    await expect(readJsonObject(request("{}", { "content-type": type }))).resolves.toEqual({});
  });

  it.each(["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "application/jsonp", "application/json-seq", "", undefined])(
    "refuses content-type %j with 415",
    async (type) => {
      const err = await httpErrorOf(readJsonObject(request("{}", { "content-type": type })));
      expect([err.status, err.code]).toEqual([415, "unsupported_media_type"]);
    },
  );

  it("accepts a body of exactly the limit", async () => {
    const body = `{"pad":"${"x".repeat(MAX_BODY_BYTES - 10)}"}`;
    expect(Buffer.byteLength(body)).toBe(MAX_BODY_BYTES);
    await expect(readJsonObject(request(body))).resolves.toHaveProperty("pad");
  });

  it("refuses a streamed body one byte over 16 KiB with 413", async () => {
    expect(MAX_BODY_BYTES).toBe(16 * 1024);
    const body = `{"pad":"${"x".repeat(MAX_BODY_BYTES - 9)}"}`;
    const err = await httpErrorOf(readJsonObject(request(body)));
    expect([err.status, err.code]).toEqual([413, "payload_too_large"]);
  });

  it("stops reading a large chunked body at the limit", async () => {
    const chunk = Buffer.alloc(4096, 0x20);
    const req = request(Array.from({ length: 64 }, () => chunk));
    const err = await httpErrorOf(readJsonObject(req));
    expect(err.status).toBe(413);
    expect(req.bytesRead()).toBeLessThan(64 * 4096);
  });

  it("refuses a declared content-length over the limit with 413 before reading", async () => {
    const req = request("{}", { "content-length": String(MAX_BODY_BYTES + 1) });
    const err = await httpErrorOf(readJsonObject(req));
    expect(err.status).toBe(413);
    expect(req.bytesRead()).toBe(0);
  });

  it.each([
    ["not JSON", "actionId=daily-login"],
    ["truncated JSON", '{"actionId":'],
    ["an empty body", ""],
  ])("refuses %s with 400 invalid_json", async (_name, body) => {
    const err = await httpErrorOf(readJsonObject(request(body)));
    expect([err.status, err.code, err.message]).toEqual([400, "invalid_json", "body is not valid JSON"]);
  });

  it.each([
    ["an array", "[1,2]"],
    ["null", "null"],
    ["a string", '"hi"'],
    ["a number", "42"],
  ])("refuses %s with 400: the body must be an object", async (_name, body) => {
    const err = await httpErrorOf(readJsonObject(request(body)));
    expect([err.status, err.message]).toEqual([400, "body must be a JSON object"]);
  });
});

describe("describeError", () => {
  it("describes an HttpError with its own status and code", () => {
    expect(describeError(new HttpError(413, "too big", "payload_too_large"))).toEqual({
      status: 413,
      code: "payload_too_large",
      message: "too big",
    });
  });

  it.each([
    [Code.NotFound, 404, "not_found"],
    [Code.AlreadyExists, 409, "already_exists"],
    [Code.Unauthenticated, 401, "unauthenticated"],
    [Code.PermissionDenied, 403, "permission_denied"],
    [Code.InvalidArgument, 400, "invalid_argument"],
    [Code.Unavailable, 503, "unavailable"],
    [Code.DeadlineExceeded, 504, "deadline_exceeded"],
  ])("describes a ConnectError with code %s as %d %s, without the code prefix in the message", (code, status, name) => {
    expect(describeError(new ConnectError("what went wrong", code))).toEqual({ status, code: name, message: "what went wrong" });
  });

  it("describes anything else as a 500", () => {
    const described = describeError(new TypeError("x is undefined"));
    expect(described).toEqual({ status: 500, code: "internal", message: "internal error" });
  });
});

describe("bearerOf", () => {
  it("returns the authorization header when present", () => {
    expect(bearerOf(request("", { authorization: "Bearer abc" }))).toBe("Bearer abc");
    expect(bearerOf(request(""))).toBeUndefined();
  });
});
