// scoreboard dead-letters: the score event messages ranking dead-lettered to
// SCORES_DLQ. A batch (scoreboard.score.batch) is one dead letter holding all
// its events; a single event (scoreboard.score.changed) is how earlier
// releases published them. Replays send the original sealed bytes and
// headers with Nats-Msg-Id "<original id>-replay-<dlq seq>"; ranking applies
// a score only when its version is newer, so replaying events that already
// counted is harmless.
import { toJson, toJsonString } from "@bufbuild/protobuf";
import { connect, headers, type JetStreamClient, type JetStreamManager, type StoredMsg, type StreamInfo } from "nats";
import { ScoreChangedSchema, type ScoreChanged } from "@scoreboard/gen/scoreboard/v1/events_pb";
import { ConfigError, EnvReader, readNatsUrl } from "@scoreboard/platform/config";
import { EventIntegrityError, EventSealer, SealHeaders, readEventSealConfig } from "@scoreboard/platform/event-seal";
import { DeadLetterHeaders, DeadLettersStream, ScoresStream, Subjects, headerRecord } from "@scoreboard/platform/nats";
import { decodeScoreEvents } from "@scoreboard/platform/score-events";
import { CommandFailed, UsageError, actionOf, expectArgs, type Command, type Outcome } from "./command.js";

const actions = ["list", "show", "replay", "replay-all", "purge"] as const;
type Action = (typeof actions)[number];

export const deadLetters: Command = {
  name: "dead-letters",
  summary: "list, show, replay or purge the score events ranking dead-lettered",
  usage: `usage: scoreboard dead-letters <action> [--json]
  list            seq, time, deliveries, ledger id, reason: a line per event
  show <seq>      every header, the verification result, each decoded event
  replay <seq>    republish to the subject it came from, then delete it here
  replay-all      the same for every dead letter present now (exit 1 if any failed)
  purge           delete every dead letter

Needs NATS_URL (default nats://127.0.0.1:4222); with the EVENT_* keys in the
environment too, list and show verify and decrypt what they print.`,
  options: {},
  prepare(_values, positionals) {
    const action = actionOf(positionals, actions);
    const needsSeq = action === "show" || action === "replay";
    const [seqText = ""] = expectArgs(positionals, action, needsSeq ? "<seq>" : "");
    if (needsSeq && !/^[1-9]\d{0,15}$/.test(seqText)) throw new UsageError(`${action} needs a dead-letter sequence number, got "${seqText}"`);
    return () => run(action, Number(seqText));
  },
};

interface Letters {
  jsm: JetStreamManager;
  js: JetStreamClient;
  sealer: EventSealer | undefined;
}

async function run(action: Action, seq: number): Promise<Outcome> {
  const env = new EnvReader();
  const natsUrl = readNatsUrl(env);
  env.done();
  const sealer = optionalSealer();
  const nc = await connect({ servers: natsUrl.split(","), name: "scoreboard-dead-letters", timeout: 5_000, maxReconnectAttempts: 0 }).catch((err: unknown) => {
    throw new CommandFailed(`cannot reach NATS at ${natsUrl}: ${(err as Error).message}`);
  });
  try {
    const letters: Letters = { jsm: await nc.jetstreamManager(), js: nc.jetstream(), sealer };
    switch (action) {
      case "list":
        return await list(letters);
      case "show":
        return await show(letters, seq);
      case "replay": {
        const { text, ...replayed } = await replay(letters, seq);
        return { text, json: replayed };
      }
      case "replay-all":
        return await replayAll(letters);
      case "purge": {
        const purged = (await streamInfo(letters.jsm)) ? (await letters.jsm.streams.purge(DeadLettersStream.name)).purged : 0;
        return { text: `purged ${purged} dead letter${purged === 1 ? "" : "s"}`, json: { purged } };
      }
    }
  } finally {
    await nc.close();
  }
}

/** The keys from the environment when they are there: only to verify and decrypt what we print. */
function optionalSealer(): EventSealer | undefined {
  const keys = new EnvReader();
  const config = readEventSealConfig(keys, "development");
  try {
    keys.done();
    return new EventSealer(config);
  } catch (err) {
    if (err instanceof ConfigError) return undefined;
    throw err;
  }
}

async function streamInfo(jsm: JetStreamManager): Promise<StreamInfo | undefined> {
  try {
    return await jsm.streams.info(DeadLettersStream.name, { deleted_details: true });
  } catch (err) {
    if (/not found/i.test((err as Error).message)) return undefined;
    throw err;
  }
}

/** The sequences present now, oldest first. */
async function sequences(jsm: JetStreamManager): Promise<number[]> {
  const info = await streamInfo(jsm);
  if (!info || info.state.messages === 0) return [];
  const deleted = new Set(info.state.deleted ?? []);
  const seqs: number[] = [];
  for (let seq = info.state.first_seq; seq <= info.state.last_seq; seq++) if (!deleted.has(seq)) seqs.push(seq);
  return seqs;
}

async function get(jsm: JetStreamManager, seq: number): Promise<StoredMsg | undefined> {
  try {
    return await jsm.streams.getMessage(DeadLettersStream.name, { seq });
  } catch (err) {
    if (/no message found|not found/i.test((err as Error).message)) return undefined;
    throw err;
  }
}

interface Described {
  /** The letter's events (one for a single event, all of a batch); empty when they cannot be read here. */
  events: ScoreChanged[];
  /** "yes", "no: <reason>", or why it could not be checked. */
  verified: string;
}

