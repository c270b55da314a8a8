import { create } from "@bufbuild/protobuf";
import type { Timestamp } from "@bufbuild/protobuf/wkt";
import { type StreamPosition, StreamPositionSchema } from "@scoreboard/gen/scoreboard/v1/leaderboard_pb";
import { ALL_TIME_SEASON } from "./seasons.js";

// Where a live stream's message sits in a board's history (StreamPosition in
// leaderboard.proto): one home for how epochs are spelled and how positions
// compare, shared by ranking (makes epochs), push and the gateway (resume).

/**
 * A board's epoch: the read model's generation (when its last rebuild
 * completed, ms; 0 while none has) and the segment shown (the current season's or period's id,
 * `all` when the board never resets).
 */
export function epochOf(generation: number, segment: string = ALL_TIME_SEASON): string {
  return `${generation}.${segment}`;
}

function partsOf(epoch: string): [number, string] {
  const dot = epoch.indexOf(".");
  if (dot < 0) return [Number(epoch) || 0, ""];
  return [Number(epoch.slice(0, dot)) || 0, epoch.slice(dot + 1)];
}

/** <0 when epoch a is older than b, 0 when equal, >0 when newer. Generations first, then segments (ids sort by time). */
export function compareEpochs(a: string, b: string): number {
  if (a === b) return 0;
  const [ga, sa] = partsOf(a);
  const [gb, sb] = partsOf(b);
  if (ga !== gb) return ga < gb ? -1 : 1;
  return sa < sb ? -1 : sa > sb ? 1 : 0;
}

/** <0 when a is an older state than b, 0 the same, >0 newer. */
export function comparePositions(a: StreamPosition, b: StreamPosition): number {
  const epochs = compareEpochs(a.epoch, b.epoch);
  if (epochs !== 0) return epochs;
  return a.version < b.version ? -1 : a.version > b.version ? 1 : 0;
}

/**
 * Whether a state at `current` should be sent to a client that resumes from
 * `resume`: not when the client already has it or a newer one (it reconnected
 * to a replica that is behind: the next change will reach it), yes otherwise.
 * A client without a resume point is always sent the state.
 */
export function isNewerThanResume(current: StreamPosition, resume: StreamPosition | undefined): boolean {
  if (!resume || resume.epoch === "") return true;
  return comparePositions(current, resume) > 0;
}

/**
 * `listener`, told only of states newer than `resume` until one is; from
 * then on, of every state (a resumed stream starts where the client was).
 * A state without a position is passed on.
 */
export function afterResume<S extends { position?: StreamPosition }>(resume: StreamPosition, listener: (state: S) => void): (state: S) => void {
  let waiting = true;
  return (state) => {
    if (waiting && state.position && !isNewerThanResume(state.position, resume)) return;
    waiting = false;
    listener(state);
  };
}

/** A state's version: its time in microseconds (see StreamPosition.version). */
export function versionAt(time: Timestamp | undefined): bigint {
  if (!time) return 0n;
  return time.seconds * 1_000_000n + BigInt(Math.floor(time.nanos / 1_000));
}

export function positionOf(epoch: string, time: Timestamp | undefined): StreamPosition {
  return create(StreamPositionSchema, { epoch, version: versionAt(time) });
}

/**
 * The resume token of SSE's `id:` and Last-Event-ID, and of the WebSocket's
 * ?resume=: "<epoch>~<version>". Undefined when malformed (then the stream
 * starts as a new one: the client is sent the latest state).
 */
export function positionToken(position: StreamPosition): string {
  return `${position.epoch}~${position.version}`;
}

export function parsePositionToken(token: string): StreamPosition | undefined {
  const match = /^(\d{1,16}\.[A-Za-z0-9]{1,32})~(\d{1,20})$/.exec(token);
  if (!match) return undefined;
  const version = BigInt(match[2]!);
  if (version >= 2n ** 64n) return undefined;
  return create(StreamPositionSchema, { epoch: match[1]!, version });
}
