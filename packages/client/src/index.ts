// @scoreboard/client: what a browser app needs to talk to the Scoreboard
// gateway. The generated scoreboard.v1 code is bundled into dist, so the
// package depends only on the protobuf-es and Connect runtimes (peers).
// Not exported: events, score_batch (service-to-service only).
export * from "@scoreboard/gen/scoreboard/v1/leaderboard_pb";
export * from "@scoreboard/gen/scoreboard/v1/push_pb";
export * from "@scoreboard/gen/scoreboard/v1/live_pb";
export * from "@scoreboard/gen/scoreboard/v1/ranking_pb";
export * from "@scoreboard/gen/scoreboard/v1/score_pb";
export * from "@scoreboard/gen/scoreboard/v1/catalog_pb";
export * from "@scoreboard/gen/scoreboard/v1/boards_pb";
export { createScoreboardClient, type ScoreboardClient } from "./client.js";
export { watchBoard, type BoardState, type WatchBoardOptions } from "./watch-board.js";
export {
  standingSubscription,
  topSubscription,
  watchLive,
  watchStanding,
  type LiveHandlers,
  type LiveSubscriptionInit,
  type WatchLiveOptions,
  type WatchStandingOptions,
} from "./watch-live.js";
export type { ReconnectOptions, StreamState } from "./reconnect.js";
export { backoffDelay, DEFAULT_BACKOFF, type BackoffPolicy } from "./backoff.js";
export { formatScore, isExactNumber, MAX_EXACT_NUMBER, toDisplayNumber } from "./numbers.js";
