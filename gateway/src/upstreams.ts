import { createClient, type Client } from "@connectrpc/connect";
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
  push: Client<typeof PushService>;
  close(): void;
}

/** grpc-js channels to each service's gRPC port (round robin over its pods, see clients.ts). */
export function connectUpstreams(urls: { score: string; ranking: string; push: string }, options: ServiceTransportOptions = {}): Upstreams {
  const score = createServiceTransport(urls.score, [ScoreService, CatalogService, ScoreBatchService], options);
  const ranking = createServiceTransport(urls.ranking, [RankingService], options);
  const push = createServiceTransport(urls.push, [PushService], options);
  return {
    // Writes of concurrent requests share one call to score (ScoreBatchService).
    score: createClient(ScoreService, batchedScoreWrites(score.transport, { interceptors: [clientTracing] })),
    catalog: createClient(CatalogService, score.transport),
    ranking: createClient(RankingService, ranking.transport),
    push: createClient(PushService, push.transport),
    close() {
      score.close();
      ranking.close();
      push.close();
    },
  };
}
