import { Code, ConnectError } from "@connectrpc/connect";
import { sql } from "kysely";
import type { Db } from "@scoreboard/platform/db";
import { boardOfRow, rowOfSpec, updatedSpec, type Board, type BoardSpec, type BoardSpecInput } from "./board-rules.js";

const UNIQUE_VIOLATION = "23505";

/** Board definitions: what the admin and submit handlers need from storage. */
export interface BoardStore {
  /** ALREADY_EXISTS when the id is taken. */
  create(spec: BoardSpec, at: Date): Promise<Board>;
  /**
   * Replaces the mutable fields and raises the revision. NOT_FOUND, ABORTED
   * when `expectedRevision` is nonzero and not the board's, FAILED_PRECONDITION
   * for a builtin board or a changed sort order or tie rule.
   */
  update(input: BoardSpecInput, expectedRevision: number, at: Date): Promise<Board>;
  /** Idempotent; NOT_FOUND, FAILED_PRECONDITION for a builtin board. */
  archive(boardId: string, at: Date): Promise<Board>;
  list(includeArchived: boolean): Promise<Board[]>;
  get(boardId: string): Promise<Board | undefined>;
}

export class PostgresBoardStore implements BoardStore {
  constructor(private readonly db: Db) {}

  async create(spec: BoardSpec, at: Date): Promise<Board> {
    try {
      const row = await this.db
        .insertInto("board_definitions")
        .values({ ...rowOfSpec(spec), created_at: at, updated_at: at })
        .returningAll()
        .executeTakeFirstOrThrow();
      return boardOfRow(row);
    } catch (err) {
      if ((err as { code?: string }).code === UNIQUE_VIOLATION) {
        throw new ConnectError(`board "${spec.boardId}" already exists`, Code.AlreadyExists);
      }
      throw err;
    }
  }

  update(input: BoardSpecInput, expectedRevision: number, at: Date): Promise<Board> {
    return this.db.transaction().execute(async (trx) => {
      const current = await trx.selectFrom("board_definitions").selectAll().where("board_id", "=", input.boardId).forUpdate().executeTakeFirst();
      if (!current) throw notFound(input.boardId);
      const board = boardOfRow(current);
      if (expectedRevision !== 0 && expectedRevision !== board.revision) {
        throw new ConnectError(`board "${input.boardId}" is at revision ${board.revision}, not ${expectedRevision}: read it again`, Code.Aborted);
      }
      const spec = updatedSpec(board, input);
      const row = await trx
        .updateTable("board_definitions")
        .set({ ...rowOfSpec(spec), revision: sql<number>`revision + 1`, updated_at: at })
        .where("board_id", "=", spec.boardId)
        .returningAll()
        .executeTakeFirstOrThrow();
      return boardOfRow(row);
    });
  }

  archive(boardId: string, at: Date): Promise<Board> {
    return this.db.transaction().execute(async (trx) => {
      const current = await trx.selectFrom("board_definitions").selectAll().where("board_id", "=", boardId).forUpdate().executeTakeFirst();
      if (!current) throw notFound(boardId);
      if (current.builtin) throw new ConnectError(`board "${boardId}" is builtin and cannot be archived`, Code.FailedPrecondition);
      if (current.archived_at !== null) return boardOfRow(current);
      const row = await trx
        .updateTable("board_definitions")
        .set({ archived_at: at, revision: sql<number>`revision + 1`, updated_at: at })
        .where("board_id", "=", boardId)
        .returningAll()
        .executeTakeFirstOrThrow();
      return boardOfRow(row);
    });
  }

  async list(includeArchived: boolean): Promise<Board[]> {
    let query = this.db.selectFrom("board_definitions").selectAll().orderBy("board_id");
    if (!includeArchived) query = query.where("archived_at", "is", null);
    return (await query.execute()).map(boardOfRow);
  }

  async get(boardId: string): Promise<Board | undefined> {
    const row = await this.db.selectFrom("board_definitions").selectAll().where("board_id", "=", boardId).executeTakeFirst();
    return row && boardOfRow(row);
  }
}

function notFound(boardId: string): ConnectError {
  return new ConnectError(`board "${boardId}" does not exist`, Code.NotFound);
}
