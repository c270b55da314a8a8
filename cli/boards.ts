// scoreboard boards: the boards ranking serves, read over its public RPC
// (RankingService), as gateway and push read them. There is no board admin
// yet: boards are named by rule (global, region:<r>, daily/weekly/monthly).
import { createClient } from "@connectrpc/connect";
import { RankingService } from "@scoreboard/gen/scoreboard/v1/ranking_pb";
import type { LeaderboardEntry } from "@scoreboard/gen/scoreboard/v1/leaderboard_pb";
import { isValidId } from "@scoreboard/platform/auth";
import { DEFAULT_BOARD, MAX_LIMIT, boardName } from "@scoreboard/platform/board-params";
import { createServiceTransport } from "@scoreboard/platform/clients";
import { EnvReader, defaultPorts, grpcTargetProtocols } from "@scoreboard/platform/config";
import { PERIOD_KINDS, periodAt, readPeriodRetention } from "@scoreboard/platform/periods";
import { UsageError, actionOf, expectArgs, integerArg, onlyOptions, type Command, type Outcome } from "./command.js";

const actions = ["list", "top", "rank"] as const;
const MAX_AROUND = 50;
const DAY_MS = 86_400_000;

export const boards: Command = {
  name: "boards",
  summary: "the boards ranking serves; a board's top N or one user's rank",
  usage: `usage: scoreboard boards <action> [--json]
  list                                            the boards by name: global, region:<r> for each of REGIONS, and
                                                  the current daily, weekly and monthly periods (earlier ones stay
                                                  readable for *_BOARD_RETENTION_DAYS)
  top [board] [--limit 10] [--offset 0]           one page of a board, highest first (board: global by default)
  rank <user-id> [--board global] [--around 0]    a user's entry, with up to --around (0..${MAX_AROUND}) neighbours above and below

top and rank ask ranking over gRPC at RANKING_URL (default http://127.0.0.1:${defaultPorts.rankingGrpc},
ranking's own pod); list asks nothing.`,
  options: { limit: { type: "string" }, offset: { type: "string" }, board: { type: "string" }, around: { type: "string" } },
  prepare(values, positionals) {
    const action = actionOf(positionals, actions);
    const str = (name: string) => values[name] as string | undefined;
    if (action === "list") {
      onlyOptions(values, action, []);
      expectArgs(positionals, action, "");
      return async () => list();
    }
    if (action === "top") {
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
  },
};

function validBoard(board: string): string {
  try {
    return boardName(board);
  } catch {
    throw new UsageError(`board "${board}": 1..64 of a-z, 0-9, ':', '_' or '-' (scoreboard boards list names them)`);
  }
}

function list(): Outcome {
  const env = new EnvReader();
  const regions = (env.optional("REGIONS") ?? "")
    .split(",")
    .map((r) => r.trim())
    .filter(Boolean);
  const retention = readPeriodRetention(env);
  env.done();
  const now = Date.now();
  const rows = [
    { board: DEFAULT_BOARD, now: DEFAULT_BOARD, keptDays: null as number | null },
    ...regions.map((r) => ({ board: `region:${r}`, now: `region:${r}`, keptDays: null as number | null })),
    ...PERIOD_KINDS.map((kind) => ({ board: kind, now: periodAt(kind, now).board, keptDays: Math.round(retention[kind] / DAY_MS) })),
  ];
  const text = rows.map((r) =>
    [r.board, r.now === r.board ? "" : `now ${r.now}`, r.keptDays === null ? "" : `kept ${r.keptDays} days after it ends`].filter(Boolean).join("\t"),
  );
  return { text: text.join("\n"), json: rows };
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
