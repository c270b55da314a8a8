// The demo page's client, through @scoreboard/client (the package a page of
// one's own installs): a board picker with the seed boards (a live top 10
// from PushService.WatchLeaderboard) and, once a token is entered, the
// defined boards (BoardAdminService.ListBoards needs read:leaderboard), each
// with a season picker (BoardReadService.ListSeasons); and a form that
// submits actions through the same gateway. Once a token is entered ("List
// boards"), the "You" panel shows the token's player on the board shown: a
// seed board's top 10 and the player's standing come on one LiveService.Watch
// stream, a defined board's current season has WatchStanding beside its pages.
import { Code, ConnectError } from "@connectrpc/connect";
import {
  createScoreboardClient,
  standingSubscription,
  topSubscription,
  type BoardDefinition,
  type BoardState,
  type LeaderboardEntry,
  type Season,
  type StreamPosition,
} from "@scoreboard/client";
import { seasonLabel, showSeason, type SeasonView } from "./season-standings.js";
import { StandingsTable } from "./standings.js";
import { YouPanel } from "./you-panel.js";

const client = createScoreboardClient({ baseUrl: location.origin });
const find = <T extends HTMLElement>(selector: string) => document.querySelector<T>(selector)!;

const title = find<HTMLHeadingElement>("#title");
const status = find<HTMLSpanElement>("#status");
const boardSelect = find<HTMLSelectElement>("#board");
const seasonField = find<HTMLDivElement>("#season-field");
const seasonSelect = find<HTMLSelectElement>("#season");
const more = find<HTMLButtonElement>("#more");
const tokenInput = find<HTMLInputElement>("#token");
const boardsNote = find<HTMLDivElement>("#boards-note");
const table = new StandingsTable(find("#rows"), find("#empty"));
const you = new YouPanel(find("#you"));

const SEED_EMPTY = "No scores yet. Submit an action to get on the board.";
const SEASON_EMPTY = "No entries in this season.";

/** The token the reader entered, without a "Bearer " they may have pasted with it. */
const enteredToken = () => tokenInput.value.trim().replace(/^Bearer\s+/i, "");
/** The token boards were listed with: reads of defined boards carry it too. */
let listedWith = "";
const readHeaders = (): Record<string, string> => (listedWith ? { authorization: `Bearer ${listedWith}` } : {});

/** The token whose player the "You" panel shows ("List boards" sets it; cleared when the gateway refuses it). */
let youToken = "";
/** A stream keeps the token it was opened with, across its reconnects. */
const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
/** Refusals of a token: the panel says so and the board goes on without it. */
const TOKEN_REFUSED = new Set([Code.Unauthenticated, Code.PermissionDenied]);
/** Neighbours above and below the player in the panel. */
const AROUND = 2;

let definedBoards = new Map<string, BoardDefinition>();
let seasons = new Map<string, Season>();
/** Aborted whenever another board or season is picked: its stream or its refreshes stop. */
let showing = new AbortController();
function nextShowing(): AbortSignal {
  showing.abort();
  showing = new AbortController();
  return showing.signal;
}

function setStatus(state: string, text: string): void {
  status.dataset.state = state;
  status.textContent = text;
}

const seasonView: SeasonView = { client, table, more, status: setStatus, headers: readHeaders };

function showLiveState(state: BoardState): void {
  // Between retries keep saying "reconnecting…" (and why) until a message arrives.
  if (state.kind === "connecting" && state.attempt > 0) return;
  setStatus(state.kind, state.kind === "live" ? "live" : state.kind === "retrying" ? `reconnecting… (${state.error.rawMessage})` : "connecting…");
}

function showSeedBoard(board: string, label: string): void {
  const signal = nextShowing();
  title.textContent = board === "global" ? "Top 10" : `Top 10 · ${label}`;
  seasonField.hidden = true;
  more.hidden = true;
  table.clear(SEED_EMPTY);
  seedTopPosition = undefined;
  seedStream = undefined;
  streamSeedBoard(board, signal);
}

