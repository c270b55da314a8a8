import { type Timestamp, timestampDate } from "@bufbuild/protobuf/wkt";
import type { LeaderboardEntry, StreamPosition } from "@scoreboard/gen/scoreboard/v1/leaderboard_pb";
import type { LiveMessage, LiveSubscription } from "./live.js";

// Live streams' messages as their SSE and WebSocket dialects send them, one
// rendering for both:
//   {"subscription","board","kind":"top","epoch","version","asOf","entries":[entry…]}
//   {"subscription","board","kind":"standing","epoch","version","asOf","entry":entry|null,"neighbourhood":[entry…]}
// with entry {"rank","userId","username","score"}; version is a decimal
// string (microseconds overflow a double), the rest JSON numbers.

/** An entry as the gateway's JSON streams show it. Scores are within ±2^53-1 (boards.proto): JSON numbers carry them exactly. */
export function entryJson(e: LeaderboardEntry): { rank: number; userId: string; username: string; score: number } {
  return { rank: Number(e.rank), userId: e.userId, username: e.username, score: Number(e.score) };
}

// A state is shared by every stream showing it (a feed's update, a tracked
// standing), so what follows a message's subscription and board is rendered
// once per state, not once per client; and a subscription's opening once per stream.
const states = new WeakMap<object, string>();
const heads = new WeakMap<LiveSubscription, string>();

/** A live message's JSON. */
export function liveMessageJson(message: LiveMessage): string {
  const { subscription } = message;
  let head = heads.get(subscription);
  if (head === undefined) {
    head = `{"subscription":${JSON.stringify(subscription.id)},"board":${JSON.stringify(subscription.board)},`;
    heads.set(subscription, head);
  }
  return head + stateJsonOf(message);
}

/** `"kind":…}`: the rest of the message, the same for every stream of this state. */
function stateJsonOf({ position, asOf, top, standing }: LiveMessage): string {
  const state: object | undefined = standing ?? top;
  let json = state && states.get(state);
  if (json === undefined) {
    const common = { epoch: position.epoch, version: position.version.toString(), asOf: isoOf(asOf) };
    const body = standing
      ? { kind: "standing", ...common, entry: standing.entry ? entryJson(standing.entry) : null, neighbourhood: standing.neighbourhood.map(entryJson) }
      : { kind: "top", ...common, entries: (top ?? []).map(entryJson) };
    json = JSON.stringify(body).slice(1);
    if (state) states.set(state, json);
  }
  return json;
}

function isoOf(asOf: Timestamp | undefined): string {
  return (asOf ? timestampDate(asOf) : new Date()).toISOString();
}

/** The position fields of the boards API's stream messages (boardUpdateJson). */
export function positionJson(position: StreamPosition | undefined): { epoch: string; version: string } {
  return { epoch: position?.epoch ?? "", version: (position?.version ?? 0n).toString() };
}