function describe(msg: StoredMsg, sealer: EventSealer | undefined): Described {
  const h = headerRecord(msg.header);
  const encrypted = Object.keys(h).some((k) => k.toLowerCase() === SealHeaders.encryption.toLowerCase());
  const subject = Subjects.fromDeadLetter(msg.subject);
  let verified = "unknown (no EVENT_HMAC_KEYS in the environment)";
  if (sealer) {
    let opened: Uint8Array | undefined;
    try {
      opened = sealer.open(msg.data, h);
      return { events: decodeScoreEvents(subject, opened), verified: "yes" };
    } catch (err) {
      verified = opened === undefined && err instanceof EventIntegrityError ? `no: ${err.message}` : `yes, but undecodable: ${(err as Error).message}`;
    }
  }
  if (encrypted) return { events: [], verified };
  try {
    // Unverified: what the events claim, which is what an operator wants to see.
    return { events: decodeScoreEvents(subject, msg.data), verified };
  } catch {
    return { events: [], verified };
  }
}

async function list({ jsm, sealer }: Letters): Promise<Outcome> {
  const rows: { seq: number; time: string; deliveries: string; ledgerId: string; reason: string }[] = [];
  for (const seq of await sequences(jsm)) {
    const msg = await get(jsm, seq);
    if (!msg) continue; // deleted meanwhile
    const { events } = describe(msg, sealer);
    // A row per event: a batch's events were dead-lettered together.
    for (const ledgerId of events.length > 0 ? events.map((e) => e.ledgerId.toString()) : ["-"]) {
      rows.push({
        seq,
        time: msg.header.get(DeadLetterHeaders.at) || msg.time.toISOString(),
        deliveries: msg.header.get(DeadLetterHeaders.deliveries) || "-",
        ledgerId,
        reason: msg.header.get(DeadLetterHeaders.reason) || "-",
      });
    }
  }
  if (rows.length === 0) return { text: "no dead letters", json: [] };
  const table = [["SEQ", "TIME", "DELIVERIES", "LEDGER", "REASON"], ...rows.map((r) => [r.seq, r.time, r.deliveries, r.ledgerId, r.reason])];
  return { text: table.map((cells) => cells.join("\t")).join("\n"), json: rows };
}

async function show({ jsm, sealer }: Letters, seq: number): Promise<Outcome> {
  const msg = await get(jsm, seq);
  if (!msg) throw new CommandFailed(`no dead letter with sequence ${seq}`);
  const { events, verified } = describe(msg, sealer);
  const headerList = [...msg.header].flatMap(([name, values]) => values.map((value) => ({ name, value })));
  const text = [
    `seq: ${seq}`,
    `subject: ${msg.subject}`,
    `stored: ${msg.time.toISOString()}`,
    "headers:",
    ...headerList.map((h) => `  ${h.name}: ${h.value}`),
    `payload: ${msg.data.length} bytes`,
    `verified: ${verified}`,
    events.length === 0 ? "events: (not decodable here)" : `events: ${events.length}`,
    ...events.map((event) => `event: ${toJsonString(ScoreChangedSchema, event)}`),
  ];
  const json = {
    seq,
    subject: msg.subject,
    stored: msg.time.toISOString(),
    headers: headerList,
    payloadBytes: msg.data.length,
    verified,
    events: events.map((event) => toJson(ScoreChangedSchema, event)),
  };
  return { text: text.join("\n"), json };
}

interface Replayed {
  seq: number;
  msgId: string;
  scoresSeq: number;
  duplicate: boolean;
  text: string;
}

async function replay({ jsm, js }: Letters, seq: number): Promise<Replayed> {
  const msg = await get(jsm, seq);
  if (!msg) throw new CommandFailed(`no dead letter with sequence ${seq}`);
  // The original headers (the seal among them), without our bookkeeping.
  const h = headers();
  for (const [name, values] of msg.header) {
    if (/^(nats-|sb-dlq-)/i.test(name)) continue;
    for (const value of values) h.append(name, value);
  }
  const originalId = msg.header.get(DeadLetterHeaders.msgId) || "unknown";
  const msgId = `${originalId}-replay-${seq}`;
  // As it was: a batch to the batch subject, a single event to the single one.
  const ack = await js.publish(Subjects.fromDeadLetter(msg.subject), msg.data, {
    headers: h,
    msgID: msgId,
    expect: { streamName: ScoresStream.name },
    timeout: 5_000,
  });
  // Only after SCORES stored it; a duplicate ack means an earlier replay of
  // this very dead letter got that far but not to the delete.
  await jsm.streams.deleteMessage(DeadLettersStream.name, seq);
  const text = `replayed dead letter ${seq} as ${msgId} (SCORES seq ${ack.seq}${ack.duplicate ? ", already there" : ""})`;
  return { seq, msgId, scoresSeq: ack.seq, duplicate: ack.duplicate, text };
}

async function replayAll(letters: Letters): Promise<Outcome> {
  // The sequences present now: an event that fails again is dead-lettered
  // under a new sequence and is not replayed a second time by this run.
  const replayed: Replayed[] = [];
  const failed: { seq: number; error: string }[] = [];
  for (const seq of await sequences(letters.jsm)) {
    try {
      replayed.push(await replay(letters, seq));
    } catch (err) {
      if (err instanceof CommandFailed) continue; // deleted meanwhile
      failed.push({ seq, error: (err as Error).message });
    }
  }
  const summary = `replayed ${replayed.length} dead letter${replayed.length === 1 ? "" : "s"}${failed.length > 0 ? `, ${failed.length} failed` : ""}`;
  const text = [...replayed.map((r) => r.text), ...failed.map((f) => `dead letter ${f.seq} failed: ${f.error}`), summary].join("\n");
  return { text, json: { replayed: replayed.map(({ text: _text, ...r }) => r), failed }, exitCode: failed.length > 0 ? 1 : 0 };
}
