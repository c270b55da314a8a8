import { create } from "@bufbuild/protobuf";
import type { ConnectRouter, HandlerContext } from "@connectrpc/connect";
import { LiveService, type LiveUpdate, LiveUpdateSchema, TopEntriesSchema } from "@scoreboard/gen/scoreboard/v1/live_pb";
import {
  type AdmittedLive,
  admitLive,
  type LiveDeps,
  type LiveMessage,
  type LiveSubscription,
  streamLive,
  subscriptionsOfWatch,
  subscriptionsOfWatchStanding,
} from "./live.js";
import { MessageSlot } from "./message-slot.js";
import { clientAddressKey } from "./stream-quota.js";
import { streamToken } from "./stream-token.js";

/** LiveService (Connect, gRPC-Web, gRPC) on the gateway's connect-node router. */
export function registerLiveService(router: ConnectRouter, deps: LiveDeps): void {
  router.service(LiveService, {
    watchStanding: (request, ctx) => liveUpdates(deps, ctx, async () => subscriptionsOfWatchStanding(request)),
    watch: (request, ctx) => liveUpdates(deps, ctx, async () => subscriptionsOfWatch(request)),
  });
}

async function* liveUpdates(deps: LiveDeps, ctx: HandlerContext, subscriptions: () => Promise<LiveSubscription[]>): AsyncGenerator<LiveUpdate> {
  const live: AdmittedLive = await admitLive(deps, ctx.values.get(clientAddressKey), streamToken({ headers: ctx.requestHeader, url: ctx.url }), subscriptions);
  const slot = new MessageSlot<LiveUpdate>();
  yield* slot.messages(ctx.signal, streamLive(deps, live, slot, liveUpdateOf));
}

/** A live message as LiveUpdate; undefined (a heartbeat) as a heartbeat message. */
export function liveUpdateOf(message: LiveMessage | undefined): LiveUpdate {
  if (!message) return create(LiveUpdateSchema, { heartbeat: true });
  const { subscription, position, asOf } = message;
  return create(LiveUpdateSchema, {
    subscription: subscription.id,
    board: subscription.board,
    position,
    asOf,
    state: message.standing ? { case: "standing", value: message.standing } : { case: "top", value: create(TopEntriesSchema, { entries: message.top ?? [] }) },
  });
}
