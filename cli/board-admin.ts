// The work of `scoreboard boards define|update|archive|list|show|seasons|apply`:
// board definitions over score's BoardAdminService (SCORE_URL), seasons over
// ranking's BoardReadService (RANKING_URL), as the gateway reaches them.
// Calls carry SCOREBOARD_TOKEN, or an admin:score token minted for the call
// from JWT_SECRET (the first-party key score and the chart's Job share).
import { Code, ConnectError, createClient, type CallOptions, type Client } from "@connectrpc/connect";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { BoardAdminService, BoardReadService, type BoardDefinition, type Season } from "@scoreboard/gen/scoreboard/v1/boards_pb";
import { Scopes, mintToken } from "@scoreboard/platform/auth";
import { createServiceTransport } from "@scoreboard/platform/clients";
import { EnvReader, defaultPorts, grpcTargetProtocols, readAuth, readCommon } from "@scoreboard/platform/config";
import { readJobWaitMs, waitForDatastore } from "@scoreboard/platform/startup";
import { type BoardSpec, definitionOf, differs, specJson } from "./board-spec.js";
import { CommandFailed, commandLogger, type Outcome } from "./command.js";

type Admin = Client<typeof BoardAdminService>;
type Reads = Client<typeof BoardReadService>;
interface Services {
  admin: Admin;
  reads: Reads;
  /** Every call's options: the token. */
  call: CallOptions;
  /** Waits (up to DATASTORE_WAIT_S) for score to serve BoardAdminService: the chart's Job may start before it. */
  awaitScore(): Promise<void>;
}

const CLI_SUBJECT = "scoreboard-cli";

/** Runs `work` with clients of score and ranking, closing them afterwards. */
export async function withBoardServices(work: (services: Services) => Promise<Outcome>): Promise<Outcome> {
  const env = new EnvReader();
  const scoreUrl = env.url("SCORE_URL", `http://127.0.0.1:${defaultPorts.scoreGrpc}`, grpcTargetProtocols);
  const rankingUrl = env.url("RANKING_URL", `http://127.0.0.1:${defaultPorts.rankingGrpc}`, grpcTargetProtocols);
  const given = env.optional("SCOREBOARD_TOKEN");
  const auth = given ? undefined : readAuth(env, readCommon(env).mode);
  const maxWaitMs = readJobWaitMs(env);
  env.done();
  if (auth && !auth.jwtSecret) throw new CommandFailed("set SCOREBOARD_TOKEN to a token with the admin:score scope (no JWT_SECRET to mint one)");
  const token = given ?? (await mintToken(auth!, CLI_SUBJECT, { scopes: [Scopes.adminScore, Scopes.readLeaderboard], roles: [], expiresIn: "10m" }));
  const call: CallOptions = { headers: { authorization: `Bearer ${token}` } };
  const score = createServiceTransport(scoreUrl, [BoardAdminService], { defaultTimeoutMs: 10_000 });
  const ranking = createServiceTransport(rankingUrl, [BoardReadService], { defaultTimeoutMs: 10_000 });
  try {
    const admin = createClient(BoardAdminService, score.transport);
    const reads = createClient(BoardReadService, ranking.transport);
    const awaitScore = () =>
      waitForDatastore("score (BoardAdminService)", () => admin.listBoards({}, call), commandLogger("boards"), {
        maxWaitMs,
        // Not up yet, or an older score without boards during a rollout.
        retryable: (err) => [Code.Unavailable, Code.Unimplemented, Code.DeadlineExceeded].includes(ConnectError.from(err).code),
      }).then(() => undefined);
    return await work({ admin, reads, call, awaitScore });
  } catch (err) {
    throw err instanceof ConnectError ? new CommandFailed(`${Code[err.code]}: ${err.rawMessage}`) : err;
  } finally {
    score.close();
    ranking.close();
  }
}

export async function defineBoard({ admin, call }: Services, spec: BoardSpec): Promise<Outcome> {
  const { board } = await admin.createBoard({ board: definitionOf(spec) }, call);
  return described("created", board!);
}

/** Reads the board, lays the given fields over it and sends it back at the revision read (or `expectedRevision`). */
export async function updateBoard({ admin, call }: Services, spec: BoardSpec, expectedRevision?: number): Promise<Outcome> {
  const { board: current } = await admin.getBoard({ boardId: spec.boardId }, call);
  const wanted = definitionOf(spec, current);
  const { board } = await admin.updateBoard({ board: wanted, expectedRevision: BigInt(expectedRevision ?? Number(current!.revision)) }, call);
  return described("updated", board!);
}

