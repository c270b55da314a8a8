// One set of handlers, every way in: a grpc-js client on a service's gRPC
// port (how our services call each other), a connect-node client on its
// shared port (Connect protocol), and Connect-Web in a real browser through
// the gateway all reach the same ScoreService and RankingService handlers,
// and every gRPC port answers reflection and grpc.health.v1.
import { randomBytes } from "node:crypto";
import { fileURLToPath } from "node:url";
import { createClient, type Client } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { build } from "esbuild";
import type { Browser } from "playwright-core";
import { launchChromium, requireChromium } from "./harness/browser.js";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { Health, HealthCheckResponse_ServingStatus } from "@scoreboard/gen/grpc/health/v1/health_pb";
import { ServerReflection } from "@scoreboard/gen/grpc/reflection/v1/reflection_pb";
import { RankingService } from "@scoreboard/gen/scoreboard/v1/ranking_pb";
import { ScoreService } from "@scoreboard/gen/scoreboard/v1/score_pb";
import { createServiceTransport, type ServiceTransport } from "@scoreboard/platform/clients";
import { eventually, startMesh, type Mesh } from "./harness/mesh.js";

const root = fileURLToPath(new URL("../", import.meta.url));

// A page script that calls the gateway with Connect-Web, as a product's frontend would.
const browserProbe = `
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-web";
import { RankingService } from "@scoreboard/gen/scoreboard/v1/ranking_pb";
import { ScoreService } from "@scoreboard/gen/scoreboard/v1/score_pb";
const transport = createConnectTransport({ baseUrl: location.origin });
const score = createClient(ScoreService, transport);
const ranking = createClient(RankingService, transport);
window.sbProbe = {
  async addScore(token, delta) {
    const res = await score.addScore({ delta: BigInt(delta) }, { headers: { authorization: "Bearer " + token } });
    return { newScore: Number(res.newScore), requestId: res.requestId };
  },
  async getRank(userId) {
    const res = await ranking.getRank({ board: "global", userId });
    return { rank: Number(res.entry.rank), score: Number(res.entry.score) };
  },
};
`;

