import { Code, ConnectError, createClient, createRouterTransport, type Interceptor } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { ScoreBatchService } from "@scoreboard/gen/scoreboard/v1/score_batch_pb";
import { MAX_BATCHED_WRITES, createScoreBatchService } from "./write-batch.js";

describe("ScoreBatchService", () => {
  const calls: Array<{ method: string; authorization: string | null }> = [];
  const counted: Interceptor = (next) => async (req) => {
    calls.push({ method: req.method.name, authorization: req.header.get("authorization") });
    return next(req);
  };
  const service = createScoreBatchService(
    {
      async submitAction(req) {
        if (req.actionId === "unknown") throw new ConnectError('action "unknown" is not in the catalog', Code.NotFound);
        return { actionId: req.actionId, newScore: 10n };
      },
      async addScore(req, ctx) {
        if (!ctx.requestHeader.get("authorization")) throw new ConnectError("a bearer token is required", Code.Unauthenticated);
        return { delta: req.delta, newScore: req.delta };
      },
    },
    [counted],
  );
  const client = createClient(
    ScoreBatchService,
    createRouterTransport((router) => router.service(ScoreBatchService, service)),
  );

  it("serves each write as its own call: its headers, interceptors, answer or error, in order", async () => {
    calls.length = 0;
    const { results } = await client.writeBatch({
      writes: [
        { headers: { authorization: "Bearer a" }, request: { case: "addScore", value: { delta: 3n } } },
        { headers: {}, request: { case: "addScore", value: { delta: 1n } } },
        { headers: { authorization: "Bearer c" }, request: { case: "submitAction", value: { actionId: "unknown" } } },
        { headers: { authorization: "Bearer d" }, request: { case: "submitAction", value: { actionId: "daily-login" } } },
        { headers: {} },
      ],
    });
    expect(results.map((r) => r.result.case)).toEqual(["addScore", "error", "error", "submitAction", "error"]);
    expect(results[0]!.result.value).toMatchObject({ newScore: 3n });
    expect(results[1]!.result.value).toMatchObject({ code: Code.Unauthenticated, message: "a bearer token is required" });
    expect(results[2]!.result.value).toMatchObject({ code: Code.NotFound });
    expect(results[4]!.result.value).toMatchObject({ code: Code.InvalidArgument });
    expect(calls).toEqual([
      { method: "AddScore", authorization: "Bearer a" },
      { method: "AddScore", authorization: null },
      { method: "SubmitAction", authorization: "Bearer c" },
      { method: "SubmitAction", authorization: "Bearer d" },
    ]);
  });

  it(`refuses a batch of more than ${MAX_BATCHED_WRITES} writes`, async () => {
    const writes = Array.from({ length: MAX_BATCHED_WRITES + 1 }, () => ({ headers: {}, request: { case: "addScore" as const, value: { delta: 1n } } }));
    await expect(client.writeBatch({ writes })).rejects.toMatchObject({ code: Code.InvalidArgument });
  });
});