export async function archiveBoard({ admin, call }: Services, boardId: string): Promise<Outcome> {
  const { board } = await admin.archiveBoard({ boardId }, call);
  return described("archived", board!);
}

export async function showBoard({ admin, call }: Services, boardId: string): Promise<Outcome> {
  const { board, currentSeason } = await admin.getBoard({ boardId }, call);
  const lines = Object.entries(specJson(board!)).map(([k, v]) => `${k.padEnd(18)}${v === null ? "-" : Array.isArray(v) ? v.join(" ") || "-" : v}`);
  if (currentSeason) lines.push(`${"season".padEnd(18)}${seasonLine(currentSeason)}`);
  return { text: lines.join("\n"), json: { board: specJson(board!), season: currentSeason && seasonJson(currentSeason) } };
}

export async function listBoards({ admin, call }: Services, includeArchived: boolean): Promise<Outcome> {
  const { boards } = await admin.listBoards({ includeArchived }, call);
  const rows = boards.map((b) => {
    const s = specJson(b);
    return [s.boardId, s.sortOrder, s.operator, s.resetSchedule, s.builtin ? "builtin" : s.archived ? "archived" : "-", s.title].join("\t");
  });
  return { text: ["BOARD\tORDER\tOPERATOR\tRESET\tSTATE\tTITLE", ...rows].join("\n"), json: boards.map(specJson) };
}

export async function listSeasons({ reads, call }: Services, boardId: string): Promise<Outcome> {
  const { seasons } = await reads.listSeasons({ boardId }, call);
  return { text: seasons.map(seasonLine).join("\n") || `no seasons on ${boardId}`, json: seasons.map(seasonJson) };
}

/**
 * Creates each definition that does not exist and updates each that differs;
 * one that already says the same is left alone, so applying a file twice
 * changes nothing. A builtin board or a refused change is reported and the
 * rest still applied; the exit code is then 1.
 */
export async function applyBoards(services: Services, specs: BoardSpec[]): Promise<Outcome> {
  await services.awaitScore();
  const results: Array<{ boardId: string; result: "created" | "updated" | "unchanged" | "failed"; revision?: number; error?: string }> = [];
  for (const spec of specs) {
    try {
      const current = await existing(services, spec.boardId);
      if (current?.builtin) throw new CommandFailed(`${spec.boardId} is a builtin board: its rules cannot be changed`);
      if (!current) {
        const { board } = await services.admin.createBoard({ board: definitionOf(spec) }, services.call);
        results.push({ boardId: spec.boardId, result: "created", revision: Number(board!.revision) });
        continue;
      }
      const wanted = definitionOf(spec, current);
      if (!differs(current, wanted)) {
        results.push({ boardId: spec.boardId, result: "unchanged", revision: Number(current.revision) });
        continue;
      }
      const { board } = await services.admin.updateBoard({ board: wanted, expectedRevision: current.revision }, services.call);
      results.push({ boardId: spec.boardId, result: "updated", revision: Number(board!.revision) });
    } catch (err) {
      const error = err instanceof ConnectError ? `${Code[err.code]}: ${err.rawMessage}` : err instanceof Error ? err.message : String(err);
      results.push({ boardId: spec.boardId, result: "failed", error });
    }
  }
  const failed = results.filter((r) => r.result === "failed").length;
  const lines = results.map((r) => `${r.result} ${r.boardId}${r.error ? `: ${r.error}` : r.revision ? ` (revision ${r.revision})` : ""}`);
  lines.push(`${specs.length} boards: ${specs.length - failed} applied, ${failed} failed`);
  return { text: lines.join("\n"), json: results, exitCode: failed > 0 ? 1 : 0 };
}

async function existing({ admin, call }: Services, boardId: string): Promise<BoardDefinition | undefined> {
  try {
    return (await admin.getBoard({ boardId }, call)).board;
  } catch (err) {
    if (ConnectError.from(err).code === Code.NotFound) return undefined;
    throw err;
  }
}

function described(verb: string, board: BoardDefinition): Outcome {
  return { text: `${verb} ${board.boardId} (revision ${board.revision})`, json: specJson(board) };
}

const iso = (t: Season["startsAt"]) => (t ? timestampDate(t).toISOString() : null);
const seasonJson = (s: Season) => ({ id: s.id, startsAt: iso(s.startsAt), endsAt: iso(s.endsAt), current: s.current });
const seasonLine = (s: Season) => [s.id, iso(s.startsAt) ?? "-", iso(s.endsAt) ?? "-", s.current ? "current" : ""].join("\t").trimEnd();
