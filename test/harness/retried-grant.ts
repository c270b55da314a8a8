/** A grant a client saw answered: what it was told. */
export interface AnsweredGrant {
  userId: string;
  actionId: string;
  requestId: string;
  points: number;
}

// What a failing process or datastore may answer meanwhile (-1: no answer at all).
const RETRYABLE = new Set([-1, 500, 502, 503, 504]);

/**
 * POST /api/actions as a careful client would during a fault: the same
 * Idempotency-Key on every try until the grant is answered 200, so a grant
 * that committed while its answer was lost comes back as a replay. Counts
 * each failed try by status in `failures`; throws on any other status, or
 * after `maxAttempts` tries.
 */
export async function grantUntilAnswered(
  gatewayUrl: string,
  token: string,
  userId: string,
  actionId: string,
  failures: Record<string, number>,
  maxAttempts: number,
): Promise<AnsweredGrant> {
  for (let attempt = 0; attempt < maxAttempts; attempt++) {
    let status = 0;
    let body: Record<string, unknown> = {};
    try {
      const res = await fetch(`${gatewayUrl}/api/actions`, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${token}`, "idempotency-key": `${userId}/${actionId}` },
        body: JSON.stringify({ actionId }),
      });
      status = res.status;
      body = (await res.json()) as Record<string, unknown>;
    } catch {
      status = -1;
    }
    if (status === 200) return { userId, actionId, requestId: String(body.requestId), points: Number(body.points) };
    failures[status] = (failures[status] ?? 0) + 1;
    if (!RETRYABLE.has(status)) throw new Error(`unexpected ${status}: ${JSON.stringify(body)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${userId}/${actionId} still unanswered after ${maxAttempts} tries; failures ${JSON.stringify(failures)}`);
}
