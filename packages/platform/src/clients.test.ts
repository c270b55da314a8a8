import { describe, expect, it } from "vitest";
import { CatalogService } from "@scoreboard/gen/scoreboard/v1/catalog_pb";
import { RankingService } from "@scoreboard/gen/scoreboard/v1/ranking_pb";
import { ScoreService } from "@scoreboard/gen/scoreboard/v1/score_pb";
import { parseTarget, serviceConfig } from "./clients.js";

describe("gRPC targets", () => {
  it("resolves http:// and dns:/// targets through DNS, so every address of a headless Service is used", () => {
    expect(parseTarget("http://127.0.0.1:50061").address).toBe("dns:///127.0.0.1:50061");
    expect(parseTarget("http://score:50061").address).toBe("dns:///score:50061");
    expect(parseTarget("https://score.example.com").address).toBe("dns:///score.example.com:443");
    expect(parseTarget("dns:///scoreboard-score-pods.ns.svc.cluster.local:50061").address).toBe("dns:///scoreboard-score-pods.ns.svc.cluster.local:50061");
    expect(() => parseTarget("nats://x:4222")).toThrow(/unsupported/);
  });
});

describe("service config", () => {
  it("balances round robin and retries only the methods the contract marks idempotent", () => {
    const config = serviceConfig([ScoreService, CatalogService, RankingService]);
    expect(config.loadBalancingConfig).toEqual([{ round_robin: {} }]);
    const retried = config.methodConfig.flatMap((c) => c.name.map((n) => `${n.service}/${n.method}`)).sort();
    expect(retried).toEqual([
      "scoreboard.v1.CatalogService/ListActions",
      "scoreboard.v1.CatalogService/PutAction",
      "scoreboard.v1.RankingService/GetLeaderboard",
      "scoreboard.v1.RankingService/GetRank",
      "scoreboard.v1.RankingService/GetStandings",
    ]);
    expect(config.methodConfig[0]!.retryPolicy.retryableStatusCodes).toEqual(["UNAVAILABLE"]);
  });
});
