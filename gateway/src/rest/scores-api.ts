import { Code, ConnectError } from "@connectrpc/connect";
import type { Upstreams } from "../upstreams.js";
import { idField, readJsonObject, sendFailure, sendJson, type Request, type Response } from "../http.js";
import { idempotencyKeyOf, type WriteGuard } from "../write-guard.js";
import { ticketOf } from "./actions-api.js";
import type { WriteRules } from "./write-rules.js";

/**
 * Seed 000: POST /api/scores/update {"userId","actionId"} → {"success":true,"newScore"}.
 * The token's subject must be userId (403 otherwise); 10 requests/minute/user.
 */
export function createScoresApi(upstreams: Upstreams, guard: WriteGuard, rules: WriteRules) {
  return {
    async update(req: Request, res: Response): Promise<void> {
      try {
        const body = await readJsonObject(req);
        const admitted = await guard.admit(req, "rest:000", rules.scoresUpdate);
        const userId = idField(body, "userId");
        const actionId = idField(body, "actionId");
        if (userId !== admitted.principal.userId) {
          throw new ConnectError("userId must be the token's subject", Code.PermissionDenied);
        }
        const granted = await upstreams.score.submitAction({ actionId, idempotencyKey: idempotencyKeyOf(req), actionTicket: ticketOf(body) }, admitted.call);
        sendJson(res, 200, { success: true, newScore: Number(granted.newScore), requestId: granted.requestId }, admitted.headers);
      } catch (err) {
        sendFailure(res, err);
      }
    },
  };
}
