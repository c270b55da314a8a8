import type { SharedRefusal } from "../writer.js";
import { sql } from "kysely";
import type { Db } from "@scoreboard/platform/db";
import { Subjects } from "@scoreboard/platform/nats";
import { inSpan, traceCarrier } from "@scoreboard/platform/tracing";

/** One submission, checked by the handler against the definition at `revision`. */
export interface BoardSubmission {
  userId: string;
  username: string;
  requireRegistration: boolean;
  boardId: string;
  /** The definition's revision the handler checked; a newer one refuses ("definition_changed"). */
  revision: number;
  season: string;
  score: number;
  /** 0 on boards whose ties go to the first to reach. */
  subscore: number;
  /** A JSON object's text, or null. */
  metadata: string | null;
  idempotencyKey?: string;
  ticketJti?: string;
  source: string;
  at: Date;
}

/** The submitter's entry after a submission. */
export interface BoardSubmitted {
  ledgerId: number;
  requestId: string;
  season: string;
  score: number;
  subscore: number;
  /** As PostgreSQL's jsonb prints it; "" for none. */
  metadata: string;
  reachedAt: Date;
  version: number;
  changed: boolean;
  replayed: boolean;
}

export type SubmitOutcome =
  | { kind: "submitted"; entry: BoardSubmitted }
  | { kind: "unknown_board" | "builtin" | "archived" | "definition_changed" | "ticket_required" }
  | SharedRefusal
  | { kind: "out_of_bounds"; score: number };

/** The write side of boards. */
export interface BoardSubmissions {
  submit(submission: BoardSubmission): Promise<SubmitOutcome>;
}

interface SubmitRow {
  outcome: string;
  ledger_id: number | null;
  request_id: string | null;
  season: string | null;
  score: number | null;
  subscore: number | null;
  metadata: string | null;
  reached_at: Date | null;
  version: number | null;
  changed: boolean | null;
  detail: string | null;
}

/** sb_board_submit() (board-functions.ts): one statement, its own transaction. */
export class PostgresBoardSubmissions implements BoardSubmissions {
  constructor(private readonly db: Db) {}

  submit(s: BoardSubmission): Promise<SubmitOutcome> {
    return inSpan("submit score", () => this.write(s), { attributes: { "scoreboard.board_id": s.boardId, "scoreboard.season": s.season } });
  }

  private async write(s: BoardSubmission): Promise<SubmitOutcome> {
    const trace = traceCarrier();
    const { rows } = await sql<SubmitRow>`
      SELECT * FROM sb_board_submit(${s.userId}, ${s.username}, ${s.requireRegistration}, ${s.boardId}, ${s.revision}, ${s.season},
        ${s.score}, ${s.subscore}, ${s.metadata}::jsonb, ${s.idempotencyKey ?? null}, ${s.ticketJti ?? null}, ${s.source},
        ${Subjects.scoreChanged}, ${s.at}, ${trace ? JSON.stringify(trace) : null}::jsonb)`.execute(this.db);
    const row = rows[0];
    if (!row) throw new Error("sb_board_submit answered no row");
    switch (row.outcome) {
      case "submitted":
      case "replayed":
        return {
          kind: "submitted",
          entry: {
            ledgerId: Number(row.ledger_id),
            requestId: row.request_id!,
            season: row.season!,
            score: Number(row.score),
            subscore: Number(row.subscore ?? 0),
            metadata: row.metadata ?? "",
            reachedAt: row.reached_at!,
            version: Number(row.version),
            changed: row.changed === true,
            replayed: row.outcome === "replayed",
          },
        };
      case "not_a_player":
        return { kind: "not_a_player", role: row.detail ?? "" };
      case "out_of_bounds":
        return { kind: "out_of_bounds", score: Number(row.detail) };
      case "unknown_board":
      case "builtin":
      case "archived":
      case "definition_changed":
      case "ticket_required":
      case "ticket_used":
      case "unregistered":
      case "idempotency_mismatch":
        return { kind: row.outcome };
      default:
        throw new Error(`sb_board_submit returned an unknown outcome "${row.outcome}"`);
    }
  }
}
