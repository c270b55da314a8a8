import { Code, ConnectError } from "@connectrpc/connect";
import { isValidId } from "@scoreboard/platform/auth";
import type { Upstreams } from "../upstreams.js";
import { HttpError, integerField, readJsonObject, sendFailure, sendJson, type Request, type Response } from "../http.js";
import { idempotencyKeyOf, type WriteGuard } from "../write-guard.js";
import type { WriteRules } from "./write-rules.js";

/**
 * Seed 001: POST /api/score/{user_id} {"increment": 1..5} → 200 with newScore
 * and the server-generated request_id. 403 when the token's subject is not the
 * path's user or lacks the role "player"; 429 above 100/minute/user (sliding
 * window); an optional X-API-Key is checked against the users table.
 */
export function createScoreIncrementApi(upstreams: Upstreams, guard: WriteGuard, rules: WriteRules, maxIncrement: number) {
  return {
    async increment(req: Request, res: Response, params: { userId: string }): Promise<void> {
      try {
        const userId = decodePathSegment(params.userId);
        const body = await readJsonObject(req);
        const admitted = await guard.admit(req, "rest:001", rules.scoreIncrement);
        if (userId !== admitted.principal.userId) {
          throw new ConnectError("the path's user_id must be the token's subject", Code.PermissionDenied);
        }
        const increment = integerField(body, "increment", 1, maxIncrement);
        const added = await upstreams.score.addScore({ userId, delta: BigInt(increment), idempotencyKey: idempotencyKeyOf(req) }, admitted.call);
        sendJson(res, 200, { success: true, userId, increment, newScore: Number(added.newScore), request_id: added.requestId }, admitted.headers);
      } catch (err) {
        sendFailure(res, err);
      }
    },
  };
}

function decodePathSegment(raw: string): string {
  let value: string;
  try {
    value = decodeURIComponent(raw);
  } catch {
    throw new HttpError(400, "user_id in the path is not valid percent-encoding", "invalid_argument");
  }
  if (!isValidId(value)) throw new HttpError(400, "user_id must be 1..64 characters without control characters", "invalid_argument");
  return value;
}
