// scoreboard boards: board definitions over score's BoardAdminService
// (define, update, archive, list, show, apply), their seasons over ranking's
// BoardReadService, and the seed boards' pages over ranking's RankingService
// (top, rank), as gateway and push read them.
import { readFileSync } from "node:fs";
import { createClient } from "@connectrpc/connect";
import { RankingService } from "@scoreboard/gen/scoreboard/v1/ranking_pb";
import type { LeaderboardEntry } from "@scoreboard/gen/scoreboard/v1/leaderboard_pb";
import { isValidId } from "@scoreboard/platform/auth";
import { DEFAULT_BOARD, MAX_LIMIT, boardName } from "@scoreboard/platform/board-params";
import { createServiceTransport } from "@scoreboard/platform/clients";
import { EnvReader, defaultPorts, grpcTargetProtocols } from "@scoreboard/platform/config";
import { applyBoards, archiveBoard, defineBoard, listBoards, listSeasons, showBoard, updateBoard, withBoardServices } from "./board-admin.js";
import { type BoardSpec, oneOf, specFromJson } from "./board-spec.js";
import { UsageError, actionOf, expectArgs, integerArg, onlyOptions, type Command, type Outcome } from "./command.js";

const actions = ["define", "update", "archive", "list", "show", "seasons", "apply", "top", "rank"] as const;
type Action = (typeof actions)[number];
const MAX_AROUND = 50;
const MAX_SCORE = Number.MAX_SAFE_INTEGER;

const DEFINITION_FLAGS = `  --title <text>                 shown to players (up to 200 characters)
  --sort desc|asc                highest or lowest first (define only: immutable)
  --operator incr|decr|best|set  how a submission changes an entry (default incr)
  --reset <schedule>             none, daily, weekly, monthly or a cron expression ("0 20 * * SUN")
  --time-zone <IANA zone>        the zone the schedule runs in (default UTC)
  --tie first|subscore           how equal scores are ordered (define only: immutable)
  --min <n>, --max <n>           score bounds ("none" clears one)
  --write-scope <scope>          a scope a token needs to submit; repeat for several
  --requires-ticket              submissions need a signed action ticket (--no-requires-ticket: not)
  --metadata-max-bytes <n>       largest metadata object a submission may carry, 0..4096 (0 refuses metadata)
  --retained-seasons <n>         past seasons kept readable, 0..1000`;

const ACCESS = `Definitions go to score's BoardAdminService at SCORE_URL (default http://127.0.0.1:${defaultPorts.scoreGrpc}),
seasons and pages to ranking at RANKING_URL (default http://127.0.0.1:${defaultPorts.rankingGrpc}). Calls carry
SCOREBOARD_TOKEN, or an admin:score token minted for the call from JWT_SECRET.`;

const usages: Record<Action, string> = {
  define: `usage: scoreboard boards define <board-id> --title <text> [options] [--json]

Creates a board. Its id is 1..64 of a-z, 0-9, "_" and "-".
${DEFINITION_FLAGS}`,
  update: `usage: scoreboard boards update <board-id> [options] [--revision <n>] [--json]

Changes the given fields of a board and keeps the others. Entries and seasons
already recorded are never rewritten. --revision: refuse if the board is no
longer at that revision (default: the revision just read).
${DEFINITION_FLAGS}`,
  archive: `usage: scoreboard boards archive <board-id> [--json]

Stops a board taking submissions and hides it from lists; its seasons stay readable.`,
  list: `usage: scoreboard boards list [--archived] [--json]

Every board definition, the builtin seed boards (global, region, daily, weekly, monthly) included.
  --archived   archived boards too`,
  show: `usage: scoreboard boards show <board-id> [--json]

One board's definition and its current season.`,
  seasons: `usage: scoreboard boards seasons <board-id> [--json]

A board's current season and the retained past ones, newest first (id, start, end).`,
  apply: `usage: scoreboard boards apply <file.json> [--json]

Creates every definition in the file (a JSON array) that does not exist and
updates each that differs; one that already says the same is left alone, so
applying a file twice changes nothing. Fields left out keep the board's value
(a new board takes the defaults). Each element:
  {"boardId": "laps", "title": "Best lap", "sortOrder": "ascending", "operator": "best",
   "resetSchedule": "weekly", "timeZone": "UTC", "tieRule": "first", "minScore": 1, "maxScore": null,
   "writeScopes": [], "requiresTicket": false, "metadataMaxBytes": 256, "retainedSeasons": 8}
Waits up to DATASTORE_WAIT_S (60) for score to answer. Exit 1 if any board failed (the others are applied).`,
  top: `usage: scoreboard boards top [board] [--limit 10] [--offset 0] [--json]

One page of a seed board (global, region:<r>, daily:<date>...), highest first, from ranking's RankingService.`,
  rank: `usage: scoreboard boards rank <user-id> [--board global] [--around 0] [--json]

A user's entry on a seed board, with up to --around (0..${MAX_AROUND}) neighbours above and below.`,
};

