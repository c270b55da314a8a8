import { Code, ConnectError, type Interceptor, type ServiceImpl } from "@connectrpc/connect";
import { create } from "@bufbuild/protobuf";
import { ScoreService } from "@scoreboard/gen/scoreboard/v1/score_pb";
import { BatchedWriteResultSchema, type BatchedWrite, type BatchedWriteResult, type ScoreBatchService } from "@scoreboard/gen/scoreboard/v1/score_batch_pb";
import { localUnaryCall } from "@scoreboard/platform/grpc-server";

/** The most writes one WriteBatch may carry (the contract says so). */
export const MAX_BATCHED_WRITES = 256;

/**
 * ScoreBatchService: each write of a batch is served as its own ScoreService
 * call (its headers, its span, its metrics, its answer or error), all at
 * once, so the ledger's group commit takes them in one transaction.
 */
export function createScoreBatchService(score: ServiceImpl<typeof ScoreService>, interceptors: Interceptor[]): ServiceImpl<typeof ScoreBatchService> {
  const submitAction = localUnaryCall(ScoreService, score, "submitAction", interceptors);
  const addScore = localUnaryCall(ScoreService, score, "addScore", interceptors);

  const writeOne = async (write: BatchedWrite, signal: AbortSignal): Promise<BatchedWriteResult> => {
    try {
      const header = headersOf(write.headers);
      switch (write.request.case) {
        case "submitAction":
          return create(BatchedWriteResultSchema, { result: { case: "submitAction", value: await submitAction(write.request.value, header, signal) } });
        case "addScore":
          return create(BatchedWriteResultSchema, { result: { case: "addScore", value: await addScore(write.request.value, header, signal) } });
        default:
          throw new ConnectError("a batched write names no request", Code.InvalidArgument);
      }
    } catch (err) {
      const error = ConnectError.from(err);
      return create(BatchedWriteResultSchema, { result: { case: "error", value: { code: error.code, message: error.rawMessage } } });
    }
  };

  return {
    async writeBatch(req, ctx) {
      if (req.writes.length > MAX_BATCHED_WRITES) {
        throw new ConnectError(`a batch carries at most ${MAX_BATCHED_WRITES} writes, got ${req.writes.length}`, Code.InvalidArgument);
      }
      return { results: await Promise.all(req.writes.map((write) => writeOne(write, ctx.signal))) };
    },
  };
}

function headersOf(fields: Record<string, string>): Headers {
  try {
    return new Headers(fields);
  } catch {
    throw new ConnectError("a batched write's headers are not valid HTTP headers", Code.InvalidArgument);
  }
}
