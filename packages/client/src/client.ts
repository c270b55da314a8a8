import { createClient, type Client, type Transport } from "@connectrpc/connect";
import { createConnectTransport, type ConnectTransportOptions } from "@connectrpc/connect-web";
import { BoardAdminService, BoardReadService, BoardScoreService } from "@scoreboard/gen/scoreboard/v1/boards_pb";
import { CatalogService } from "@scoreboard/gen/scoreboard/v1/catalog_pb";
import { LiveService } from "@scoreboard/gen/scoreboard/v1/live_pb";
import { PushService } from "@scoreboard/gen/scoreboard/v1/push_pb";
import { RankingService } from "@scoreboard/gen/scoreboard/v1/ranking_pb";
import { ScoreService } from "@scoreboard/gen/scoreboard/v1/score_pb";
import { watchBoard, type WatchBoardOptions } from "./watch-board.js";
import { type LiveHandlers, type LiveSubscriptionInit, watchLive, type WatchLiveOptions, watchStanding, type WatchStandingOptions } from "./watch-live.js";

/** The services a browser may call through the gateway, and live boards and standings. */
export interface ScoreboardClient {
  readonly score: Client<typeof ScoreService>;
  readonly ranking: Client<typeof RankingService>;
  readonly catalog: Client<typeof CatalogService>;
  readonly push: Client<typeof PushService>;
  /** Live standings and several boards on one stream (the gateway serves it). */
  readonly live: Client<typeof LiveService>;
  /** Defined boards: definitions (ListBoards needs a token with read:leaderboard), submissions, and pages by season. */
  readonly boardAdmin: Client<typeof BoardAdminService>;
  readonly boardScore: Client<typeof BoardScoreService>;
  readonly boardRead: Client<typeof BoardReadService>;
  /** `watchBoard(client.push, options)`: see watchBoard. */
  watchBoard(options: WatchBoardOptions): Promise<void>;
  /** `watchLive(client.live, subscriptions, handlers, options)`: see watchLive. */
  watchLive(subscriptions: readonly LiveSubscriptionInit[], handlers: LiveHandlers, options?: WatchLiveOptions): Promise<void>;
  /** `watchStanding(client.live, options)`: see watchStanding. */
  watchStanding(options: WatchStandingOptions): Promise<void>;
}

/**
 * Clients of the gateway's Connect API at `baseUrl` (its origin, e.g.
 * "https://scores.example.com"). Other options go to connect-web's
 * createConnectTransport: `interceptors` to add a token to every call,
 * `useBinaryFormat` for protobuf instead of JSON. Or pass a `transport` of
 * your own (gRPC-Web, or createRouterTransport in tests).
 */
export function createScoreboardClient(options: ConnectTransportOptions | { transport: Transport }): ScoreboardClient {
  const transport = "transport" in options ? options.transport : createConnectTransport(options);
  const push = createClient(PushService, transport);
  const live = createClient(LiveService, transport);
  return {
    score: createClient(ScoreService, transport),
    ranking: createClient(RankingService, transport),
    catalog: createClient(CatalogService, transport),
    push,
    live,
    boardAdmin: createClient(BoardAdminService, transport),
    boardScore: createClient(BoardScoreService, transport),
    boardRead: createClient(BoardReadService, transport),
    watchBoard: (watch) => watchBoard(push, watch),
    watchLive: (subscriptions, handlers, watch) => watchLive(live, subscriptions, handlers, watch),
    watchStanding: (watch) => watchStanding(live, watch),
  };
}
