import { fromBinary } from "@bufbuild/protobuf";
import { ScoreChangedBatchSchema, ScoreChangedSchema, type ScoreChanged } from "@scoreboard/gen/scoreboard/v1/events_pb";
import { Subjects } from "./nats.js";

/**
 * The events of an opened (verified, decrypted) SCORES message, by its
 * subject: a ScoreChangedBatch, or one ScoreChanged as releases before
 * batches published them (still in the stream during an upgrade, and in old
 * dead letters). Throws when the bytes do not decode or the subject carries
 * no score events. One reading for ranking and the dead-letters CLI.
 */
export function decodeScoreEvents(subject: string, payload: Uint8Array): ScoreChanged[] {
  if (subject === Subjects.scoreBatch) return fromBinary(ScoreChangedBatchSchema, payload).events;
  if (subject === Subjects.scoreChanged) return [fromBinary(ScoreChangedSchema, payload)];
  throw new Error(`no score events are published on ${subject}`);
}
