// End to end on real processes: REST → score → PostgreSQL → outbox → JetStream
// → ranking → Redis → push → gateway streams, plus the gRPC surface.
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { PushService, type LeaderboardUpdate } from "@scoreboard/gen/scoreboard/v1/push_pb";
import { RankingService } from "@scoreboard/gen/scoreboard/v1/ranking_pb";
import { Scopes } from "@scoreboard/platform/auth";
import { eventually, startMesh, type Mesh } from "./harness/mesh.js";

const root = fileURLToPath(new URL("../", import.meta.url));
let mesh: Mesh;

beforeAll(async () => {
  mesh = await startMesh(inject("infra"));
  await mesh.sql(
    `INSERT INTO actions (action_id, points, description) VALUES
       ('daily-login', 5, ''), ('defeat-boss', 50, ''), ('first-win', 100, '')`,
  );
});

afterAll(async () => {
  await mesh?.stop();
});

async function postAction(actionId: unknown, token?: string) {
  const res = await fetch(`${mesh.urls.gateway}/api/actions`, {
    method: "POST",
    headers: { "content-type": "application/json", ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: JSON.stringify({ actionId }),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

/** Collects a WatchLeaderboard stream through the gateway (Connect protocol, as browsers use it). */
function watch(limit = 10) {
  const abort = new AbortController();
  const updates: LeaderboardUpdate[] = [];
  const client = createClient(PushService, createConnectTransport({ baseUrl: mesh.urls.gateway, httpVersion: "1.1" }));
  const done = (async () => {
    try {
      for await (const update of client.watchLeaderboard({ board: "global", limit }, { signal: abort.signal })) {
        updates.push(update);
      }
    } catch {
      // cancelled at the end of the test
    }
  })();
  return {
    updates,
    stop: async () => {
      abort.abort();
      await done;
    },
  };
}

describe("submitting an action", () => {
  it("moves a live WatchLeaderboard stream to the new score", async () => {
    const stream = watch();
    await eventually(async () => (stream.updates.length > 0 ? true : undefined), 10_000, "the first snapshot");
    expect(stream.updates[0]!.sequence).toBe(1n);

    const token = await mesh.token("alice", { name: "Alice" });
    const granted = await postAction("defeat-boss", token);
    expect(granted).toMatchObject({ status: 200, body: { success: true, message: "Score Updated", newScore: 50 } });

    const update = await eventually(
      async () => stream.updates.find((u) => u.entries.some((e) => e.userId === "alice" && e.score === 50n)),
      5_000,
      "alice's score on the stream",
    );
    expect(update.entries[0]).toMatchObject({ rank: 1n, userId: "alice", username: "Alice", score: 50n });
    expect(update.sequence).toBeGreaterThan(1n);
    await stream.stop();
  });

  it("refuses the same action twice with 400 and changes nothing", async () => {
    const token = await mesh.token("bob");
    expect((await postAction("daily-login", token)).status).toBe(200);
    const again = await postAction("daily-login", token);
    expect(again).toMatchObject({ status: 400, body: { success: false, code: "already_exists" } });

    const [score] = await mesh.sql<{ score: number; version: number }>("SELECT score::int, version::int FROM scores WHERE user_id = 'bob'");
    expect(score).toEqual({ score: 5, version: 1 });
    const ledger = await mesh.sql("SELECT 1 FROM ledger WHERE user_id = 'bob'");
    expect(ledger).toHaveLength(1);
  });

  it("answers 401 without a valid token and 403 without the scope", async () => {
    expect((await postAction("first-win")).status).toBe(401);
    expect((await postAction("first-win", "not-a-jwt")).status).toBe(401);
    const foreign = await mintWithOtherSecret("carol");
    expect((await postAction("first-win", foreign)).status).toBe(401);
    const readOnly = await mesh.token("carol", { scopes: [Scopes.readLeaderboard] });
    expect(await postAction("first-win", readOnly)).toMatchObject({ status: 403, body: { success: false } });
    expect(await mesh.sql("SELECT 1 FROM ledger WHERE user_id = 'carol'")).toHaveLength(0);
  });

  it("answers 400 for a missing actionId and 404 for an unknown one", async () => {
    const token = await mesh.token("dave");
    expect(await postAction(undefined, token)).toMatchObject({ status: 400, body: { message: "actionId is required" } });
    expect((await postAction(42, token)).status).toBe(400);
    expect((await postAction("x".repeat(65), token)).status).toBe(400);
    expect((await postAction("no-such-action", token)).status).toBe(404);
    const malformed = await fetch(`${mesh.urls.gateway}/api/actions`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
      body: '{"actionId":',
    });
    expect(malformed.status).toBe(400);
  });
});

describe("reading the leaderboard", () => {
  it("GET /api/leaderboard returns the top 10, highest first", async () => {
    const body = await eventually(async () => {
      const res = await fetch(`${mesh.urls.gateway}/api/leaderboard`);
      const json = (await res.json()) as { success: boolean; data: { userId: string; score: number }[] };
      return json.data.length >= 2 ? json : undefined;
    });
    expect(body.success).toBe(true);
    expect(body.data.slice(0, 2)).toEqual([
      { userId: "alice", score: 50 },
      { userId: "bob", score: 5 },
    ]);
  });

  it("streams SSE: connected first, then score:update", async () => {
    const abort = new AbortController();
    const res = await fetch(`${mesh.urls.gateway}/api/leaderboard/stream`, { signal: abort.signal });
    expect(res.headers.get("content-type")).toMatch(/^text\/event-stream/);
    const reader = res.body!.getReader();
    let text = "";
    const readUntil = async (pattern: RegExp) => {
      while (!pattern.test(text)) {
        const { value, done } = await reader.read();
        if (done) throw new Error(`stream ended before ${pattern}`);
        text += new TextDecoder().decode(value);
      }
    };
    await readUntil(/event: connected\ndata: .*\n\n/);
    expect(text.indexOf("event: connected")).toBeLessThan(text.indexOf("score:update") === -1 ? Infinity : text.indexOf("score:update"));
    await postAction("first-win", await mesh.token("erin"));
    await readUntil(/"userId":"erin","score":100/);
    const last = text.trim().split("\n\n").at(-1)!;
    expect(last).toMatch(/^event: score:update\ndata: /);
    const payload = JSON.parse(last.split("data: ")[1]!) as { topUsers: unknown[]; timestamp: string };
    expect(payload.topUsers[0]).toEqual({ userId: "erin", score: 100 });
    expect(Number.isNaN(Date.parse(payload.timestamp))).toBe(false);
    abort.abort();
  });

  it("serves RankingService to a plain @grpc/grpc-js client", async () => {
    const definition = await protoLoader.load("scoreboard/v1/ranking.proto", {
      includeDirs: [`${root}proto`],
      longs: String,
      defaults: true,
    });
    const pkg = grpc.loadPackageDefinition(definition) as unknown as {
      scoreboard: { v1: { RankingService: new (address: string, creds: grpc.ChannelCredentials) => grpc.Client } };
    };
    const client = new pkg.scoreboard.v1.RankingService(mesh.urls.ranking.replace("http://", ""), grpc.credentials.createInsecure());
    const call = <T>(method: string, request: object) =>
      new Promise<T>((resolve, reject) =>
        (client as unknown as Record<string, (request: unknown, callback: (err: Error | null, res: T) => void) => void>)[method]!(
          request,
          (err: Error | null, res: T) => (err ? reject(err) : resolve(res)),
        ),
      );
    const page = await call<{ entries: { userId: string; score: string; rank: string }[] }>("GetLeaderboard", { limit: 3 });
    expect(page.entries.map((e) => [e.rank, e.userId, e.score])).toEqual([
      ["1", "erin", "100"],
      ["2", "alice", "50"],
      ["3", "bob", "5"],
    ]);
    const rank = await call<{ entry: { rank: string } }>("GetRank", { userId: "bob" });
    expect(rank.entry.rank).toBe("3");
    await expect(call("GetRank", { userId: "nobody" })).rejects.toMatchObject({ code: grpc.status.NOT_FOUND });
    await expect(call("GetLeaderboard", { limit: 101 })).rejects.toMatchObject({ code: grpc.status.INVALID_ARGUMENT });
    client.close();
  });

  it("lets buf curl discover the services through gRPC reflection", async () => {
    const { stdout } = await promisify(execFile)(`${root}node_modules/.bin/buf`, ["curl", "--http2-prior-knowledge", "--list-methods", mesh.urls.push]);
    expect(stdout).toContain("scoreboard.v1.PushService/WatchLeaderboard");
    expect(stdout).toContain("grpc.health.v1.Health/Check");
  });

  it("streams WatchLeaderboard directly from push over gRPC", async () => {
    const client = createClient(PushService, createGrpcTransport({ baseUrl: mesh.urls.push }));
    for await (const update of client.watchLeaderboard({ limit: 2 })) {
      expect(update.entries.map((e) => e.userId)).toEqual(["erin", "alice"]);
      break;
    }
  });
});

describe("the gateway and replicas", () => {
  it("answers gRPC-Web, as browsers without Connect use it", async () => {
    const client = createClient(RankingService, createGrpcWebTransport({ baseUrl: mesh.urls.gateway, httpVersion: "1.1" }));
    const page = await client.getLeaderboard({ limit: 1 });
    expect(page.entries[0]).toMatchObject({ rank: 1n, userId: "erin", score: 100n });
    await expect(client.getRank({ userId: "nobody" })).rejects.toMatchObject({ code: 5 });
  });

  it("delivers every change to every push replica", async () => {
    const second = await mesh.startReplica("push");
    const streams = [mesh.urls.push, second].map((baseUrl) => {
      const client = createClient(PushService, createGrpcTransport({ baseUrl }));
      const abort = new AbortController();
      const updates: LeaderboardUpdate[] = [];
      const done = (async () => {
        try {
          for await (const u of client.watchLeaderboard({ limit: 3 }, { signal: abort.signal })) updates.push(u);
        } catch {
          // cancelled below
        }
      })();
      return {
        updates,
        stop: async () => {
          abort.abort();
          await done;
        },
      };
    });
    await eventually(async () => (streams.every((s) => s.updates.length > 0) ? true : undefined));
    await postAction("first-win", await mesh.token("fay"));
    for (const stream of streams) {
      const update = await eventually(async () => stream.updates.find((u) => u.entries.some((e) => e.userId === "fay")));
      expect(update.entries.slice(0, 2).map((e) => e.score)).toEqual([100n, 100n]);
    }
    await Promise.all(streams.map((s) => s.stop()));
  });
});

describe("shutdown", () => {
  it("ends open streams and exits 0 on SIGTERM", async () => {
    const stream = watch();
    await eventually(async () => (stream.updates.length > 0 ? true : undefined));
    const pushClient = createClient(PushService, createGrpcTransport({ baseUrl: mesh.urls.push }));
    const direct = (async () => {
      const seen: LeaderboardUpdate[] = [];
      try {
        for await (const update of pushClient.watchLeaderboard({})) seen.push(update);
        return "ended";
      } catch (err) {
        return `error: ${(err as Error).message}`;
      }
    })();
    await new Promise((r) => setTimeout(r, 300));
    const exit = await mesh.kill("push", "SIGTERM");
    expect(exit).toEqual({ code: 0, signal: null });
    // The stream a gRPC client held on push ended instead of hanging.
    expect(await direct).toMatch(/^(ended|error)/);
    for (const name of ["gateway", "ranking", "score"] as const) {
      expect(await mesh.kill(name, "SIGTERM")).toEqual({ code: 0, signal: null });
    }
    await stream.stop();
  });
});

async function mintWithOtherSecret(userId: string): Promise<string> {
  const { mintToken } = await import("@scoreboard/platform/auth");
  return mintToken({ ...mesh.auth, jwtSecret: "another-secret-another-secret-another" }, userId);
}