const overview = `usage: scoreboard boards <action> [--json]
  define <board-id> --title <text> [options]      create a board (its sort order, operator, reset schedule, ties, bounds...)
  update <board-id> [options]                     change a board's mutable fields; history stays as it was
  archive <board-id>                              stop a board taking submissions (its seasons stay readable)
  list [--archived]                               every board definition, builtin seed boards included
  show <board-id>                                 one definition and its current season
  seasons <board-id>                              the current season and the retained past ones
  apply <file.json>                               create or update every definition in a JSON array (idempotent)
  top [board] [--limit 10] [--offset 0]           one page of a seed board, highest first (board: global by default)
  rank <user-id> [--board global] [--around 0]    a user's entry on a seed board, with up to --around neighbours

\`scoreboard boards <action> --help\` describes one.
${ACCESS}`;

const definitionOptions = [
  "title",
  "sort",
  "operator",
  "reset",
  "time-zone",
  "tie",
  "min",
  "max",
  "write-scope",
  "requires-ticket",
  "no-requires-ticket",
  "metadata-max-bytes",
  "retained-seasons",
];

export const boards: Command = {
  name: "boards",
  summary: "define, change and archive boards; list them, their seasons, a page or a user's rank",
  usage: overview,
  helpFor(positionals) {
    const action = positionals[0] as Action | undefined;
    return action && Object.hasOwn(usages, action) ? `${usages[action]}\n\n${ACCESS}` : overview;
  },
  options: {
    limit: { type: "string" },
    offset: { type: "string" },
    board: { type: "string" },
    around: { type: "string" },
    archived: { type: "boolean" },
    revision: { type: "string" },
    title: { type: "string" },
    sort: { type: "string" },
    operator: { type: "string" },
    reset: { type: "string" },
    "time-zone": { type: "string" },
    tie: { type: "string" },
    min: { type: "string" },
    max: { type: "string" },
    "write-scope": { type: "string", multiple: true },
    "requires-ticket": { type: "boolean" },
    "no-requires-ticket": { type: "boolean" },
    "metadata-max-bytes": { type: "string" },
    "retained-seasons": { type: "string" },
  },
  prepare(values, positionals) {
    const action = actionOf(positionals, actions);
    const str = (name: string) => values[name] as string | undefined;
    switch (action) {
      case "define":
      case "update": {
        onlyOptions(values, action, action === "update" ? [...definitionOptions, "revision"] : definitionOptions);
        const [boardId = ""] = expectArgs(positionals, action, "<board-id>");
        const spec = specFromFlags(values, boardIdArg(boardId), action);
        if (action === "define") {
          if (spec.title === undefined) throw new UsageError("define needs --title");
          return () => withBoardServices((s) => defineBoard(s, spec));
        }
        if (spec.sortOrder !== undefined || spec.tieRule !== undefined) throw new UsageError("--sort and --tie are fixed when a board is defined");
        const revision = str("revision");
        const expected = revision === undefined ? undefined : integerArg(revision, "--revision", 1, MAX_SCORE);
        return () => withBoardServices((s) => updateBoard(s, spec, expected));
      }
      case "archive":
      case "show":
      case "seasons": {
        onlyOptions(values, action, []);
        const [raw = ""] = expectArgs(positionals, action, "<board-id>");
        const boardId = boardIdArg(raw);
        const work = { archive: archiveBoard, show: showBoard, seasons: listSeasons }[action];
        return () => withBoardServices((s) => work(s, boardId));
      }
      case "list": {
        onlyOptions(values, action, ["archived"]);
        expectArgs(positionals, action, "");
        const includeArchived = values.archived === true;
        return () => withBoardServices((s) => listBoards(s, includeArchived));
      }
      case "apply": {
        onlyOptions(values, action, []);
        const [file = ""] = expectArgs(positionals, action, "<file.json>");
        const specs = specsFromFile(file);
        return () => withBoardServices((s) => applyBoards(s, specs));
      }
      case "top": {
        onlyOptions(values, action, ["limit", "offset"]);
        const [board = DEFAULT_BOARD] = expectArgs(positionals, action, "[board]");
        const page = {
          board: validBoard(board),
          limit: integerArg(str("limit") ?? "10", "--limit", 1, MAX_LIMIT),
          offset: integerArg(str("offset") ?? "0", "--offset", 0, 1_000_000_000),
        };
        return () =>
          withRanking(async (ranking) => {
            const { entries } = await ranking.getLeaderboard(page);
            const text = entries.length > 0 ? table(entries) : `no entries on ${page.board} from rank ${page.offset + 1}`;
            return { text, json: { board: page.board, entries: entries.map(entryJson) } };
          });
      }
      case "rank": {
        onlyOptions(values, action, ["board", "around"]);
        const [userId = ""] = expectArgs(positionals, action, "<user-id>");
        if (!isValidId(userId)) throw new UsageError("the user id must be 1..64 characters without control characters");
        const query = { userId, board: validBoard(str("board") ?? DEFAULT_BOARD), around: integerArg(str("around") ?? "0", "--around", 0, MAX_AROUND) };
        return () =>
          withRanking(async (ranking) => {
            const { entry, neighbourhood } = await ranking.getRank(query);
            const shown = neighbourhood.length > 0 ? neighbourhood : entry ? [entry] : [];
            return { text: table(shown), json: { board: query.board, entry: entry && entryJson(entry), neighbourhood: neighbourhood.map(entryJson) } };
          });
      }
    }
  },
};

