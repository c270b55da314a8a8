// Score's board services on a fresh migrated database, called in memory like
// connect-es's examples, with a clock the test moves and a game server's key.
import { createClient, createRouterTransport } from "@connectrpc/connect";
import { exportJWK, generateKeyPair } from "jose";
import { BoardAdminService, BoardScoreService } from "@scoreboard/gen/scoreboard/v1/boards_pb";
import { ActionTicketVerifier, mintActionTicket } from "@scoreboard/platform/action-ticket";
import { Scopes, TokenVerifier, mintToken, type MintOptions } from "@scoreboard/platform/auth";
import type { AuthConfig } from "@scoreboard/platform/config";
import type { Db } from "@scoreboard/platform/db";
import { createLogger } from "@scoreboard/platform/logger";
import { createBoardAdminService } from "../../services/score/src/boards/board-admin-service.js";
import { boardTicketAction, createBoardScoreService } from "../../services/score/src/boards/board-score-service.js";
import { PostgresBoardStore } from "../../services/score/src/boards/board-store.js";
import { PostgresBoardSubmissions } from "../../services/score/src/boards/board-submissions.js";
import { PostgresLedger } from "../../services/score/src/ledger.js";
import { freshMigratedDb } from "./database.js";

const auth: AuthConfig = { jwtSecret: "board-writes-test-secret-0123456789", issuer: "scoreboard", audience: "scoreboard-api" };

export interface BoardServices {
  db: Db;
  admin: ReturnType<typeof createClient<typeof BoardAdminService>>;
  boards: ReturnType<typeof createClient<typeof BoardScoreService>>;
  /** The services' clock; set it to cross a season boundary. */
  clock: { now: Date };
  /** How many committed changes told the relay. */
  kicks: () => number;
  headers(userId: string, options?: MintOptions): Promise<{ headers: Record<string, string> }>;
  adminHeaders(): Promise<{ headers: Record<string, string> }>;
  ticket(userId: string, boardId: string, score?: number, jti?: string): Promise<string>;
}

export async function startBoardServices(databaseUrl: string): Promise<BoardServices> {
  const { db } = await freshMigratedDb(databaseUrl);
  const pair = await generateKeyPair("ES256", { extractable: true });
  const publicJwk = { ...(await exportJWK(pair.publicKey)), kid: "game-1", alg: "ES256" };
  const tickets = new ActionTicketVerifier({ publicKeys: [publicJwk], audience: "scoreboard-actions", maxTtlS: 300, clockToleranceS: 30 });
  const clock = { now: new Date("2026-12-06T12:00:00Z") };
  const now = () => clock.now;
  const verifier = new TokenVerifier(auth);
  const store = new PostgresBoardStore(db);
  const ledger = new PostgresLedger(db);
  let kicks = 0;
  const transport = createRouterTransport((router) => {
    router.service(BoardAdminService, createBoardAdminService({ boards: store, verifier, now }));
    router.service(
      BoardScoreService,
      createBoardScoreService({
        boards: store,
        submissions: new PostgresBoardSubmissions(db),
        verifier,
        apiKeys: ledger,
        tickets,
        audit: (entry) => ledger.audit(entry),
        logger: createLogger("board-test", "silent"),
        requireRegistration: false,
        onSubmitted: () => {
          kicks += 1;
        },
        now,
      }),
    );
  });
  const headers = async (userId: string, options: MintOptions = {}) => ({ headers: { authorization: `Bearer ${await mintToken(auth, userId, options)}` } });
  return {
    db,
    admin: createClient(BoardAdminService, transport),
    boards: createClient(BoardScoreService, transport),
    clock,
    kicks: () => kicks,
    headers,
    adminHeaders: () => headers("ops", { scopes: [Scopes.adminScore] }),
    ticket: (userId, boardId, score, jti) => mintActionTicket(pair.privateKey, { userId, actionId: boardTicketAction(boardId), kid: "game-1", score, jti }),
  };
}