/** The stream now showing the seed board, and the position of the top on screen (a new stream resumes from it). */
let seedStream: AbortController | undefined;
let seedTopPosition: StreamPosition | undefined;

/**
 * Streams a seed board's top 10: with a token on one LiveService.Watch stream
 * together with the player's standing, without one by watchBoard. A stream
 * replacing another (a token was entered) takes over once it is live, so the
 * board never blanks, and resumes the top from the position on screen: a top
 * still current is not sent again.
 */
function streamSeedBoard(board: string, showingSignal: AbortSignal): void {
  const previous = seedStream;
  const stream = new AbortController();
  seedStream = stream;
  showingSignal.addEventListener("abort", () => stream.abort(), { once: true });
  const token = youToken;
  let live = false;
  const onState = (state: BoardState) => {
    if (state.kind === "live" && !live) {
      live = true;
      previous?.abort();
    }
    // Until it is live, the stream it replaces speaks for the page.
    if (live || !previous) showLiveState(state);
  };
  const showTop = (entries: LeaderboardEntry[], position: StreamPosition | undefined) => {
    seedTopPosition = position?.epoch ? position : undefined;
    table.render(entries);
  };
  if (token) you.waiting();
  else you.hide();
  const watching = token
    ? client.watchLive(
        [{ ...topSubscription(board, 10), resume: seedTopPosition }, standingSubscription(board, AROUND)],
        {
          onState,
          onUpdate: (update) => {
            if (update.state.case === "top") showTop(update.state.value.entries, update.position);
            else if (update.state.case === "standing") you.show(update.state.value);
          },
        },
        { signal: stream.signal, headers: bearer(token) },
      )
    : client.watchBoard({
        board,
        limit: 10,
        resume: seedTopPosition,
        signal: stream.signal,
        onState,
        onBoard: (update) => showTop(update.entries, update.position),
      });
  watching.catch((err: unknown) => {
    if (stream.signal.aborted) return;
    previous?.abort();
    const error = ConnectError.from(err);
    if (token && TOKEN_REFUSED.has(error.code)) {
      // The board goes on without the player.
      youToken = "";
      streamSeedBoard(board, showingSignal);
      you.stopped(`Token refused: ${error.rawMessage}`);
      return;
    }
    setStatus("failed", error.rawMessage);
  });
}

/** The stream of the player's standing beside a defined board's current season. */
let youStream: AbortController | undefined;

/** Follows the player's standing on a defined board (a stream of its own beside the season's pages) until `showingSignal` aborts. */
function followYouOn(board: string, showingSignal: AbortSignal): void {
  youStream?.abort();
  if (!youToken) {
    you.hide();
    return;
  }
  const stream = new AbortController();
  youStream = stream;
  showingSignal.addEventListener("abort", () => stream.abort(), { once: true });
  you.waiting();
  client
    .watchStanding({ board, around: AROUND, signal: stream.signal, headers: bearer(youToken), onStanding: (standing) => you.show(standing) })
    .catch((err: unknown) => {
      if (stream.signal.aborted) return;
      const error = ConnectError.from(err);
      if (TOKEN_REFUSED.has(error.code)) youToken = "";
      you.stopped(TOKEN_REFUSED.has(error.code) ? `Token refused: ${error.rawMessage}` : `No live standing here: ${error.rawMessage}`);
    });
}

async function showDefinedBoard(board: BoardDefinition): Promise<void> {
  const signal = nextShowing();
  title.textContent = board.title || board.boardId;
  more.hidden = true;
  table.clear(SEASON_EMPTY);
  you.hide();
  setStatus("connecting", "loading seasons…");
  try {
    const answer = await client.boardRead.listSeasons({ boardId: board.boardId }, { headers: readHeaders(), signal });
    if (signal.aborted) return;
    // Current first, then past seasons newest first (ListSeasons' order).
    seasons = new Map(answer.seasons.map((season) => [season.id, season]));
    seasonSelect.replaceChildren(...answer.seasons.map((season) => new Option(seasonLabel(season), season.id)));
    seasonField.hidden = false;
    showChosenSeason();
  } catch (err) {
    if (!signal.aborted) setStatus("failed", ConnectError.from(err).rawMessage);
  }
}