/** A board id's shape (score decides which ids are free). */
function boardIdArg(boardId: string): string {
  if (!/^[a-z0-9][a-z0-9:_-]{0,63}$/.test(boardId))
    throw new UsageError(`board id "${boardId}": 1..64 of a-z, 0-9, "_" and "-", starting with a letter or digit`);
  return boardId;
}

function specFromFlags(values: Record<string, unknown>, boardId: string, action: string): BoardSpec {
  const str = (name: string) => values[name] as string | undefined;
  const bound = (name: string) => {
    const text = str(name);
    if (text === undefined) return undefined;
    return text === "none" ? null : integerArg(text, `--${name}`, -MAX_SCORE, MAX_SCORE);
  };
  if (values["requires-ticket"] && values["no-requires-ticket"]) throw new UsageError(`${action} takes --requires-ticket or --no-requires-ticket, not both`);
  const sort = oneOf(str("sort"), { desc: 0, asc: 0 }, "--sort");
  const tie = oneOf(str("tie"), { first: 0, subscore: 0 }, "--tie");
  const metadata = str("metadata-max-bytes");
  const retained = str("retained-seasons");
  return {
    boardId,
    title: str("title"),
    sortOrder: sort && ({ desc: "descending", asc: "ascending" } as const)[sort],
    operator: oneOf(str("operator"), { incr: 0, decr: 0, best: 0, set: 0 }, "--operator"),
    resetSchedule: str("reset"),
    timeZone: str("time-zone"),
    tieRule: tie,
    minScore: bound("min"),
    maxScore: bound("max"),
    writeScopes: values["write-scope"] as string[] | undefined,
    requiresTicket: values["requires-ticket"] ? true : values["no-requires-ticket"] ? false : undefined,
    metadataMaxBytes: metadata === undefined ? undefined : integerArg(metadata, "--metadata-max-bytes", 0, 4096),
    retainedSeasons: retained === undefined ? undefined : integerArg(retained, "--retained-seasons", 0, 1000),
  };
}

/** The apply file: read and checked whole before anything is contacted. */
function specsFromFile(file: string): BoardSpec[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(file, "utf8"));
  } catch (err) {
    const reason =
      (err as { code?: string }).code === "ENOENT" ? "no such file" : err instanceof SyntaxError ? `not JSON (${err.message})` : (err as Error).message;
    throw new UsageError(`${file}: ${reason}`);
  }
  if (!Array.isArray(parsed)) throw new UsageError(`${file} must hold a JSON array of board definitions`);
  const specs = parsed.map((value, i) => specFromJson(value, `${file}[${i}]`));
  const ids = specs.map((s) => s.boardId);
  const twice = ids.find((id, i) => ids.indexOf(id) !== i);
  if (twice !== undefined) throw new UsageError(`${file}: board "${twice}" is defined twice`);
  return specs;
}

function validBoard(board: string): string {
  try {
    return boardName(board);
  } catch {
    throw new UsageError(`board "${board}": 1..64 of a-z, 0-9, ':', '_' or '-' (scoreboard boards list names them)`);
  }
}

async function withRanking(work: (ranking: ReturnType<typeof createClient<typeof RankingService>>) => Promise<Outcome>): Promise<Outcome> {
  const env = new EnvReader();
  const target = env.url("RANKING_URL", `http://127.0.0.1:${defaultPorts.rankingGrpc}`, grpcTargetProtocols);
  env.done();
  const { transport, close } = createServiceTransport(target, [RankingService], { defaultTimeoutMs: 5_000 });
  try {
    return await work(createClient(RankingService, transport));
  } finally {
    close();
  }
}

const entryJson = (e: LeaderboardEntry) => ({ rank: Number(e.rank), userId: e.userId, username: e.username, score: Number(e.score) });

function table(entries: LeaderboardEntry[]): string {
  return ["RANK\tSCORE\tUSER\tNAME", ...entries.map((e) => [e.rank, e.score, e.userId, e.username].join("\t"))].join("\n");
}
