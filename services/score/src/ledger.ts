import { createHash } from "node:crypto";
import { sql } from "kysely";
import { Subjects } from "@scoreboard/platform/nats";
import type { Db } from "@scoreboard/platform/db";
import { inSpan, traceCarrier } from "@scoreboard/platform/tracing";
import { GroupCommit } from "@scoreboard/platform/group-commit";

export interface Grantee {
  userId: string;
  username: string;
}

/** What every write carries besides its own fields. */
export interface WriteContext {
  grantee: Grantee;
  /** The API the write came through, e.g. "rest:004" or "rpc". */
  source: string;
  idempotencyKey?: string;
  /** Refuse users that are not in the users table (seed 001's registration). */
  requireRegistration: boolean;
  /** The region to record on the user's profile (the token's claim), if any. */
  region?: string;
}

export interface Grant {
  ledgerId: number;
  requestId: string;
  userId: string;
  actionId: string | null;
  points: number;
  newScore: number;
  version: number;
  replayed: boolean;
}

export type GrantOutcome =
  | { kind: "granted"; grant: Grant }
  | { kind: "unknown_action" }
  | { kind: "already_granted" }
  | { kind: "ticket_required" }
  | { kind: "ticket_used" }
  | { kind: "unregistered" }
  | { kind: "not_a_player"; role: string }
  | { kind: "below_zero"; score: number }
  | { kind: "idempotency_mismatch" };

/** The write side of scoring: what the RPC handlers need from PostgreSQL. */
export interface Ledger {
  grantAction(ctx: WriteContext, actionId: string, ticketJti?: string): Promise<GrantOutcome>;
  addScore(ctx: WriteContext, delta: number): Promise<GrantOutcome>;
  /** Checks an API key (seed 001's X-API-Key) against the user's stored hash. */
  apiKeyMatches(userId: string, apiKey: string): Promise<boolean>;
  audit(entry: AuditEntry): Promise<void>;
}

export interface AuditEntry {
  userId: string | null;
  operation: string;
  outcome: "granted" | "refused";
  reason: string;
  requestId?: string;
  detail?: Record<string, unknown>;
}

export function hashApiKey(apiKey: string): string {
  return createHash("sha256").update(apiKey).digest("hex");
}

interface GrantRequest {
  userId: string;
  username: string;
  requireRegistration: boolean;
  actionId: string | null;
  delta: number | null;
  idempotencyKey: string | null;
  ticketJti: string | null;
  source: string;
  region: string | null;
  /** The grant span's W3C context, stored with the outbox row by sb_grant_batch(); absent when untraced. */
  traceContext?: Record<string, string>;
}

export class PostgresLedger implements Ledger {
  private readonly batches: GroupCommit<GrantRequest, GrantRow>;

  constructor(
    private readonly db: Db,
    /** Concurrent grant transactions; keep below the pool size (the relay needs connections too). */
    maxInFlight = 4,
  ) {
    this.batches = new GroupCommit((items) => this.writeBatch(items), maxInFlight, 128);
  }

  /**
   * One statement, sb_grant() (grant-functions.ts), in its own transaction: the
   * ledger row (unique per user and action), the user's new total and
   * version, the outbox row and the audit row — all committed or none; a
   * repeat changes nothing. Refusals it decides are audited there too.
   */
  grantAction(ctx: WriteContext, actionId: string, ticketJti?: string): Promise<GrantOutcome> {
    return inSpan("grant", () => this.grant(ctx, actionId, null, ticketJti), { attributes: { "scoreboard.action_id": actionId }, describe: outcomeAttributes });
  }

  addScore(ctx: WriteContext, delta: number): Promise<GrantOutcome> {
    return inSpan("grant", () => this.grant(ctx, null, delta), { attributes: { "scoreboard.delta": delta }, describe: outcomeAttributes });
  }

  async apiKeyMatches(userId: string, apiKey: string): Promise<boolean> {
    const row = await this.db.selectFrom("users").select("api_key_hash").where("user_id", "=", userId).executeTakeFirst();
    return !!row?.api_key_hash && row.api_key_hash === hashApiKey(apiKey);
  }

  async audit(entry: AuditEntry): Promise<void> {
    await this.db
      .insertInto("audit_log")
      .values({
        user_id: entry.userId,
        operation: entry.operation,
        outcome: entry.outcome,
        reason: entry.reason,
        request_id: entry.requestId ?? null,
        detail: JSON.stringify(entry.detail ?? {}),
      })
      .execute();
  }

  private async grant(ctx: WriteContext, actionId: string | null, delta: number | null, ticketJti?: string): Promise<GrantOutcome> {
    const row = await this.batches.submit({
      userId: ctx.grantee.userId,
      username: ctx.grantee.username,
      requireRegistration: ctx.requireRegistration,
      actionId,
      delta,
      idempotencyKey: ctx.idempotencyKey ?? null,
      ticketJti: ticketJti ?? null,
      source: ctx.source,
      region: ctx.region ?? null,
      traceContext: traceCarrier(),
    });
    switch (row.outcome) {
      case "granted":
      case "replayed":
        return {
          kind: "granted",
          grant: {
            ledgerId: Number(row.ledger_id),
            requestId: row.request_id!,
            userId: ctx.grantee.userId,
            actionId,
            points: Number(row.points),
            newScore: Number(row.new_score),
            version: Number(row.version ?? 0),
            replayed: row.outcome === "replayed",
          },
        };
      case "not_a_player":
        return { kind: "not_a_player", role: row.detail ?? "" };
      case "below_zero":
        return { kind: "below_zero", score: Number(row.detail ?? 0) };
      case "unknown_action":
      case "already_granted":
      case "ticket_required":
      case "ticket_used":
      case "unregistered":
      case "idempotency_mismatch":
        return { kind: row.outcome };
      default:
        throw new Error(`sb_grant returned an unknown outcome "${row.outcome}"`);
    }
  }

  /** One statement and one commit for the whole batch (sb_grant_batch(), grant-functions.ts). */
  private async writeBatch(items: GrantRequest[]): Promise<GrantRow[]> {
    // Same lock order in every batch (users, then their totals) so two
    // concurrent batches cannot deadlock on each other's rows.
    const order = items.map((item, i) => ({ item, i })).sort((a, b) => (a.item.userId < b.item.userId ? -1 : a.item.userId > b.item.userId ? 1 : a.i - b.i));
    const { rows } = await sql<GrantRow & { ord: number }>`
      SELECT * FROM sb_grant_batch(${JSON.stringify(order.map((o) => o.item))}::jsonb, ${Subjects.scoreChanged})`.execute(this.db);
    const results: GrantRow[] = new Array(items.length);
    for (const row of rows) results[order[row.ord]!.i] = row;
    if (results.some((r) => r === undefined)) throw new Error("sb_grant_batch answered fewer rows than grants");
    return results;
  }
}

function outcomeAttributes(outcome: GrantOutcome) {
  return outcome.kind === "granted"
    ? { "scoreboard.outcome": outcome.grant.replayed ? "replayed" : "granted", "scoreboard.ledger_id": outcome.grant.ledgerId }
    : { "scoreboard.outcome": outcome.kind };
}

interface GrantRow {
  outcome: string;
  ledger_id: number | null;
  request_id: string | null;
  points: number | null;
  new_score: number | null;
  version: number | null;
  detail: string | null;
}
