import { Code, ConnectError, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import type { BoardAdminService } from "@scoreboard/gen/scoreboard/v1/boards_pb";
import { Scopes, requireScope, type TokenVerifier } from "@scoreboard/platform/auth";
import { toConnectError } from "@scoreboard/platform/errors";
import { BOARD_ID, BOARD_ID_RULE, boardMessage, boardSpecOf, newBoardSpec, scheduleOf, seasonMessage } from "./board-rules.js";
import type { BoardStore } from "./board-store.js";

export interface BoardAdminDeps {
  boards: BoardStore;
  verifier: TokenVerifier;
  /** The time of changes and of GetBoard's current season; tests move it. */
  now?: () => Date;
}

/**
 * Board definitions (admin:score). ListBoards and GetBoard also accept
 * read:leaderboard: clients list the boards they can show.
 */
export function createBoardAdminService(deps: BoardAdminDeps): ServiceImpl<typeof BoardAdminService> {
  const now = deps.now ?? (() => new Date());
  const admin = async (ctx: HandlerContext) => {
    requireScope(await deps.verifier.authenticate(ctx.requestHeader.get("authorization")), Scopes.adminScore);
  };
  const reader = async (ctx: HandlerContext) => {
    const principal = await deps.verifier.authenticate(ctx.requestHeader.get("authorization"));
    if (!principal.scopes.has(Scopes.adminScore) && !principal.scopes.has(Scopes.readLeaderboard)) {
      throw new ConnectError(`token lacks the scope "${Scopes.adminScore}" or "${Scopes.readLeaderboard}"`, Code.PermissionDenied);
    }
  };
  const store = <T>(work: Promise<T>) =>
    work.catch((err: unknown) => {
      throw toConnectError(err, "board store");
    });
  const existing = async (boardId: string) => {
    if (!BOARD_ID.test(boardId)) throw new ConnectError(BOARD_ID_RULE, Code.InvalidArgument);
    const board = await store(deps.boards.get(boardId));
    if (!board) throw new ConnectError(`board "${boardId}" does not exist`, Code.NotFound);
    return board;
  };

  return {
    async createBoard(req, ctx) {
      await admin(ctx);
      const spec = newBoardSpec(boardSpecOf(req.board));
      return { board: boardMessage(await store(deps.boards.create(spec, now()))) };
    },
    async updateBoard(req, ctx) {
      await admin(ctx);
      const input = boardSpecOf(req.board);
      return { board: boardMessage(await store(deps.boards.update(input, Number(req.expectedRevision), now()))) };
    },
    async archiveBoard(req, ctx) {
      await admin(ctx);
      if (!BOARD_ID.test(req.boardId)) throw new ConnectError(BOARD_ID_RULE, Code.InvalidArgument);
      return { board: boardMessage(await store(deps.boards.archive(req.boardId, now()))) };
    },
    async listBoards(req, ctx) {
      await reader(ctx);
      return { boards: (await store(deps.boards.list(req.includeArchived))).map(boardMessage) };
    },
    async getBoard(req, ctx) {
      await reader(ctx);
      const board = await existing(req.boardId);
      return { board: boardMessage(board), currentSeason: seasonMessage(scheduleOf(board).seasonAt(now()), true) };
    },
  };
}
