// The gateway's WatchLeaderboard in every protocol a client may speak: the
// hand-written fast path (Connect proto/JSON over HTTP/1.1 and HTTP/2,
// gRPC-Web) and connect-node (plain gRPC), with the same messages, per-stream
// sequence numbers, errors and shutdown.
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { Code, ConnectError, createClient, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import { PushService, type LeaderboardUpdate } from "@scoreboard/gen/scoreboard/v1/push_pb";
import { eventually, startMesh, type Mesh } from "./harness/mesh.js";

let mesh: Mesh;

beforeAll(async () => {
  mesh = await startMesh(inject("infra"), { STREAM_HEARTBEAT_MS: "1000" });
  await mesh.sql("INSERT INTO actions (action_id, points) VALUES ('a', 10), ('b', 20)");
});
afterAll(async () => {
  await mesh?.stop();
});

async function grant(userId: string, actionId: string) {
  const res = await mesh.submitAction(userId, actionId);
  expect(res.status).toBe(200);
}

const transports: Record<string, () => Transport> = {
  "Connect proto, HTTP/1.1": () => createConnectTransport({ baseUrl: mesh.urls.gateway, httpVersion: "1.1" }),
  "Connect JSON, HTTP/1.1": () => createConnectTransport({ baseUrl: mesh.urls.gateway, httpVersion: "1.1", useBinaryFormat: false }),
  "Connect proto, HTTP/2": () => createConnectTransport({ baseUrl: mesh.urls.gateway, httpVersion: "2" }),
  "gRPC-Web proto, HTTP/1.1": () => createGrpcWebTransport({ baseUrl: mesh.urls.gateway, httpVersion: "1.1" }),
  "gRPC-Web JSON, HTTP/1.1": () => createGrpcWebTransport({ baseUrl: mesh.urls.gateway, httpVersion: "1.1", useBinaryFormat: false }),
  "gRPC, HTTP/2 (connect-node)": () => createGrpcTransport({ baseUrl: mesh.urls.gateway }),
};

/** Reads a stream in the background until aborted. */
function watch(transport: Transport, board = "global", limit = 100) {
  const abort = new AbortController();
  const updates: LeaderboardUpdate[] = [];
  const done = (async () => {
    for await (const update of createClient(PushService, transport).watchLeaderboard({ board, limit }, { signal: abort.signal })) updates.push(update);
  })().catch((err: unknown) => {
    if (!abort.signal.aborted) throw err;
  });
  return {
    updates,
    stop: async () => {
      abort.abort();
      await done;
    },
  };
}

describe.each(Object.entries(transports))("WatchLeaderboard over %s", (name, transport) => {
  it("sends the snapshot at once, then each change, with this stream's own sequence", async () => {
    const user = `w-${name.replace(/\W+/g, "-").toLowerCase()}`;
    const stream = watch(transport());
    const other = watch(transport());
    try {
      await eventually(async () => (stream.updates.length > 0 && other.updates.length > 0 ? true : undefined));
      await grant(user, "b");
      const last = await eventually(
        async () => {
          const found = stream.updates.findLast((u) => !u.heartbeat && u.entries.some((e) => e.userId === user));
          return found;
        },
        10_000,
        `${name} to see ${user}`,
      );
      expect(last.entries.find((e) => e.userId === user)).toMatchObject({ userId: user, username: user, score: 20n });
      expect(last.asOf).toBeDefined();
      for (const updates of [stream.updates, other.updates]) {
        // 1, 2, 3... per stream, heartbeats included.
        expect(updates.map((u) => u.sequence)).toEqual(updates.map((_, i) => BigInt(i + 1)));
        expect(updates[0]!.heartbeat).toBe(false);
      }
      // The heartbeat (1 s here) shows up while nothing changes.
      await eventually(async () => (stream.updates.some((u) => u.heartbeat && u.entries.length === 0) ? true : undefined), 5_000, "a heartbeat");
    } finally {
      await stream.stop();
      await other.stop();
    }
  });

  it("refuses a bad request with INVALID_ARGUMENT", async () => {
    const client = createClient(PushService, transport());
    const err = await (async () => {
      for await (const _ of client.watchLeaderboard({ board: "Not Valid", limit: 5 })) return undefined;
    })().catch((e: unknown) => ConnectError.from(e));
    expect(err?.code).toBe(Code.InvalidArgument);
    const tooMany = await (async () => {
      for await (const _ of client.watchLeaderboard({ limit: 101 })) return undefined;
    })().catch((e: unknown) => ConnectError.from(e));
    expect(tooMany?.code).toBe(Code.InvalidArgument);
  });
});

describe("the fast path", () => {
  it("answers a malformed Connect envelope with an error end-of-stream, not a 5xx", async () => {
    const res = await fetch(`${mesh.urls.gateway}/scoreboard.v1.PushService/WatchLeaderboard`, {
      method: "POST",
      headers: { "content-type": "application/connect+json" },
      body: "not an envelope",
    });
    expect(res.status).toBe(200);
    const body = Buffer.from(await res.arrayBuffer());
    expect(body[0]).toBe(0x02); // end-of-stream flag
    expect(JSON.parse(body.subarray(5).toString())).toMatchObject({ error: { code: "invalid_argument" } });
  });

  it("counts its streams as open Connect streams", async () => {
    const stream = watch(transports["Connect proto, HTTP/1.1"]!());
    try {
      await eventually(async () => (stream.updates.length > 0 ? true : undefined));
      const metrics = await (await fetch(`${mesh.urls.gateway}/metrics`)).text();
      expect(metrics).toMatch(/sb_open_streams\{kind="connect"\} [1-9]/);
    } finally {
      await stream.stop();
    }
  });

  it("counts each stream in sb_rpc_requests_total when it ends, as connect-node's streams are", async () => {
    const count = async (code: string) => {
      const metrics = await (await fetch(`${mesh.urls.gateway}/metrics`)).text();
      const line = new RegExp(`^sb_rpc_requests_total\\{[^}]*method="WatchLeaderboard"[^}]*code="${code}"[^}]*\\} (\\d+)`, "m").exec(metrics);
      return Number(line?.[1] ?? 0);
    };
    const canceledBefore = await count("canceled");
    const invalidBefore = await count("invalid_argument");
    const stream = watch(transports["Connect JSON, HTTP/1.1"]!());
    await eventually(async () => (stream.updates.length > 0 ? true : undefined));
    await stream.stop(); // the client leaves: canceled
    await fetch(`${mesh.urls.gateway}/scoreboard.v1.PushService/WatchLeaderboard`, {
      method: "POST",
      headers: { "content-type": "application/connect+json" },
      body: "not an envelope",
    });
    await eventually(async () => ((await count("canceled")) === canceledBefore + 1 ? true : undefined), 5_000, "the canceled stream counted");
    expect(await count("invalid_argument")).toBe(invalidBefore + 1);
  });

  it("ends its streams cleanly when the gateway shuts down", async () => {
    const stream = watch(transports["Connect proto, HTTP/1.1"]!());
    const grpcWeb = watch(transports["gRPC-Web proto, HTTP/1.1"]!());
    await eventually(async () => (stream.updates.length > 0 && grpcWeb.updates.length > 0 ? true : undefined));
    const exit = await mesh.kill("gateway", "SIGTERM");
    expect(exit.code).toBe(0);
    // Both ended without an error (the stop() of an ended stream just returns).
    await stream.stop();
    await grpcWeb.stop();
    await mesh.start("gateway");
  });
});
