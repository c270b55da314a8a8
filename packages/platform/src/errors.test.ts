import { describe, expect, it } from "vitest";
import { Code, ConnectError } from "@connectrpc/connect";
import { codeToHttpStatus } from "@connectrpc/connect/protocol-connect";
import { codeName, httpStatusOf, isTransientStoreError, toConnectError } from "./errors.js";

const allCodes = Object.values(Code).filter((v): v is Code => typeof v === "number");

describe("httpStatusOf", () => {
  it.each([
    [Code.Canceled, 499],
    [Code.Unknown, 500],
    [Code.InvalidArgument, 400],
    [Code.DeadlineExceeded, 504],
    [Code.NotFound, 404],
    [Code.AlreadyExists, 409],
    [Code.PermissionDenied, 403],
    [Code.ResourceExhausted, 429],
    [Code.FailedPrecondition, 400],
    [Code.Aborted, 409],
    [Code.OutOfRange, 400],
    [Code.Unimplemented, 501],
    [Code.Internal, 500],
    [Code.Unavailable, 503],
    [Code.DataLoss, 500],
    [Code.Unauthenticated, 401],
  ])("%s → %d", (code, status) => {
    expect(httpStatusOf(code)).toBe(status);
  });

  it("covers every code and agrees with the Connect protocol's own table", () => {
    expect(allCodes).toHaveLength(16);
    for (const code of allCodes) expect(httpStatusOf(code), Code[code]).toBe(codeToHttpStatus(code));
  });

  it("maps an out-of-range code to 500", () => {
    expect(httpStatusOf(99 as Code)).toBe(500);
  });
});

describe("codeName", () => {
  it.each([
    [Code.AlreadyExists, "already_exists"],
    [Code.InvalidArgument, "invalid_argument"],
    [Code.DeadlineExceeded, "deadline_exceeded"],
    [Code.NotFound, "not_found"],
    [Code.Internal, "internal"],
    [Code.Unauthenticated, "unauthenticated"],
    [Code.DataLoss, "data_loss"],
  ])("%s → %s", (code, name) => {
    expect(codeName(code)).toBe(name);
  });

  it("gives every code a distinct snake_case name", () => {
    const names = allCodes.map(codeName);
    for (const name of names) expect(name).toMatch(/^[a-z]+(_[a-z]+)*$/);
    expect(new Set(names).size).toBe(allCodes.length);
  });

  it("names an out-of-range code unknown", () => {
    expect(codeName(99 as Code)).toBe("unknown");
  });
});

const withCode = (code: string, message = "boom") => Object.assign(new Error(message), { code });

describe("toConnectError", () => {
  it.each([
    ["pg connection failure 08006", withCode("08006")],
    ["pg cannot connect 08001", withCode("08001")],
    ["pg admin shutdown 57P01", withCode("57P01")],
    ["pg crash shutdown 57P02", withCode("57P02")],
    ["pg cannot connect now 57P03", withCode("57P03")],
    ["ECONNREFUSED", withCode("ECONNREFUSED")],
    ["ECONNRESET", withCode("ECONNRESET")],
    ["ETIMEDOUT", withCode("ETIMEDOUT")],
    ["ENOTFOUND", withCode("ENOTFOUND")],
    ["EPIPE", withCode("EPIPE")],
    ["AggregateError from a dual-stack connect", Object.assign(new AggregateError([], ""), { code: "ECONNREFUSED" })],
    ["pg 'Connection terminated unexpectedly'", new Error("Connection terminated unexpectedly")],
    ["ioredis 'Connection is closed.'", new Error("Connection is closed.")],
    ["ioredis retries exhausted", new Error("Reached the max retries per request limit (which is 20).")],
  ])("%s → UNAVAILABLE", (_name, err) => {
    expect(isTransientStoreError(err)).toBe(true);
    const converted = toConnectError(err, "leaderboard store");
    expect(converted.code).toBe(Code.Unavailable);
    expect(converted.rawMessage).toBe("leaderboard store is unavailable, retry shortly");
  });

  it.each([
    ["pg unique violation 23505", withCode("23505")],
    ["pg syntax error 42601", withCode("42601")],
    ["pg 57014 (query canceled, not a shutdown)", withCode("57014")],
    ["plain Error", new Error("bug")],
    ["TypeError", new TypeError("x is undefined")],
    ["a thrown string", "ECONNREFUSED"],
    ["undefined", undefined],
  ])("%s → INTERNAL", (_name, err) => {
    const converted = toConnectError(err, "score store");
    expect(converted.code).toBe(Code.Internal);
    expect(converted.rawMessage).toBe("score store failed");
  });

  it("keeps the original error as the cause of INTERNAL, without leaking its message", () => {
    const original = withCode("23505", "duplicate key value violates unique constraint");
    const converted = toConnectError(original, "score store");
    expect(converted.cause).toBe(original);
    expect(converted.message).not.toContain("duplicate key");
  });

  it("passes a ConnectError through unchanged", () => {
    const original = new ConnectError("nope", Code.PermissionDenied);
    expect(toConnectError(original, "x")).toBe(original);
  });

  it("treats a non-Error object with a socket code as not transient", () => {
    // Documented behaviour: only Error instances are classified. pg, ioredis
    // and Node sockets always throw Error instances.
    expect(isTransientStoreError({ code: "ECONNREFUSED" })).toBe(false);
    expect(toConnectError({ code: "ECONNREFUSED" }, "x").code).toBe(Code.Internal);
  });
});
