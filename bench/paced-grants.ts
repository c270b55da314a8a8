// A fixed-rate grant driver (Debian's wrk has no -R): grant i is due at
// start + i / rate and is sent then, whatever the earlier ones' state, so a
// slow mesh shows as late answers rather than as a lower offered rate. Each
// grant is POST /api/score/{user} {"increment": n} as that user, on a
// keep-alive pool; its answer time counts from when it was due.
import http from "node:http";
import { setTimeout as sleep } from "node:timers/promises";

export type GrantPlan = { userId: string; increment: number }[];

export interface GrantRun {
  sent: number;
  ok: number;
  /** Failures by what went wrong (status and body, or the socket's error). */
  failures: Map<string, number>;
  /** Answer times of the 200s, from when each grant was due. */
  answerMs: number[];
  seconds: number;
}

/** Sockets the driver may hold: far more than 500/s needs at a sane answer time. */
export const GRANT_SOCKETS = 64;
const ANSWER_TIMEOUT_MS = 10_000;

export async function runGrants(options: {
  gateway: string;
  plan: GrantPlan;
  ratePerS: number;
  tokenOf: (userId: string) => string;
  /** Told of every 200: the user and the score the grant returned. */
  answered: (userId: string, newScore: number) => void;
}): Promise<GrantRun> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: GRANT_SOCKETS });
  const run: GrantRun = { sent: 0, ok: 0, failures: new Map(), answerMs: [], seconds: 0 };
  const fail = (why: string) => run.failures.set(why, (run.failures.get(why) ?? 0) + 1);
  const grant = (userId: string, increment: number, due: number) =>
    new Promise<void>((resolve) => {
      const req = http.request(`${options.gateway}/api/score/${userId}`, {
        method: "POST",
        agent,
        timeout: ANSWER_TIMEOUT_MS,
        headers: { "content-type": "application/json", authorization: `Bearer ${options.tokenOf(userId)}` },
      });
      req.on("response", (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => {
          const body = Buffer.concat(chunks).toString();
          if (res.statusCode === 200) {
            run.ok += 1;
            run.answerMs.push(performance.now() - due);
            options.answered(userId, (JSON.parse(body) as { newScore: number }).newScore);
          } else fail(`HTTP ${res.statusCode}: ${body.slice(0, 120)}`);
          resolve();
        });
      });
      req.on("timeout", () => req.destroy(new Error(`no answer within ${ANSWER_TIMEOUT_MS / 1000} s`)));
      req.on("error", (err) => {
        fail(err.message);
        resolve();
      });
      req.end(JSON.stringify({ increment }));
    });

  const inFlight: Promise<void>[] = [];
  const started = performance.now();
  for (const [i, { userId, increment }] of options.plan.entries()) {
    const due = started + (i * 1000) / options.ratePerS;
    const wait = due - performance.now();
    if (wait >= 1) await sleep(wait);
    run.sent += 1;
    inFlight.push(grant(userId, increment, due));
  }
  await Promise.all(inFlight);
  run.seconds = (performance.now() - started) / 1000;
  agent.destroy();
  return run;
}
