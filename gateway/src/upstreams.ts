import { createClient, type Client } from "@connectrpc/connect";
import { BoardAdminService, BoardReadService, BoardScoreService } from "@scoreboard/gen/scoreboard/v1/boards_pb";
import { CatalogService } from "@scoreboard/gen/scoreboard/v1/catalog_pb";
import { PushService } from "@scoreboard/gen/scoreboard/v1/push_pb";
import { RankingService } from "@scoreboard/gen/scoreboard/v1/ranking_pb";
import { ScoreService } from "@scoreboard/gen/scoreboard/v1/score_pb";
import { ScoreBatchService } from "@scoreboard/gen/scoreboard/v1/score_batch_pb";
import { createServiceTransport, type ServiceTransportOptions } from "@scoreboard/platform/clients";
import { clientTracing } from "@scoreboard/platform/rpc-tracing";
import { batchedScoreWrites } from "./batched-score-writes.js";

/** gRPC clients of the three services behind the gateway. */
export interface Upstreams {
  score: Client<typeof ScoreService>;
  catalog: Client<typeof CatalogService>;
  ranking: Client<typeof RankingService>;
  /** Board definitions and submissions: score. */
  boardAdmin: Client<typeof BoardAdminService>;
  boardScore: Client<typeof BoardScoreService>;
  /** Pages, ranks and seasons of any board: ranking. */
  boardRead: Client<typeof BoardReadService>;
  push: Client<typeof PushService>;
  close(): void;
}

/** grpc-js channels to each service's gRPC port (round robin over its pods, see clients.ts). */
export function connectUpstreams(urls: { score: string; ranking: string; push: string }, options: ServiceTransportOptions = {}): Upstreams {
  const score = createServiceTransport(urls.score, [ScoreService, CatalogService, ScoreBatchService, BoardAdminService, BoardScoreService], options);
  const ranking = createServiceTransport(urls.ranking, [RankingService, BoardReadService], options);
  const push = createServiceTransport(urls.push, [PushService], options);
  return {
    // Writes of concurrent requests share one call to score (ScoreBatchService).
    score: createClient(ScoreService, batchedScoreWrites(score.transport, { interceptors: [clientTracing] })),
    catalog: createClient(CatalogService, score.transport),
    ranking: createClient(RankingService, ranking.transport),
    boardAdmin: createClient(BoardAdminService, score.transport),
    boardScore: createClient(BoardScoreService, score.transport),
    boardRead: createClient(BoardReadService, ranking.transport),
    push: createClient(PushService, push.transport),
    close() {
      score.close();
      ranking.close();
      push.close();
    },
  };
}
