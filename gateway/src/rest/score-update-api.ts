import { Code, ConnectError } from "@connectrpc/connect";
import type { Upstreams } from "../upstreams.js";
import { HttpError, describeError, idField, readJsonObject, sendJson, type Request, type Response } from "../http.js";
import { idempotencyKeyOf, isRateLimited, type WriteGuard } from "../write-guard.js";
import type { WriteRules } from "./write-rules.js";

/**
 * Seed 002: POST /api/score/update {"userId","scoreIncrement"} →
 * {"status":"success","message":"Score update queued","newScore"}; failures are
 * {"status":"error","message"} with the seed's messages for its two documented
 * cases (bad increment, failed authentication).
 */
export function createScoreUpdateApi(upstreams: Upstreams, guard: WriteGuard, rules: WriteRules, maxIncrement: number) {
  return {
    async update(req: Request, res: Response): Promise<void> {
      try {
        const body = await readJsonObject(req);
        const admitted = await guard.admit(req, "rest:002", rules.scoreUpdate);
        const userId = idField(body, "userId");
        const increment = body.scoreIncrement;
        if (typeof increment !== "number" || !Number.isSafeInteger(increment) || increment < 1 || increment > maxIncrement) {
          throw new HttpError(400, "Invalid score increment", "invalid_argument");
        }
        if (userId !== admitted.principal.userId) throw new ConnectError("userId must be the token's subject", Code.PermissionDenied);
        const added = await upstreams.score.addScore({ userId, delta: BigInt(increment), idempotencyKey: idempotencyKeyOf(req) }, admitted.call);
        sendJson(
          res,
          200,
          { status: "success", message: "Score update queued", newScore: Number(added.newScore), requestId: added.requestId },
          admitted.headers,
        );
      } catch (err) {
        const { status, code, message } = describeError(err);
        const headers = isRateLimited(err) ? err.headers : {};
        sendJson(res, status, { status: "error", message: status === 401 ? "Authentication failed" : message, code }, headers);
      }
    },
  };
}
