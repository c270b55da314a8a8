import { create, toBinary, toJson } from "@bufbuild/protobuf";
import type { ConnectRouter, HandlerContext } from "@connectrpc/connect";
import {
  LiveService,
  type LiveUpdate,
  LiveUpdateSchema,
  TopEntriesSchema,
  WatchRequestSchema,
  WatchStandingRequestSchema,
} from "@scoreboard/gen/scoreboard/v1/live_pb";
import { envelope, type FastStreamMethod, type Request } from "./fast-streams.js";
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
  yield* slot.messages(ctx.signal, streamLive(deps, live, slot, liveUpdateOf, { heartbeatWhenHeldBack: true }));
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

/**
 * LiveService's two methods on the fast path (fast-streams.ts), for Connect
 * and gRPC-Web clients: each message encoded once, straight to the response.
 * (Standings differ per watcher, so there is nothing to share between
 * streams; the saving is connect-node's generators per message.)
 */
export function liveFastPaths(deps: LiveDeps, clientAddress: (req: Request) => string): FastStreamMethod[] {
  const method = (name: string, subscriptions: (request: Parameters<FastStreamMethod["open"]>[2]) => Promise<LiveSubscription[]>): FastStreamMethod => ({
    service: LiveService.typeName,
    method: name,
    async open(req, protocol, request) {
      const live = await admitLive(deps, clientAddress(req), streamToken(req), () => subscriptions(request));
      return (res) => streamLive(deps, live, res, (message) => liveFrame(liveUpdateOf(message), protocol.json), { heartbeatWhenHeldBack: true });
    },
  });
  return [
    method("WatchStanding", async (request) => subscriptionsOfWatchStanding(await request(WatchStandingRequestSchema))),
    method("Watch", async (request) => subscriptionsOfWatch(await request(WatchRequestSchema))),
  ];
}

function liveFrame(update: LiveUpdate, json: boolean): Buffer {
  return envelope(0, json ? Buffer.from(JSON.stringify(toJson(LiveUpdateSchema, update))) : toBinary(LiveUpdateSchema, update));
}
