import { Code, ConnectError, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { BoardScoreService, SubmitScoreRequest } from "@scoreboard/gen/scoreboard/v1/boards_pb";
import type { Principal, TokenVerifier } from "@scoreboard/platform/auth";
import { toConnectError } from "@scoreboard/platform/errors";
import { IDEMPOTENCY_KEY_HEADER, idempotencyKeyOf } from "@scoreboard/platform/idempotency-key";
import type { Logger } from "@scoreboard/platform/logger";
import type { AuditEntry } from "../ledger.js";
import { writeSourceOf } from "../service.js";
import { WriterRefused, WriterUnchecked, authenticateWriter, sharedRefusal } from "../writer.js";
import { BOARD_ID, BOARD_ID_RULE, isSafeScore, scheduleOf, type Board } from "./board-rules.js";
import type { BoardStore } from "./board-store.js";
import type { BoardSubmissions, SubmitOutcome } from "./board-submissions.js";

/**
 * Verifies a signed action ticket (ActionTicketVerifier); resolves with its
 * one-time id and its "score" claim, if any.
 */
export interface BoardTicketCheck {
  verify(ticket: string, expected: { userId: string; actionId: string }): Promise<{ jti: string; score?: number }>;
}

export interface BoardScoreDeps {
  boards: Pick<BoardStore, "get">;
  submissions: BoardSubmissions;
  verifier: TokenVerifier;
  /** Checks X-API-Key (seed 001) when a request carries one, as grants do. */
  apiKeys: { apiKeyMatches(userId: string, apiKey: string): Promise<boolean> };
  tickets?: BoardTicketCheck;
  /** Records refusals decided before the database (those it decides, it audits itself). */
  audit: (entry: AuditEntry) => Promise<void>;
  logger: Pick<Logger, "error">;
  requireRegistration: boolean;
  /** Told after every committed change (the outbox relay publishes at once). */
  onSubmitted: () => void;
  /** A submission's time, which keys its season; tests move it. */
  now?: () => Date;
}

/** The action a board's tickets name. */
export const boardTicketAction = (boardId: string) => `board:${boardId}`;

const OPERATION = "submit_score";

export function createBoardScoreService(deps: BoardScoreDeps): ServiceImpl<typeof BoardScoreService> {
  const now = deps.now ?? (() => new Date());
  const refuse = async (userId: string | null, error: ConnectError, detail: Record<string, unknown> = {}) => {
    // An audit that cannot be written must not hide the refusal's own status.
    await deps
      .audit({ userId, operation: OPERATION, outcome: "refused", reason: error.rawMessage, detail: { code: Code[error.code], ...detail } })
      .catch(() => {});
    return error;
  };
  const store = <T>(work: Promise<T>) =>
    work.catch((err: unknown) => {
      throw toConnectError(err, "board store");
    });

  const caller = async (ctx: HandlerContext): Promise<Principal> => {
    try {
      return await authenticateWriter(deps.verifier, deps.apiKeys, ctx);
    } catch (err) {
      if (err instanceof WriterUnchecked) throw toConnectError(err.cause, "board store");
      if (err instanceof WriterRefused) throw await refuse(err.userId, err.error);
      throw err;
    }
  };

  /** The board, if it takes this caller's submissions. */
  const openBoard = async (principal: Principal, boardId: string): Promise<Board> => {
    const board = await store(deps.boards.get(boardId));
    const deny = (message: string, code: Code) => refuse(principal.userId, new ConnectError(message, code), { boardId });
    if (!board) throw await deny(`board "${boardId}" does not exist`, Code.NotFound);
    if (board.builtin) throw await deny(`board "${boardId}" is fed by action grants, not by submissions`, Code.FailedPrecondition);
    if (board.archived) throw await deny(`board "${boardId}" is archived and takes no submissions`, Code.FailedPrecondition);
    const missing = board.writeScopes.find((scope) => !principal.scopes.has(scope));
    if (missing) throw await deny(`board "${boardId}" needs the scope "${missing}"`, Code.PermissionDenied);
    return board;
  };

  return {
    async submitScore(req, ctx) {
      const principal = await caller(ctx);
      const invalid = async (message: string) => refuse(principal.userId, new ConnectError(message, Code.InvalidArgument), { boardId: req.boardId });
      if (!BOARD_ID.test(req.boardId)) throw await invalid(BOARD_ID_RULE);
      if (!isSafeScore(req.score)) throw await invalid(`score must be within ±${Number.MAX_SAFE_INTEGER}`);
      if (!isSafeScore(req.subscore)) throw await invalid(`subscore must be within ±${Number.MAX_SAFE_INTEGER}`);
      const idempotencyKey = idempotencyKeyOf(req.idempotencyKey, ctx.requestHeader.get(IDEMPOTENCY_KEY_HEADER)) || undefined;

      // A definition changed between our read and the write: read it again, once.
      for (let attempt = 1; ; attempt++) {
        const board = await openBoard(principal, req.boardId);
        const metadataProblem = metadataProblemOf(req.metadata, board.metadataMaxBytes);
        if (metadataProblem) throw await invalid(metadataProblem);
        const ticketJti = board.requiresTicket ? await checkTicket(req, principal, board) : undefined;
        const at = now();
        const outcome = await store(
          deps.submissions.submit({
            userId: principal.userId,
            username: principal.username,
            requireRegistration: deps.requireRegistration,
            boardId: board.boardId,
            revision: board.revision,
            season: scheduleOf(board).seasonAt(at).id,
            score: Number(req.score),
            // Ties go to the first to reach unless the board orders them by subscore.
            subscore: board.tieRule === "subscore" ? Number(req.subscore) : 0,
            metadata: req.metadata === "" ? null : req.metadata,
            idempotencyKey,
            ticketJti,
            source: writeSourceOf(ctx),
            at,
          }),
        );
        if (outcome.kind === "definition_changed" && attempt < 2) continue;
        if (outcome.kind !== "submitted") throw refusalOf(outcome, board);
        const { entry } = outcome;
        if (entry.changed && !entry.replayed) deps.onSubmitted();
        return {
          boardId: board.boardId,
          season: entry.season,
          entry: {
            rank: 0n,
            userId: principal.userId,
            username: principal.username,
            score: BigInt(entry.score),
            subscore: BigInt(entry.subscore),
            metadata: entry.metadata,
            reachedAt: timestampFromDate(entry.reachedAt),
          },
          changed: entry.changed,
          requestId: entry.requestId,
          replayed: entry.replayed,
        };
      }
    },
  };

  /** The ticket's one-time id, once it proves this user's submission of this score to this board. */
  async function checkTicket(req: SubmitScoreRequest, principal: Principal, board: Board): Promise<string> {
    const deny = async (error: ConnectError) => refuse(principal.userId, error, { boardId: board.boardId });
    if (!req.actionTicket) {
      throw await deny(new ConnectError(`board "${board.boardId}" takes only submissions with a signed action ticket`, Code.PermissionDenied));
    }
    if (!deps.tickets) throw new ConnectError("action tickets are not configured on this server", Code.FailedPrecondition);
    let ticket: { jti: string; score?: number };
    try {
      ticket = await deps.tickets.verify(req.actionTicket, { userId: principal.userId, actionId: boardTicketAction(board.boardId) });
    } catch (err) {
      throw await deny(ConnectError.from(err));
    }
    if (ticket.score === undefined || BigInt(ticket.score) !== req.score) {
      throw await deny(new ConnectError('action ticket claim "score" must equal the score submitted', Code.PermissionDenied));
    }
    return ticket.jti;
  }
}

/** Why `metadata` may not go with a submission to a board that takes `maxBytes`, or undefined. */
export function metadataProblemOf(metadata: string, maxBytes: number): string | undefined {
  if (metadata === "") return undefined;
  if (maxBytes === 0) return "this board takes no metadata";
  const bytes = Buffer.byteLength(metadata, "utf8");
  if (bytes > maxBytes) return `metadata is ${bytes} bytes; this board takes at most ${maxBytes}`;
  let parsed: unknown;
  try {
    parsed = JSON.parse(metadata);
  } catch {
    return "metadata must be a JSON object";
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) return "metadata must be a JSON object";
  return undefined;
}

function refusalOf(outcome: Exclude<SubmitOutcome, { kind: "submitted" }>, board: Board): ConnectError {
  const name = `board "${board.boardId}"`;
  switch (outcome.kind) {
    case "unknown_board":
      return new ConnectError(`${name} does not exist`, Code.NotFound);
    case "builtin":
      return new ConnectError(`${name} is fed by action grants, not by submissions`, Code.FailedPrecondition);
    case "archived":
      return new ConnectError(`${name} is archived and takes no submissions`, Code.FailedPrecondition);
    case "definition_changed":
      return new ConnectError(`${name} changed while the submission was checked; retry`, Code.Aborted);
    case "ticket_required":
      return new ConnectError(`${name} takes only submissions with a signed action ticket`, Code.PermissionDenied);
    case "out_of_bounds": {
      const bounds = `[${board.minScore ?? "-"}, ${board.maxScore ?? "-"}]`;
      return board.operator === "incr" || board.operator === "decr"
        ? new ConnectError(`the entry would become ${outcome.score}, outside ${name}'s bounds ${bounds}`, Code.FailedPrecondition)
        : new ConnectError(`score ${outcome.score} is outside ${name}'s bounds ${bounds}`, Code.InvalidArgument);
    }
    default:
      return sharedRefusal(outcome);
  }
}