function showChosenSeason(): void {
  const season = seasons.get(seasonSelect.value);
  if (!season) return;
  const signal = nextShowing();
  table.clear(SEASON_EMPTY);
  more.hidden = true;
  // A past season is final: the panel follows only the current one.
  if (season.current) followYouOn(boardSelect.value, signal);
  else you.hide();
  void showSeason(seasonView, boardSelect.value, season, signal);
}

function showChosenBoard(): void {
  const defined = definedBoards.get(boardSelect.value);
  if (defined) void showDefinedBoard(defined);
  else showSeedBoard(boardSelect.value, boardSelect.selectedOptions[0]?.text ?? boardSelect.value);
}

/** A token was entered: the "You" panel follows its player on the board shown, from now on on every board picked. */
function useTokenForYou(): void {
  const token = enteredToken();
  if (!token || token === youToken) return;
  youToken = token;
  const defined = definedBoards.get(boardSelect.value);
  if (!defined) streamSeedBoard(boardSelect.value, showing.signal);
  else if (seasons.get(seasonSelect.value)?.current) followYouOn(defined.boardId, showing.signal);
}

/** Adds the token's defined boards (builtin ones are the seed boards already listed) to the board picker. */
async function listDefinedBoards(): Promise<void> {
  const token = enteredToken();
  if (!token) {
    boardsNote.textContent = "Enter a token first.";
    return;
  }
  boardsNote.textContent = "Listing boards…";
  try {
    const { boards } = await client.boardAdmin.listBoards({}, { headers: { authorization: `Bearer ${token}` } });
    listedWith = token;
    const defined = boards.filter((board) => !board.builtin);
    definedBoards = new Map(defined.map((board) => [board.boardId, board]));
    const chosen = boardSelect.value;
    boardSelect.querySelector("#defined-boards")?.remove();
    if (defined.length > 0) {
      const group = document.createElement("optgroup");
      group.id = "defined-boards";
      group.label = "Defined boards";
      group.append(...defined.map((board) => new Option(board.title ? `${board.title} (${board.boardId})` : board.boardId, board.boardId)));
      boardSelect.append(group);
    }
    // A board no longer listed (archived, or another token's) gives way to the global board.
    const stillListed = [...boardSelect.options].some((option) => option.value === chosen);
    boardSelect.value = stillListed ? chosen : "global";
    if (!stillListed) showChosenBoard();
    boardsNote.textContent = defined.length === 1 ? "1 defined board listed." : `${defined.length} defined boards listed.`;
  } catch (err) {
    boardsNote.textContent = ConnectError.from(err).rawMessage;
  }
}

boardSelect.addEventListener("change", showChosenBoard);
seasonSelect.addEventListener("change", showChosenSeason);
find<HTMLFormElement>("#sign-in").addEventListener("submit", (event) => {
  event.preventDefault();
  useTokenForYou();
  void listDefinedBoards();
});

find<HTMLFormElement>("#submit").addEventListener("submit", async (event) => {
  event.preventDefault();
  const actionId = find<HTMLInputElement>("#action").value.trim();
  const result = find<HTMLDivElement>("#result");
  const token = enteredToken();
  if (!token) {
    result.textContent = "Enter a token above first.";
    return;
  }
  try {
    const granted = await client.score.submitAction({ actionId }, { headers: { authorization: `Bearer ${token}` } });
    result.textContent = `+${granted.points} → ${granted.newScore}`;
  } catch (err) {
    result.textContent = ConnectError.from(err).rawMessage;
  }
});

showChosenBoard();
