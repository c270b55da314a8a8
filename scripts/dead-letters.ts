// Inspects and replays the score event messages ranking dead-lettered to
// SCORES_DLQ: a batch (scoreboard.score.batch) is one dead letter holding all
// its events; a single event (scoreboard.score.changed) is how earlier
// releases published them.
//   npm run dead-letters -- list            seq, time, deliveries, ledger id, reason: a line per event
//   npm run dead-letters -- show <seq>      every header, the verification result, each decoded event
//   npm run dead-letters -- replay <seq>    republish to the subject it came from, then delete it here
//   npm run dead-letters -- replay-all      the same for every dead letter present now
//   npm run dead-letters -- purge           delete every dead letter
// Replays send the original sealed bytes and headers with Nats-Msg-Id
// "<original id>-replay-<dlq seq>"; ranking applies a score only when its
// version is newer, so replaying events that already counted is harmless.
// NATS_URL comes from the environment or .env.local; with the EVENT_* keys
// there too, list and show verify and decrypt what they print.
import { existsSync } from "node:fs";
import { toJsonString } from "@bufbuild/protobuf";
import { connect, headers, type JetStreamClient, type JetStreamManager, type StoredMsg, type StreamInfo } from "nats";
import { ScoreChangedSchema, type ScoreChanged } from "@scoreboard/gen/scoreboard/v1/events_pb";
import { decodeScoreEvents } from "@scoreboard/platform/score-events";
import { ConfigError, EnvReader } from "@scoreboard/platform/config";
import { EventIntegrityError, EventSealer, SealHeaders, readEventSealConfig } from "@scoreboard/platform/event-seal";
import { DeadLetterHeaders, DeadLettersStream, ScoresStream, Subjects, headerRecord } from "@scoreboard/platform/nats";

const usage = `usage: npm run dead-letters -- list | show <seq> | replay <seq> | replay-all | purge`;

class CliError extends Error {}

if (existsSync(".env.local")) process.loadEnvFile(".env.local");

const [command, ...args] = process.argv.slice(2);
const needsSeq = command === "show" || command === "replay";
const known = ["list", "show", "replay", "replay-all", "purge"];
if (!command || !known.includes(command) || args.length !== (needsSeq ? 1 : 0) || (needsSeq && !/^[1-9]\d{0,15}$/.test(args[0]!))) {
  console.error(command && known.includes(command) && needsSeq ? `${command} needs one dead-letter sequence number\n${usage}` : usage);
  process.exit(2);
}

const env = new EnvReader();
const natsUrl = env.url("NATS_URL", "nats://127.0.0.1:4222", ["nats:", "tls:"]);
try {
  env.done();
} catch (err) {
  console.error((err as Error).message);
  process.exit(1);
}

const sealer = optionalSealer();
const nc = await connect({ servers: natsUrl.split(","), name: "dead-letters", timeout: 5_000 }).catch((err: unknown) => {
  console.error(`cannot reach NATS at ${natsUrl}: ${(err as Error).message}`);
  process.exit(1);
});
let exitCode = 0;
try {
  const jsm = await nc.jetstreamManager();
  const js = nc.jetstream();
  switch (command) {
    case "list":
      await list(jsm);
      break;
    case "show":
      await show(jsm, Number(args[0]));
      break;
    case "replay":
      console.log(await replay(jsm, js, Number(args[0])));
      break;
    case "replay-all":
      exitCode = await replayAll(jsm, js);
      break;
    case "purge": {
      const info = await streamInfo(jsm);
      const purged = info ? (await jsm.streams.purge(DeadLettersStream.name)).purged : 0;
      console.log(`purged ${purged} dead letter${purged === 1 ? "" : "s"}`);
      break;
    }
  }
} catch (err) {
  console.error(err instanceof CliError ? err.message : `failed: ${(err as Error).message}`);
  exitCode = 1;
} finally {
  await nc.close();
}
process.exit(exitCode);

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

