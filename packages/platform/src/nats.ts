import {
  AckPolicy,
  DeliverPolicy,
  RetentionPolicy,
  StorageType,
  connect,
  nanos,
  type ConsumerConfig,
  type JetStreamManager,
  type MsgHdrs,
  type NatsConnection,
  type StreamConfig,
  type StreamInfo,
} from "nats";
import type { JetStreamConfig } from "./config.js";
import type { Logger } from "./logger.js";

/**
 * Every JetStream stream and durable consumer is declared here and created
 * idempotently at start, so a fresh NATS and an upgraded one converge. A
 * stream's replicas and storage are the deployment's (configuredStream), not
 * the declaration's.
 */
export const Subjects = {
  /** One ScoreChanged per message: what releases before batches published (still consumed). */
  scoreChanged: "scoreboard.score.changed",
  /** One ScoreChangedBatch per message: what score's outbox relay publishes. */
  scoreBatch: "scoreboard.score.batch",
  /** Every score event subject, as SCORES captures them. */
  allScores: "scoreboard.score.>",
  boardChanged: (board: string) => `scoreboard.board.${board}.changed`,
  allBoardsChanged: "scoreboard.board.*.changed",
  /** BoardMoved: which entries of a board moved (ranking publishes, push relays to standing watchers). */
  boardMoved: (board: string) => `scoreboard.board.${board}.moved`,
  allBoardsMoved: "scoreboard.board.*.moved",
  /** Where a consumer parks a message it gave up on: scoreboard.dlq.<subject without "scoreboard.">. */
  deadLetter: (subject: string) => `scoreboard.dlq.${subject.replace(/^scoreboard\./, "")}`,
  /** The subject a dead letter was first published on (deadLetter's inverse). */
  fromDeadLetter: (subject: string) => subject.replace(/^scoreboard\.dlq\./, "scoreboard."),
  allDeadLetters: "scoreboard.dlq.>",
} as const;

/** What the product needs of a stream; configuredStream adds replicas and storage. */
export type StreamDeclaration = Partial<StreamConfig> & { name: string; subjects: string[] };

export const ScoresStream: StreamDeclaration = {
  name: "SCORES",
  subjects: [Subjects.allScores],
  retention: RetentionPolicy.Limits,
  // A republish of the same batch (Nats-Msg-Id: a digest of its ledger ids)
  // within this window is dropped by the server; the outbox relay retries
  // far sooner than this.
  duplicate_window: nanos(10 * 60_000),
  max_age: nanos(7 * 24 * 3_600_000),
};

/**
 * Score event messages a consumer could not trust (failed verification, did
 * not decode) or could not apply within its maximum deliveries: a batch goes
 * whole. Each dead letter is the original message, payload and headers (minus
 * the Nats-* publish headers), plus the DeadLetterHeaders below;
 * `npm run dead-letters` lists and replays them.
 */
export const DeadLettersStream: StreamDeclaration = {
  name: "SCORES_DLQ",
  subjects: [Subjects.allDeadLetters],
  retention: RetentionPolicy.Limits,
  // A consumer that lost its term() after the dead letter was stored sends
  // it again on redelivery (≥ ack_wait later); the Nats-Msg-Id drops it.
  duplicate_window: nanos(10 * 60_000),
  max_age: nanos(30 * 24 * 3_600_000),
  // A flood of forged events must not fill the disk: past this the oldest go.
  max_msgs: 1_000_000,
};

export const DeadLetterHeaders = {
  /** Why: an EventIntegrityReason, "undecodable", or "max-deliveries: <last error>". */
  reason: "Sb-Dlq-Reason",
  /** The message's sequence in its stream (SCORES). */
  streamSeq: "Sb-Dlq-Stream-Seq",
  /** How many times the consumer had received it. */
  deliveries: "Sb-Dlq-Deliveries",
  /** When it was dead-lettered, ISO 8601 UTC. */
  at: "Sb-Dlq-At",
  /** The message's original Nats-Msg-Id (a batch's digest, a single event's ledger id), when it had one. */
  msgId: "Sb-Dlq-Msg-Id",
} as const;

export const RankingConsumer: Partial<ConsumerConfig> & { durable_name: string } = {
  durable_name: "ranking",
  ack_policy: AckPolicy.Explicit,
  deliver_policy: DeliverPolicy.All,
  // Batches and the single events of earlier releases (nats-server 2.9 has
  // one filter subject per consumer, and updates it in place).
  filter_subject: Subjects.allScores,
  ack_wait: nanos(30_000),
  // Unlimited on the server: ranking itself moves a message it could not
  // apply within RANKING_MAX_DELIVER deliveries to SCORES_DLQ, and terms it
  // only once the dead letter is stored. (A server-side max_deliver would
  // drop the message from the consumer and announce it only by a core NATS
  // advisory that nobody may be listening to at that moment.)
  max_deliver: -1,
  max_ack_pending: 10_000,
};

export async function connectNats(url: string, name: string, logger: Logger, options: { oneShot?: boolean } = {}): Promise<NatsConnection> {
  const nc = await connect({
    servers: url.split(",").map((server) => server.trim()),
    name,
    // A service waits for NATS and reconnects forever; a one-shot job (a
    // CLI, a CronJob) fails within seconds instead of hanging.
    ...(options.oneShot ? { timeout: 5_000, maxReconnectAttempts: 0 } : { maxReconnectAttempts: -1, reconnectTimeWait: 500, waitOnFirstConnect: true }),
  });
  void (async () => {
    for await (const status of nc.status()) {
      if (status.type === "disconnect" || status.type === "reconnect" || status.type === "error") {
        logger.warn({ nats: status.type, data: String(status.data) }, "nats connection status");
      }
    }
  })();
  return nc;
}

