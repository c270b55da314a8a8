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
} from "nats";
import type { Logger } from "./logger.js";

/**
 * Every JetStream stream and durable consumer is declared here and created
 * idempotently at start, so a fresh NATS and an upgraded one converge.
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
  /** Where a consumer parks a message it gave up on: scoreboard.dlq.<subject without "scoreboard.">. */
  deadLetter: (subject: string) => `scoreboard.dlq.${subject.replace(/^scoreboard\./, "")}`,
  /** The subject a dead letter was first published on (deadLetter's inverse). */
  fromDeadLetter: (subject: string) => subject.replace(/^scoreboard\.dlq\./, "scoreboard."),
  allDeadLetters: "scoreboard.dlq.>",
} as const;

export const ScoresStream: Partial<StreamConfig> & { name: string } = {
  name: "SCORES",
  subjects: [Subjects.allScores],
  storage: StorageType.File,
  retention: RetentionPolicy.Limits,
  // A republish of the same batch (Nats-Msg-Id: a digest of its ledger ids)
  // within this window is dropped by the server; the outbox relay retries
  // far sooner than this.
  duplicate_window: nanos(10 * 60_000),
  max_age: nanos(7 * 24 * 3_600_000),
  num_replicas: 1,
};

/**
 * Score event messages a consumer could not trust (failed verification, did
 * not decode) or could not apply within its maximum deliveries: a batch goes
 * whole. Each dead letter is the original message, payload and headers (minus
 * the Nats-* publish headers), plus the DeadLetterHeaders below;
 * `npm run dead-letters` lists and replays them.
 */
export const DeadLettersStream: Partial<StreamConfig> & { name: string } = {
  name: "SCORES_DLQ",
  subjects: [Subjects.allDeadLetters],
  storage: StorageType.File,
  retention: RetentionPolicy.Limits,
  // A consumer that lost its term() after the dead letter was stored sends
  // it again on redelivery (≥ ack_wait later); the Nats-Msg-Id drops it.
  duplicate_window: nanos(10 * 60_000),
  max_age: nanos(30 * 24 * 3_600_000),
  // A flood of forged events must not fill the disk: past this the oldest go.
  max_msgs: 1_000_000,
  num_replicas: 1,
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
    servers: url.split(","),
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

export async function ensureStream(jsm: JetStreamManager, config: Partial<StreamConfig> & { name: string }): Promise<void> {
  try {
    await jsm.streams.info(config.name);
    await jsm.streams.update(config.name, config);
  } catch (err) {
    if (!isNotFound(err)) throw err;
    await jsm.streams.add(config);
  }
}

export async function ensureConsumer(
  jsm: JetStreamManager,
  stream: string,
  config: Partial<ConsumerConfig> & { durable_name: string },
): Promise<void> {
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
