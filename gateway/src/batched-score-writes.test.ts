import { Code, ConnectError, createClient, createRouterTransport, type Interceptor } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { ScoreService } from "@scoreboard/gen/scoreboard/v1/score_pb";
import { ScoreBatchService, type BatchedWrite } from "@scoreboard/gen/scoreboard/v1/score_batch_pb";
import { batchedScoreWrites } from "./batched-score-writes.js";

/** score's side in memory: records each batch and answers each write (or fails the batch). */
function fakeScore(answer: (write: BatchedWrite) => { newScore: bigint } | { code: Code; message: string }, failBatch?: () => boolean) {
  const batches: BatchedWrite[][] = [];
  let release: (() => void) | undefined;
  let hold = false;
  const transport = createRouterTransport((router) => {
    router.service(ScoreBatchService, {
      async writeBatch(req) {
        batches.push(req.writes);
        if (hold) await new Promise<void>((r) => (release = r));
        if (failBatch?.()) throw new ConnectError("deadline exceeded", Code.DeadlineExceeded);
        return {
          results: req.writes.map((w) => {
            const a = answer(w);
            if ("code" in a) return { result: { case: "error" as const, value: a } };
            return w.request.case === "submitAction"
              ? { result: { case: "submitAction" as const, value: { newScore: a.newScore, actionId: w.request.value.actionId } } }
              : { result: { case: "addScore" as const, value: { newScore: a.newScore } } };
          }),
        };
      },
    });
    router.service(ScoreService, {});
  });
  return {
    transport,
    batches,
    holdNext: () => (hold = true),
    releaseAll: () => {
      hold = false;
      release?.();
    },
  };
}

describe("batchedScoreWrites", () => {
  it("sends a write at once when idle, and writes that arrive meanwhile together", async () => {
    const score = fakeScore((w) => ({ newScore: w.request.case === "addScore" ? w.request.value.delta : 0n }));
    const client = createClient(ScoreService, batchedScoreWrites(score.transport, { maxInFlight: 1 }));
    score.holdNext();
    const first = client.addScore({ delta: 1n }, { headers: { authorization: "Bearer a" } });
    await new Promise((r) => setImmediate(r));
    expect(score.batches.map((b) => b.length)).toEqual([1]);
    const rest = [2n, 3n, 4n].map((delta) => client.addScore({ delta }, { headers: { authorization: `Bearer ${delta}`, "idempotency-key": `k${delta}` } }));
    score.releaseAll();
    expect((await first).newScore).toBe(1n);
    expect((await Promise.all(rest)).map((r) => r.newScore)).toEqual([2n, 3n, 4n]);
    expect(score.batches.map((b) => b.length)).toEqual([1, 3]);
    // Each write carries its own caller's headers.
    expect(score.batches[1]!.map((w) => [w.headers.authorization, w.headers["idempotency-key"]])).toEqual([
      ["Bearer 2", "k2"],
      ["Bearer 3", "k3"],
      ["Bearer 4", "k4"],
    ]);
  });

  it("answers each write its own error, and the others their grants", async () => {
    const score = fakeScore((w) =>
      w.request.case === "submitAction" && w.request.value.actionId === "unknown"
        ? { code: Code.NotFound, message: 'action "unknown" is not in the catalog' }
        : { newScore: 5n },
    );
    const client = createClient(ScoreService, batchedScoreWrites(score.transport));
    const [ok, missing] = await Promise.allSettled([client.submitAction({ actionId: "daily-login" }), client.submitAction({ actionId: "unknown" })]);
    expect(ok).toMatchObject({ status: "fulfilled", value: { newScore: 5n } });
    expect(missing).toMatchObject({ status: "rejected", reason: { code: Code.NotFound, rawMessage: 'action "unknown" is not in the catalog' } });
  });

  it("fails every write of a failed batch and resends none (it may have been applied)", async () => {
    let fail = false;
    const score = fakeScore(
      () => ({ newScore: 1n }),
      () => fail,
    );
    const client = createClient(ScoreService, batchedScoreWrites(score.transport, { maxInFlight: 1 }));
    score.holdNext();
    const first = client.addScore({ delta: 1n });
    await new Promise((r) => setImmediate(r));
    const rest = [client.addScore({ delta: 2n }), client.addScore({ delta: 3n })].map((p) => p.catch((e: ConnectError) => e.code));
    fail = true;
    score.releaseAll();
    await expect(first).rejects.toMatchObject({ code: Code.DeadlineExceeded });
    expect(await Promise.all(rest)).toEqual([Code.DeadlineExceeded, Code.DeadlineExceeded]);
    expect(score.batches.map((b) => b.length)).toEqual([1, 2]);
  });

  it("runs the interceptors around each write, as around its own call", async () => {
    const seen: string[] = [];
    const tag: Interceptor = (next) => async (req) => {
      seen.push(req.method.name);
      req.header.set("traceparent", `00-${"1".repeat(32)}-${"2".repeat(16)}-01`);
      return next(req);
    };
    const score = fakeScore(() => ({ newScore: 1n }));
    const client = createClient(ScoreService, batchedScoreWrites(score.transport, { interceptors: [tag] }));
    await Promise.all([client.addScore({ delta: 1n }), client.submitAction({ actionId: "a" })]);
    expect(seen.sort()).toEqual(["AddScore", "SubmitAction"]);
    expect(score.batches.flat().every((w) => w.headers.traceparent?.startsWith("00-111"))).toBe(true);
  });
});
