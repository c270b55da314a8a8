import {
  Code,
  ConnectError,
  createClient,
  createContextValues,
  type Client,
  type ContextValues,
  type Interceptor,
  type StreamResponse,
  type Transport,
  type UnaryRequest,
  type UnaryResponse,
} from "@connectrpc/connect";
import { create, type DescMessage, type DescMethodStreaming, type DescMethodUnary, type MessageInitShape } from "@bufbuild/protobuf";
import { ScoreService } from "@scoreboard/gen/scoreboard/v1/score_pb";
import { BatchedWriteSchema, ScoreBatchService, type BatchedWrite, type BatchedWriteResult } from "@scoreboard/gen/scoreboard/v1/score_batch_pb";
import { GroupCommit } from "@scoreboard/platform/group-commit";
import { withInterceptors } from "@scoreboard/platform/interceptor-chain";

export interface BatchedScoreWritesOptions {
  /** Batches on their way to score at once; writes arriving meanwhile wait and go together. */
  maxInFlight?: number;
  /** Writes per batch. */
  maxBatch?: number;
  /** Deadline of a batch call. */
  timeoutMs?: number;
  /** Run around each write as around its own call (clientTracing: each write keeps its CLIENT span). */
  interceptors?: Interceptor[];
}

/**
 * A Transport for ScoreService whose writes (SubmitAction, AddScore) from
 * concurrent requests travel to score together in one
 * ScoreBatchService.WriteBatch call: the first write goes at once, writes
 * arriving while `maxInFlight` batches are out go in the next one. When idle
 * that is one call per write, as before; under load the call's fixed cost
 * on both sides is shared. Each write still gets its own answer or error,
 * and every caller keeps createClient(ScoreService, ...).
 *
 * A failed batch fails each of its writes and is never resent: a batch that
 * timed out may have been applied (the client's Idempotency-Key makes its
 * own retry safe).
 */
export function batchedScoreWrites(upstream: Transport, options: BatchedScoreWritesOptions = {}): Transport {
  const batches: Client<typeof ScoreBatchService> = createClient(ScoreBatchService, upstream);
  const timeoutMs = options.timeoutMs ?? 10_000;
  const group = new GroupCommit<BatchedWrite, BatchedWriteResult>(
    async (writes) => {
      const { results } = await batches.writeBatch({ writes }, { timeoutMs });
      if (results.length !== writes.length) throw new ConnectError(`score answered ${results.length} of ${writes.length} writes`, Code.Internal);
      return results;
    },
    options.maxInFlight ?? 4,
    options.maxBatch ?? 64,
    { retryEachOnFailure: false },
  );

  const send = async (req: UnaryRequest): Promise<UnaryResponse> => {
    const headers: Record<string, string> = {};
    req.header.forEach((value, key) => {
      headers[key] = value;
    });
    const write = create(BatchedWriteSchema, { headers });
    if (req.method === ScoreService.method.submitAction) write.request = { case: "submitAction", value: req.message as never };
    else write.request = { case: "addScore", value: req.message as never };
    const { result } = await group.submit(write);
    if (result.case === "error") throw new ConnectError(result.value.message, result.value.code as Code);
    if (result.case === undefined) throw new ConnectError("score answered a write with nothing", Code.Internal);
    return { stream: false, service: req.service, method: req.method, header: new Headers(), trailer: new Headers(), message: result.value } as UnaryResponse;
  };
  const sendThroughInterceptors = withInterceptors(options.interceptors ?? [], send);
  const batched = new Set<unknown>([ScoreService.method.submitAction, ScoreService.method.addScore]);

  return {
    unary<I extends DescMessage, O extends DescMessage>(
      method: DescMethodUnary<I, O>,
      signal: AbortSignal | undefined,
      callTimeoutMs: number | undefined,
      header: HeadersInit | undefined,
      input: MessageInitShape<I>,
      contextValues?: ContextValues,
    ): Promise<UnaryResponse<I, O>> {
      if (!batched.has(method)) return upstream.unary(method, signal, callTimeoutMs, header, input, contextValues);
      return sendThroughInterceptors({
        stream: false,
        service: method.parent,
        method,
        requestMethod: "POST",
        url: `/${method.parent.typeName}/${method.name}`,
        signal: signal ?? new AbortController().signal,
        header: new Headers(header),
        contextValues: contextValues ?? createContextValues(),
        message: create(method.input, input),
      } as UnaryRequest) as unknown as Promise<UnaryResponse<I, O>>;
    },
    stream<I extends DescMessage, O extends DescMessage>(
      method: DescMethodStreaming<I, O>,
      signal: AbortSignal | undefined,
      callTimeoutMs: number | undefined,
      header: HeadersInit | undefined,
      input: AsyncIterable<MessageInitShape<I>>,
      contextValues?: ContextValues,
    ): Promise<StreamResponse<I, O>> {
      return upstream.stream(method, signal, callTimeoutMs, header, input, contextValues);
    },
  };
}