/** A stream as this deployment creates it: the declaration plus JETSTREAM_REPLICAS and JETSTREAM_STORAGE. */
export function configuredStream(stream: StreamDeclaration, jetstream: JetStreamConfig): StreamDeclaration {
  return { ...stream, num_replicas: jetstream.replicas, storage: jetstream.storage === "memory" ? StorageType.Memory : StorageType.File };
}

/** A setting of an existing stream that differs from what this deployment would create it with. */
export interface StreamDrift {
  setting: string;
  configured: unknown;
  actual: unknown;
}

/**
 * Creates the stream when NATS has none. An existing stream belongs to its
 * operator: replicas, storage, limits and windows stay as they are (updating
 * it to the declaration on every start put a stream scaled to three replicas
 * back to one on each deploy). The one change made is to capture subjects
 * this release publishes on that the stream does not, without which its
 * publishes would fail; every other difference is logged, naming the setting.
 */
export async function ensureStream(jsm: JetStreamManager, stream: StreamDeclaration, logger: Pick<Logger, "warn" | "info">): Promise<void> {
  const existing = await streamInfoOrCreate(jsm, stream);
  if (!existing) return;
  const subjects = widenedSubjects(existing.config.subjects ?? [], stream.subjects);
  if (subjects) {
    await jsm.streams.update(stream.name, { subjects });
    logger.info({ stream: stream.name, subjects }, `stream ${stream.name} captures this release's subjects now`);
  }
  for (const drift of streamDrift(existing.config, stream)) {
    logger.warn({ stream: stream.name, ...drift }, `stream ${stream.name}: ${drift.setting} differs from the configuration; left as NATS has it`);
  }
}

/** The stream's info, or undefined once this call created it. */
async function streamInfoOrCreate(jsm: JetStreamManager, stream: StreamDeclaration): Promise<StreamInfo | undefined> {
  try {
    return await jsm.streams.info(stream.name);
  } catch (err) {
    if (!isNotFound(err)) throw err;
  }
  try {
    await jsm.streams.add(stream);
    return undefined;
  } catch (err) {
    // Score and ranking both declare SCORES at start: the other one was first.
    if (/already in use/i.test((err as Error).message)) return jsm.streams.info(stream.name);
    const placement = `${stream.num_replicas ?? 1} replica(s), ${stream.storage ?? StorageType.File} storage`;
    throw new Error(`creating stream ${stream.name} (${placement}, from JETSTREAM_REPLICAS and JETSTREAM_STORAGE): ${(err as Error).message}`, { cause: err });
  }
}

/**
 * The subjects an existing stream should capture so that it holds every
 * declared one, or undefined when it already does. A subject the stream
 * captures through a wider one (an operator's `scoreboard.>`) is not added:
 * NATS refuses overlapping subjects. Subjects a newly added one covers go,
 * for the same reason.
 */
export function widenedSubjects(existing: string[], declared: string[]): string[] | undefined {
  const missing = declared.filter((subject) => !existing.some((have) => subjectCovers(have, subject)));
  if (missing.length === 0) return undefined;
  return [...existing.filter((have) => !missing.some((added) => subjectCovers(added, have))), ...missing];
}

/** Whether the subject pattern `wider` matches every subject `subject` (itself possibly a pattern) matches. */
export function subjectCovers(wider: string, subject: string): boolean {
  const w = wider.split(".");
  const s = subject.split(".");
  for (let i = 0; i < w.length; i++) {
    if (w[i] === ">") return s.length > i;
    if (i >= s.length || s[i] === ">") return false;
    if (w[i] !== "*" && w[i] !== s[i]) return false;
  }
  return w.length === s.length;
}

/** Each declared setting (other than name and subjects) that the existing stream holds differently. */
export function streamDrift(actual: Partial<StreamConfig>, declared: StreamDeclaration): StreamDrift[] {
  const drift: StreamDrift[] = [];
  for (const [setting, configured] of Object.entries(declared)) {
    if (setting === "name" || setting === "subjects") continue;
    const held = (actual as Record<string, unknown>)[setting];
    if (JSON.stringify(held) !== JSON.stringify(configured)) drift.push({ setting, configured, actual: held });
  }
  return drift;
}

export async function ensureConsumer(jsm: JetStreamManager, stream: string, config: Partial<ConsumerConfig> & { durable_name: string }): Promise<void> {
  try {
    await jsm.consumers.info(stream, config.durable_name);
    await jsm.consumers.update(stream, config.durable_name, config);
  } catch (err) {
    if (!isNotFound(err)) throw err;
    await jsm.consumers.add(stream, config);
  }
}

function isNotFound(err: unknown): boolean {
  return err instanceof Error && /not found/i.test(err.message);
}

/** A message's headers as one string per name (repeated values joined by ","), for EventSealer.open. */
export function headerRecord(h: MsgHdrs | undefined): Record<string, string> {
  const record: Record<string, string> = {};
  if (!h) return record;
  for (const [name, values] of h) record[name] = values.join(",");
  return record;
}

/** The JetStream publish failed because no stream captures the subject (deleted, or NATS lost its store). */
export function isNoStream(err: unknown): boolean {
  const code = (err as { code?: unknown }).code;
  return code === "503" || /no responders|stream not found/i.test((err as Error).message);
}
