import type { Upstreams } from "../upstreams.js";
import { idField, readJsonObject, sendFailure, sendJson, type Request, type Response } from "../http.js";
import { idempotencyKeyOf, type WriteGuard } from "../write-guard.js";
import type { WriteRules } from "./write-rules.js";

/**
 * Seed 004: POST /api/actions (its read is in leaderboard-reads.ts). Bodies and status
 * codes are the seed's; failures carry {"success":false,"message","code"}.
 */
export function createActionsApi(upstreams: Upstreams, guard: WriteGuard, rules: WriteRules) {
  return {
    async submitAction(req: Request, res: Response): Promise<void> {
      try {
        const body = await readJsonObject(req);
        const admitted = await guard.admit(req, "rest:004", rules.actions);
        const actionId = idField(body, "actionId");
        const granted = await upstreams.score.submitAction({ actionId, idempotencyKey: idempotencyKeyOf(req), actionTicket: ticketOf(body) }, admitted.call);
        sendJson(
          res,
          200,
          { success: true, message: "Score Updated", newScore: Number(granted.newScore), points: Number(granted.points), requestId: granted.requestId },
          admitted.headers,
        );
      } catch (err) {
        // The seed answers a repeated grant with 400, not the generic 409.
        sendFailure(res, err, (code) => (code === "already_exists" ? 400 : undefined));
      }
    },
  };
}

/** An optional signed action ticket, in the body (`actionTicket`) — the same for every action dialect. */
export function ticketOf(body: Record<string, unknown>): string {
  const ticket = body.actionTicket;
  return typeof ticket === "string" && ticket.length <= 8_192 ? ticket : "";
}
