import { sendFailure, type Request, type Response } from "../http.js";
import { boardIdOfPath } from "./board-streams.js";
import { type AdmittedLive, admitLive, type LiveDeps, type LiveMessage, type LiveSubscription, streamLive } from "./live.js";
import { liveMessageJson } from "./live-json.js";
import { standingSubscriptionOf, subscriptionsOfQuery } from "./live-query.js";
import { type ResumeVector, resumeVectorOf, SentPositions } from "./resume-vector.js";
import { HEARTBEAT_FRAME, openEventStream } from "./sse.js";
import { stopOnCloseOrShutdown } from "./stream-registry.js";
import { streamToken } from "./stream-token.js";

// Live streams' SSE dialect: GET /api/live?subscribe=… (several boards' tops
// and the caller's standings) and GET /api/boards/{id}/standing?around=N.
// Frames: `event: top` or `event: standing`, `id:` the resume token of every
// subscription's latest position sent (EventSource sends it back as
// Last-Event-ID when it reconnects), `data:` live-json's message.

type RouteHandler = (req: Request, res: Response, params: Record<string, string>) => Promise<void>;
type SubscriptionsOf = (query: URLSearchParams, resume: ResumeVector, params: Record<string, string>) => LiveSubscription[];

/** The handlers of GET /api/live and GET /api/boards/{id}/standing. */
export function createLiveSseRoutes(deps: LiveDeps, shutdownSignal: () => AbortSignal): { live: RouteHandler; standing: RouteHandler } {
  /**
   * Admission as on every live stream (admitLive: the read gate with
   * streamToken, which may be ?access_token= since EventSource cannot send
   * headers; a token for standings; the boards; the address's quota);
   * refusals answered as JSON.
   */
  const route =
    (subscriptionsOf: SubscriptionsOf): RouteHandler =>
    async (req, res, params) => {
      let live: AdmittedLive;
      try {
        live = await admitLive(deps, deps.guard.clientAddress(req), streamToken(req), async () => {
          const query = new URL(req.url ?? "/", "http://gateway").searchParams;
          return subscriptionsOf(query, resumeVectorOf(req, query), params);
        });
      } catch (err) {
        sendFailure(res, err);
        return;
      }
      serveLive(req, res, deps, live, shutdownSignal());
    };
  return {
    live: route(subscriptionsOfQuery),
    standing: route((query, resume, params) => standingSubscriptionOf(boardIdOfPath(params.boardId!), query, resume)),
  };
}

/**
 * An admitted live stream as SSE: `event: connected` with
 * {"subscriptions":[ids]}, then each subscription's states (latest per
 * subscription while the client is slow) and heartbeat comments.
 */
export function serveLive(req: Request, res: Response, deps: LiveDeps, live: AdmittedLive, shutdownSignal: AbortSignal): void {
  openEventStream(req, res, { subscriptions: live.subscriptions.map(({ subscription }) => subscription.id) });
  const sent = new SentPositions(live.subscriptions.map(({ subscription }) => [subscription.id, subscription.resume]));
  const stop = streamLive(deps, live, res, (message) => (message ? liveFrameOf(message, sent) : HEARTBEAT_FRAME));
  stopOnCloseOrShutdown(res, shutdownSignal, stop, () => res.end());
}

/** A message's frame, rendered when it is written: its `id:` is the positions the client has then. */
function liveFrameOf(message: LiveMessage, sent: SentPositions): string {
  const kind = message.standing ? "standing" : "top";
  return `event: ${kind}\ndata: ${liveMessageJson(message)}\nid: ${sent.sent(message.subscription.id, message.position)}\n\n`;
}
