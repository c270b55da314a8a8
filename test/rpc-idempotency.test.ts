// The Idempotency-Key header over Connect and gRPC through the gateway: a
// retry with the same header gets the first answer and grants once, as on REST.
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { Code, createClient, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { ScoreService } from "@scoreboard/gen/scoreboard/v1/score_pb";
import { startMesh, type Mesh } from "./harness/mesh.js";
import { codeOf } from "./harness/rpc-errors.js";

let mesh: Mesh;

beforeAll(async () => {
  mesh = await startMesh(inject("infra"));
  await mesh.sql(`INSERT INTO actions (action_id, points) VALUES ('quest', 20)`);
});
afterAll(async () => {
  await mesh?.stop();
});

const transports: Record<string, () => Transport> = {
  Connect: () => createConnectTransport({ baseUrl: mesh.urls.gateway, httpVersion: "1.1" }),
  gRPC: () => createGrpcTransport({ baseUrl: mesh.urls.gateway }),
};

const total = async (userId: string) =>
  Number((await mesh.sql<{ score: string }>("SELECT score::text FROM scores WHERE user_id = $1", [userId]))[0]?.score ?? 0);

const grants = async (userId: string) => Number((await mesh.sql<{ n: string }>("SELECT count(*)::text AS n FROM ledger WHERE user_id = $1", [userId]))[0]!.n);

describe.each(Object.keys(transports))("Idempotency-Key over %s through the gateway", (name) => {
  const client = () => createClient(ScoreService, transports[name]!());
  const as = async (userId: string, key?: string) => ({
    headers: { authorization: `Bearer ${await mesh.token(userId)}`, ...(key === undefined ? {} : { "idempotency-key": key }) },
  });

  it("answers AddScore twice with the same header once granted, then replayed", async () => {
    const userId = `rpc-add-${name}`;
    const first = await client().addScore({ userId, delta: 3n }, await as(userId, "order-1"));
    const again = await client().addScore({ userId, delta: 3n }, await as(userId, "order-1"));
    expect(first).toMatchObject({ newScore: 3n, replayed: false });
    expect(again).toMatchObject({ newScore: 3n, replayed: true, requestId: first.requestId });
    expect(await total(userId)).toBe(3);
    expect(await grants(userId)).toBe(1);
    // The same key for another request is refused, as on REST.
    expect(await codeOf(client().addScore({ userId, delta: 4n }, await as(userId, "order-1")))).toBe(Code.FailedPrecondition);
  });

  it("answers SubmitAction twice with the same header once granted, then replayed", async () => {
    const userId = `rpc-act-${name}`;
    const first = await client().submitAction({ actionId: "quest" }, await as(userId, "quest-1"));
    const again = await client().submitAction({ actionId: "quest" }, await as(userId, "quest-1"));
    expect(again).toMatchObject({ newScore: 20n, replayed: true, requestId: first.requestId });
    expect(await total(userId)).toBe(20);
  });

  it("refuses a malformed header, or a header and a field that differ, as INVALID_ARGUMENT", async () => {
    const userId = `rpc-bad-${name}`;
    expect(await codeOf(client().addScore({ userId, delta: 1n }, await as(userId, "k".repeat(65))))).toBe(Code.InvalidArgument);
    expect(await codeOf(client().addScore({ userId, delta: 1n, idempotencyKey: "a" }, await as(userId, "b")))).toBe(Code.InvalidArgument);
    const same = await client().addScore({ userId, delta: 1n, idempotencyKey: "c" }, await as(userId, "c"));
    const byField = await client().addScore({ userId, delta: 1n, idempotencyKey: "c" }, await as(userId));
    expect(byField).toMatchObject({ replayed: true, requestId: same.requestId });
    expect(await total(userId)).toBe(1);
  });
});
