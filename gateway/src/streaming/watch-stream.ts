import { create, toBinary, toJson } from "@bufbuild/protobuf";
import { LeaderboardUpdateSchema, WatchLeaderboardRequestSchema, type LeaderboardUpdate } from "@scoreboard/gen/scoreboard/v1/push_pb";
import { envelope, type FastStreamMethod, type Request } from "./fast-streams.js";
import { streamToken } from "./stream-token.js";
import { admitWatch, streamWatch, type WatchLeaderboardDeps } from "./watch-leaderboard.js";

/**
 * WatchLeaderboard on the fast path (fast-streams.ts). Every client of a
 * feed gets the same update; its protobuf or JSON body is encoded once and
 * each stream only adds its own sequence number (protobuf fields may come in
 * any order, so the sequence field is appended to the shared bytes).
 */
export function watchLeaderboardFastPath(deps: WatchLeaderboardDeps, clientAddress: (req: Request) => string): FastStreamMethod {
  return {
    service: "scoreboard.v1.PushService",
    method: "WatchLeaderboard",
    async open(req, protocol, request) {
      const watch = await admitWatch(deps, clientAddress(req), streamToken(req), () => request(WatchLeaderboardRequestSchema));
      return (res) =>
        streamWatch(deps, watch, res, (update, sequence) => (update ? updateFrame(update, sequence, protocol.json) : heartbeatFrame(sequence, protocol.json)));
    },
  };
}

// The shared part of an update, encoded once per update and format.
const sharedProto = new WeakMap<LeaderboardUpdate, Buffer>();
const sharedJson = new WeakMap<LeaderboardUpdate, string>();

// Streams that joined together count the same sequence numbers, so most of
// an update's frames are byte-identical: each (format, sequence) is built
// once per update and the same bytes are written to every such stream.
const frames = new WeakMap<LeaderboardUpdate, Map<number, Buffer>>();

function updateFrame(update: LeaderboardUpdate, sequence: number, json: boolean): Buffer {
  let built = frames.get(update);
  if (!built) {
    built = new Map();
    frames.set(update, built);
  }
  const key = json ? -sequence : sequence;
  let frame = built.get(key);
  if (!frame) {
    frame = buildUpdateFrame(update, sequence, json);
    built.set(key, frame);
  }
  return frame;
}

function buildUpdateFrame(update: LeaderboardUpdate, sequence: number, json: boolean): Buffer {
  if (json) {
    let body = sharedJson.get(update);
    if (body === undefined) {
      body = JSON.stringify(
        toJson(LeaderboardUpdateSchema, create(LeaderboardUpdateSchema, { entries: update.entries, asOf: update.asOf, position: update.position })),
      );
      sharedJson.set(update, body);
    }
    const withSequence = body === "{}" ? `{"sequence":"${sequence}"}` : `${body.slice(0, -1)},"sequence":"${sequence}"}`;
    return envelope(0, Buffer.from(withSequence));
  }
  let body = sharedProto.get(update);
  if (!body) {
    body = Buffer.from(
      toBinary(LeaderboardUpdateSchema, create(LeaderboardUpdateSchema, { entries: update.entries, asOf: update.asOf, position: update.position })),
    );
    sharedProto.set(update, body);
  }
  // Field 3 (sequence, uint64) appended as wire bytes: its tag, then the varint.
  let varintLength = 1;
  for (let v = sequence; v >= 0x80; v = Math.floor(v / 0x80)) varintLength += 1;
  const frame = Buffer.allocUnsafe(5 + body.length + 1 + varintLength);
  frame[0] = 0;
  frame.writeUInt32BE(body.length + 1 + varintLength, 1);
  body.copy(frame, 5);
  let at = 5 + body.length;
  frame[at++] = (3 << 3) | 0;
  let value = sequence;
  for (; value >= 0x80; value = Math.floor(value / 0x80)) frame[at++] = (value % 0x80) | 0x80;
  frame[at] = value;
  return frame;
}

function heartbeatFrame(sequence: number, json: boolean): Buffer {
  const message = create(LeaderboardUpdateSchema, { heartbeat: true, sequence: BigInt(sequence) });
  return envelope(0, json ? Buffer.from(JSON.stringify(toJson(LeaderboardUpdateSchema, message))) : toBinary(LeaderboardUpdateSchema, message));
}
