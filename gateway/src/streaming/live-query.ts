import { ConnectError } from "@connectrpc/connect";
import { HttpError } from "../http.js";
import { checkSet, type LiveSubscription, type LiveTarget, liveSubscription, MAX_SUBSCRIPTIONS } from "./live.js";
import type { ResumeVector } from "./resume-vector.js";

// What an SSE or WebSocket live stream asks for, from its query string; the
// rules of a subscription are live.ts's, as for LiveService.Watch.

const FORMS = "top:<board>[/<limit>] or standing:<board>[/<around>]";
const SPEC = /^(top|standing):([^/]*)(?:\/(.*))?$/;

/**
 * GET /api/live and /ws/live: `subscribe=` repeated, each `top:<board>[/<limit>]`
 * (limit 1..100, 10 when absent) or `standing:<board>[/<around>]` (around
 * 0..10, 0 when absent), ids "top:<board>" and "standing:<board>"; each
 * resumes from its item of `resume`. 400 with what is wrong otherwise.
 */
export function subscriptionsOfQuery(query: URLSearchParams, resume: ResumeVector): LiveSubscription[] {
  const specs = query.getAll("subscribe");
  if (specs.length === 0) throw invalid(`name what to watch: subscribe=${FORMS}, repeated for several`);
  if (specs.length > MAX_SUBSCRIPTIONS) throw invalid(`at most ${MAX_SUBSCRIPTIONS} subscribe= per stream`);
  return checkSet(specs.map((spec) => subscriptionOfSpec(spec, resume)));
}

/** GET /api/boards/{id}/standing and /ws/boards/{id}/standing: "standing:<board>" with ?around= (0..10, 0 when absent). */
export function standingSubscriptionOf(board: string, query: URLSearchParams, resume: ResumeVector): LiveSubscription[] {
  const around = countOf(query.get("around") ?? "", "around");
  return [withResume(liveSubscription("", board, { kind: "standing", around }, undefined), resume)];
}

function subscriptionOfSpec(spec: string, resume: ResumeVector): LiveSubscription {
  const shown = `subscribe=${spec.length > 80 ? `${spec.slice(0, 80)}…` : spec}`;
  const match = SPEC.exec(spec);
  if (!match) throw invalid(`${shown}: write ${FORMS}`);
  const [, kind, board = "", count = ""] = match;
  try {
    const target: LiveTarget = kind === "top" ? { kind: "top", limit: countOf(count, "limit") } : { kind: "standing", around: countOf(count, "around") };
    return withResume(liveSubscription("", board, target, undefined), resume);
  } catch (err) {
    if (err instanceof ConnectError) throw invalid(`${shown}: ${err.rawMessage}`);
    if (err instanceof HttpError) throw invalid(`${shown}: ${err.message}`);
    throw err;
  }
}

/** A limit or around as written: digits, 0 when absent (live.ts says what range it must be in). */
function countOf(raw: string, name: string): number {
  if (raw === "") return 0;
  if (!/^\d{1,3}$/.test(raw)) throw invalid(`${name} must be an integer`);
  return Number(raw);
}

function withResume(subscription: LiveSubscription, resume: ResumeVector): LiveSubscription {
  return { ...subscription, resume: resume.get(subscription.id) };
}

function invalid(message: string): HttpError {
  return new HttpError(400, message, "invalid_argument");
}