describe("the same handlers over grpc-js, connect-node and Connect-Web", () => {
  const user = `proto-${randomBytes(4).toString("hex")}`;
  let mesh: Mesh;
  let browser: Browser | undefined;
  let token: string;
  const transports: ServiceTransport[] = [];
  let grpcJs: { score: Client<typeof ScoreService>; ranking: Client<typeof RankingService> };
  let connectNode: { score: Client<typeof ScoreService>; ranking: Client<typeof RankingService> };

  beforeAll(async () => {
    requireChromium();
    mesh = await startMesh(inject("infra"));
    token = await mesh.token(user);
    const score = createServiceTransport(mesh.grpcUrls.score, [ScoreService]);
    const ranking = createServiceTransport(mesh.grpcUrls.ranking, [RankingService]);
    transports.push(score, ranking);
    grpcJs = { score: createClient(ScoreService, score.transport), ranking: createClient(RankingService, ranking.transport) };
    connectNode = {
      score: createClient(ScoreService, createConnectTransport({ baseUrl: mesh.urls.score, httpVersion: "1.1" })),
      ranking: createClient(RankingService, createConnectTransport({ baseUrl: mesh.urls.ranking, httpVersion: "1.1" })),
    };
    browser = await launchChromium();
  });

  afterAll(async () => {
    for (const t of transports) t.close();
    await browser?.close();
    await mesh?.stop();
  }, 60_000);

  it("grants through each and reads one ledger back from each", async () => {
    const headers = { authorization: `Bearer ${token}` };
    const first = await grpcJs.score.addScore({ delta: 1n }, { headers });
    const second = await connectNode.score.addScore({ delta: 2n }, { headers });
    expect([first.newScore, second.newScore]).toEqual([1n, 3n]);

    // The probe stands in for a product's own script on the gateway's origin; the
    // demo page's CSP rightly refuses inline scripts, so it is bypassed here.
    const page = await browser!.newPage({ bypassCSP: true });
    await page.goto(mesh.urls.gateway, { waitUntil: "load" });
    const bundle = await build({
      stdin: { contents: browserProbe, resolveDir: root, loader: "js" },
      bundle: true,
      write: false,
      format: "esm",
      platform: "browser",
    });
    await page.addScriptTag({ content: bundle.outputFiles[0]!.text, type: "module" });
    await page.waitForFunction(() => "sbProbe" in window);
    const third = await page.evaluate(
      ([t]) => (window as unknown as { sbProbe: { addScore(t: string, d: number): Promise<{ newScore: number }> } }).sbProbe.addScore(t!, 4),
      [token],
    );
    expect(third.newScore).toBe(7);
    expect(new Set([first.requestId, second.requestId])).toHaveProperty("size", 2);

    // Ranking applies the events asynchronously; then all three see the same entry.
    const viaGrpcJs = await eventually(
      async () => {
        const res = await grpcJs.ranking.getRank({ board: "global", userId: user });
        return res.entry?.score === 7n ? res.entry : undefined;
      },
      15_000,
      "ranking to apply the three grants",
    );
    const viaConnectNode = (await connectNode.ranking.getRank({ board: "global", userId: user })).entry;
    const viaBrowser = await page.evaluate(
      ([u]) => (window as unknown as { sbProbe: { getRank(u: string): Promise<{ rank: number; score: number }> } }).sbProbe.getRank(u!),
      [user],
    );
    expect(viaConnectNode).toEqual(viaGrpcJs);
    expect(viaBrowser).toEqual({ rank: Number(viaGrpcJs.rank), score: 7 });
    await page.close();
  });

  it("refuses the same way on each: a write without a token is UNAUTHENTICATED", async () => {
    await expect(grpcJs.score.addScore({ delta: 1n })).rejects.toMatchObject({ code: 16 });
    await expect(connectNode.score.addScore({ delta: 1n })).rejects.toMatchObject({ code: 16 });
  });

  it("answers reflection and health on every gRPC port", async () => {
    const expected = {
      score: ["scoreboard.v1.ScoreService", "scoreboard.v1.CatalogService", "scoreboard.v1.BoardAdminService", "scoreboard.v1.BoardScoreService"],
      ranking: ["scoreboard.v1.RankingService"],
      push: ["scoreboard.v1.PushService"],
    };
    for (const [name, services] of Object.entries(expected) as Array<[keyof typeof expected, string[]]>) {
      // Reflection is a bidi stream: connect-node's gRPC client speaks it to the grpc-js port.
      const reflection = createClient(ServerReflection, createGrpcTransport({ baseUrl: mesh.grpcUrls[name] }));
      const listed: string[] = [];
      for await (const res of reflection.serverReflectionInfo(
        (async function* () {
          yield { messageRequest: { case: "listServices" as const, value: "" } };
        })(),
      )) {
        if (res.messageResponse.case === "listServicesResponse") listed.push(...res.messageResponse.value.service.map((s) => s.name));
      }
      expect(listed, name).toEqual(expect.arrayContaining([...services, "grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection"]));

      const transport = createServiceTransport(mesh.grpcUrls[name], [Health]);
      transports.push(transport);
      const health = createClient(Health, transport.transport);
      expect((await health.check({ service: services[0]! })).status, name).toBe(HealthCheckResponse_ServingStatus.SERVING);
      await expect(health.check({ service: "no.such.Service" })).rejects.toMatchObject({ code: 5 });
    }
  });

  it("answers INVALID_ARGUMENT, not INTERNAL, to a request that is not protobuf", async () => {
    // A gRPC frame whose body is a truncated varint field.
    const res = await grpcCall(mesh.grpcUrls.ranking, "/scoreboard.v1.RankingService/GetRank", Buffer.from([0x0a, 0xff]));
    expect(res).toMatchObject({ status: "3" });
  });
});

/** One raw gRPC call over node:http2; answers the grpc-status trailer (or header, for trailers-only). */
async function grpcCall(baseUrl: string, path: string, message: Buffer): Promise<{ status: string | undefined; message: string | undefined }> {
  const http2 = await import("node:http2");
  const session = http2.connect(baseUrl);
  try {
    const frame = Buffer.alloc(5 + message.length);
    frame.writeUInt32BE(message.length, 1);
    message.copy(frame, 5);
    const stream = session.request({ ":method": "POST", ":path": path, "content-type": "application/grpc", te: "trailers" });
    stream.end(frame);
    return await new Promise((resolve, reject) => {
      let headers: Record<string, unknown> = {};
      stream.on("response", (h) => (headers = h));
      stream.on("trailers", (t) => (headers = { ...headers, ...t }));
      stream.on("data", () => {});
      stream.on("end", () => resolve({ status: headers["grpc-status"] as string | undefined, message: headers["grpc-message"] as string | undefined }));
      stream.on("error", reject);
    });
  } finally {
    session.close();
  }
}