function describe(msg: StoredMsg): Described {
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

async function list(jsm: JetStreamManager): Promise<void> {
  const seqs = await sequences(jsm);
  if (seqs.length === 0) {
    console.log("no dead letters");
    return;
  }
  console.log(["SEQ", "TIME", "DELIVERIES", "LEDGER", "REASON"].join("\t"));
  for (const seq of seqs) {
    const msg = await get(jsm, seq);
    if (!msg) continue; // deleted meanwhile
    const { events } = describe(msg);
    // A line per event: a batch's events were dead-lettered together.
    for (const ledgerId of events.length > 0 ? events.map((e) => e.ledgerId.toString()) : ["-"]) {
      console.log(
        [
          seq,
          msg.header.get(DeadLetterHeaders.at) || msg.time.toISOString(),
          msg.header.get(DeadLetterHeaders.deliveries) || "-",
          ledgerId,
          msg.header.get(DeadLetterHeaders.reason) || "-",
        ].join("\t"),
      );
    }
  }
}

async function show(jsm: JetStreamManager, seq: number): Promise<void> {
  const msg = await get(jsm, seq);
  if (!msg) throw new CliError(`no dead letter with sequence ${seq}`);
  const { events, verified } = describe(msg);
  console.log(`seq: ${seq}`);
  console.log(`subject: ${msg.subject}`);
  console.log(`stored: ${msg.time.toISOString()}`);
  console.log("headers:");
  for (const [name, values] of msg.header) for (const value of values) console.log(`  ${name}: ${value}`);
  console.log(`payload: ${msg.data.length} bytes`);
  console.log(`verified: ${verified}`);
  if (events.length === 0) console.log("events: (not decodable here)");
  else console.log(`events: ${events.length}`);
  for (const event of events) console.log(`event: ${toJsonString(ScoreChangedSchema, event)}`);
}

async function replay(jsm: JetStreamManager, js: JetStreamClient, seq: number): Promise<string> {
  const msg = await get(jsm, seq);
  if (!msg) throw new CliError(`no dead letter with sequence ${seq}`);
  // The original headers (the seal among them), without our bookkeeping.
  const h = headers();
  for (const [name, values] of msg.header) {
    if (/^(nats-|sb-dlq-)/i.test(name)) continue;
    for (const value of values) h.append(name, value);
  }
  const originalId = msg.header.get(DeadLetterHeaders.msgId) || "unknown";
  const msgID = `${originalId}-replay-${seq}`;
  // As it was: a batch to the batch subject, a single event to the single one.
  const ack = await js.publish(Subjects.fromDeadLetter(msg.subject), msg.data, {
    headers: h,
    msgID,
    expect: { streamName: ScoresStream.name },
    timeout: 5_000,
  });
  // Only after SCORES stored it; a duplicate ack means an earlier replay of
  // this very dead letter got that far but not to the delete.
  await jsm.streams.deleteMessage(DeadLettersStream.name, seq);
  return `replayed dead letter ${seq} as ${msgID} (SCORES seq ${ack.seq}${ack.duplicate ? ", already there" : ""})`;
}

async function replayAll(jsm: JetStreamManager, js: JetStreamClient): Promise<number> {
  // The sequences present now: an event that fails again is dead-lettered
  // under a new sequence and is not replayed a second time by this run.
  const seqs = await sequences(jsm);
  let replayed = 0;
  let failed = 0;
  for (const seq of seqs) {
    try {
      console.log(await replay(jsm, js, seq));
      replayed += 1;
    } catch (err) {
      if (err instanceof CliError) continue; // deleted meanwhile
      failed += 1;
      console.error(`dead letter ${seq}: ${(err as Error).message}`);
    }
  }
  console.log(`replayed ${replayed} dead letter${replayed === 1 ? "" : "s"}${failed > 0 ? `, ${failed} failed` : ""}`);
  return failed > 0 ? 1 : 0;
}
