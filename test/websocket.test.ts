// The WebSocket dialects: seed 002's /ws/scoreboard (JWT required) and seed
// 003's /live-updates, fed by the same fan-out as SSE and Connect.
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { WebSocket } from "ws";
import { eventually, startMesh, type Mesh } from "./harness/mesh.js";

let mesh: Mesh;

beforeAll(async () => {
  mesh = await startMesh(inject("infra"));
  await mesh.sql("INSERT INTO actions (action_id, points) VALUES ('a', 10), ('b', 30)");
});
afterAll(async () => {
  await mesh?.stop();
});

function connect(path: string, init?: { headers?: Record<string, string>; protocols?: string[] }) {
  const url = mesh.urls.gateway.replace("http://", "ws://") + path;
  const ws = new WebSocket(url, init?.protocols ?? [], { headers: init?.headers });
  const messages: Record<string, unknown>[] = [];
  ws.on("message", (data) => messages.push(JSON.parse(String(data)) as Record<string, unknown>));
  const opened = new Promise<void>((resolve, reject) => {
    ws.once("open", () => resolve());
    ws.once("unexpected-response", (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
    ws.once("error", reject);
  });
  return { ws, messages, opened };
}

async function grant(userId: string, actionId: string) {
  const res = await mesh.submitAction(userId, actionId, { name: userId.toUpperCase() });
  expect(res.status).toBe(200);
}

describe("/ws/scoreboard (seed 002)", () => {
  it("refuses a connection without a valid JWT", async () => {
    await expect(connect("/ws/scoreboard").opened).rejects.toThrow("HTTP 401");
    await expect(connect("/ws/scoreboard?access_token=garbage").opened).rejects.toThrow("HTTP 401");
  });

  it("streams {event, top10} with a token in a header, the subprotocol or the query", async () => {
    const token = await mesh.token("viewer");
    const clients = [
      connect("/ws/scoreboard", { headers: { authorization: `Bearer ${token}` } }),
      connect("/ws/scoreboard", { protocols: ["bearer", token] }),
      connect(`/ws/scoreboard?access_token=${token}`),
    ];
    await Promise.all(clients.map((c) => c.opened));
    expect(clients[1]!.ws.protocol).toBe("bearer");
    await grant("wsa", "b");
    for (const client of clients) {
      const message = await eventually(async () => client.messages.find((m) => (m.top10 as { userId: string }[] | undefined)?.some((e) => e.userId === "wsa")));
      expect(message).toEqual({ event: "leaderboardUpdate", top10: [{ userId: "wsa", username: "WSA", score: 30 }] });
      client.ws.close();
    }
  });
});

describe("/live-updates (seed 003)", () => {
  it("streams leaderboardUpdate and scoreUpdate messages", async () => {
    const client = connect("/live-updates");
    await client.opened;
    await eventually(async () => (client.messages.length > 0 ? true : undefined));
    await grant("wsb", "a");
    const update = await eventually(async () => client.messages.find((m) => m.type === "scoreUpdate" && m.playerId === "wsb"));
    expect(update).toEqual({ type: "scoreUpdate", playerId: "wsb", newScore: 10 });
    const board = client.messages.filter((m) => m.type === "leaderboardUpdate").at(-1)!;
    expect(board.topScores).toEqual([
      { playerId: "wsa", score: 30 },
      { playerId: "wsb", score: 10 },
    ]);
    client.ws.close();
  });

  it("answers 404 for an unknown stream path", async () => {
    await expect(connect("/ws/nothing").opened).rejects.toThrow("HTTP 404");
  });

  it("closes streams with 1001 when the gateway shuts down", async () => {
    const client = connect("/live-updates");
    await client.opened;
    const closed = new Promise<number>((resolve) => client.ws.once("close", (code) => resolve(code)));
    expect(await mesh.kill("gateway", "SIGTERM")).toEqual({ code: 0, signal: null });
    expect(await closed).toBe(1001);
  });
});
