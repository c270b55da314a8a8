import type { Upstreams } from "../upstreams.js";
import { idField, integerField, readJsonObject, sendFailure, sendJson, type Request, type Response } from "../http.js";
import { idempotencyKeyOf, type WriteGuard } from "../write-guard.js";
import type { WriteRules } from "./write-rules.js";

/**
 * Seed 003: POST /update-score {"playerId","scoreDelta"} → {"playerId","newScore"}.
 * A negative delta (or another player's id) needs the scope admin:score; the
 * score service enforces both, and the per-request maximum.
 */
export function createUpdateScoreApi(upstreams: Upstreams, guard: WriteGuard, rules: WriteRules) {
  return {
    async update(req: Request, res: Response): Promise<void> {
      try {
        const body = await readJsonObject(req);
        const admitted = await guard.admit(req, "rest:003", rules.updateScore);
        const playerId = idField(body, "playerId");
        const scoreDelta = integerField(body, "scoreDelta", -1_000_000, 1_000_000);
        const added = await upstreams.score.addScore({ userId: playerId, delta: BigInt(scoreDelta), idempotencyKey: idempotencyKeyOf(req) }, admitted.call);
        sendJson(res, 200, { playerId, newScore: Number(added.newScore), requestId: added.requestId }, admitted.headers);
      } catch (err) {
        sendFailure(res, err);
      }
    },
  };
}
