// One season of a defined board on the page: BoardReadService.GetBoardPage
// page by page ("More" follows the cursor), and for the current season the
// rows on screen read again whenever PushService.WatchLeaderboard on the
// board's id says its top changed, or every few seconds from a gateway that
// streams only the seed boards.
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type CallOptions } from "@connectrpc/connect";
import type { BoardEntry, ScoreboardClient, Season } from "@scoreboard/client";
import type { StandingsTable } from "./standings.js";

const PAGE_SIZE = 10;
// The one season of a board that never resets (boards.proto).
const ALL_TIME_SEASON_ID = "all";
// GetBoardPage's largest page (boards.proto): a re-read of many rows takes several.
const MAX_PAGE = 100;
export const REFRESH_MS = 5_000;

export interface SeasonView {
  client: ScoreboardClient;
  table: StandingsTable;
  more: HTMLButtonElement;
  status(state: "connecting" | "live" | "polling" | "final" | "retrying" | "failed", text: string): void;
  /** The reader's token, when one was entered (reads may require read:leaderboard). */
  headers(): Record<string, string>;
}

/** "Current · from Nov 30, 2026" (with the time, in UTC, unless midnight UTC), or "All time" for a board that never resets. */
export function seasonLabel(season: Season): string {
  if (season.id === ALL_TIME_SEASON_ID || !season.startsAt) return "All time";
  const start = timestampDate(season.startsAt);
  const atMidnight = start.getUTCHours() === 0 && start.getUTCMinutes() === 0;
  const from = atMidnight
    ? start.toLocaleDateString(undefined, { dateStyle: "medium", timeZone: "UTC" })
    : `${start.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short", timeZone: "UTC" })} UTC`;
  return `${season.current ? "Current" : "Past"} · from ${from}`;
}

/** Shows `season` of `boardId` until `signal` aborts (another board or season was picked). */
export async function showSeason(view: SeasonView, boardId: string, season: Season, signal: AbortSignal): Promise<void> {
  let shown: BoardEntry[] = [];
  let cursor = "";
  const call = (): CallOptions => ({ headers: view.headers(), signal });
  const page = (limit: number, from: string) => view.client.boardRead.getBoardPage({ boardId, season: season.id, limit, cursor: from }, call());
  const show = (entries: BoardEntry[], next: string) => {
    shown = entries;
    cursor = next;
    view.table.render(entries);
    view.more.hidden = !next;
  };
  /** The top `count` rows (at least a page) read again, so a refresh keeps what "More" added. */
  const readTop = async (count: number) => {
    const entries: BoardEntry[] = [];
    let next = "";
    do {
      const answer = await page(Math.min(MAX_PAGE, Math.max(PAGE_SIZE, count - entries.length)), next);
      entries.push(...answer.entries);
      next = answer.nextCursor;
    } while (next && entries.length < count);
    return { entries, next };
  };

  view.more.onclick = async () => {
    view.more.disabled = true;
    try {
      const answer = await page(PAGE_SIZE, cursor);
      if (!signal.aborted) show([...shown, ...answer.entries], answer.nextCursor);
    } catch (err) {
      if (!signal.aborted) view.status("failed", ConnectError.from(err).rawMessage);
    } finally {
      view.more.disabled = false;
    }
  };

  view.status("connecting", "loading…");
  try {
    const first = await readTop(PAGE_SIZE);
    if (signal.aborted) return;
    show(first.entries, first.next);
    if (!season.current) view.status("final", "final standings");
  } catch (err) {
    if (!signal.aborted) view.status("failed", ConnectError.from(err).rawMessage);
    return;
  }
  // A past season is final; the current one changes until it ends.
  if (!season.current) return;
  const refresh = async () => {
    try {
      for (;;) {
        const before = shown;
        const again = await readTop(before.length);
        if (signal.aborted) return true;
        // "More" added rows during the read: read again with them, or they would vanish.
        if (shown !== before) continue;
        show(again.entries, again.next);
        return true;
      }
    } catch (err) {
      if (!signal.aborted) view.status("retrying", `retrying… (${ConnectError.from(err).rawMessage})`);
      return false;
    }
  };
  try {
    await followLive(view, boardId, signal, refresh);
  } catch (err) {
    if (signal.aborted) return;
    if (!STREAM_UNSUPPORTED.has(ConnectError.from(err).code)) {
      view.status("failed", ConnectError.from(err).rawMessage);
      return;
    }
    // This gateway streams only the seed boards: read the rows again every few seconds instead.
    view.status("polling", `refreshed every ${REFRESH_MS / 1000} s`);
    while (!signal.aborted) {
      await sleep(REFRESH_MS, signal);
      if (!signal.aborted && !document.hidden && (await refresh())) view.status("polling", `refreshed every ${REFRESH_MS / 1000} s`);
    }
  }
}

/** What a gateway that streams no defined boards answers WatchLeaderboard for one. */
const STREAM_UNSUPPORTED = new Set([Code.NotFound, Code.InvalidArgument]);

/**
 * Follows the current season through WatchLeaderboard on the board's id (its
 * top 100): each update reads the rows on screen again, so the cursor and the
 * rows "More" added stay right; an update arriving during a read is read
 * after it. Resolves when `signal` aborts.
 */
async function followLive(view: SeasonView, boardId: string, signal: AbortSignal, refresh: () => Promise<boolean>): Promise<void> {
  let reading = false;
  let pending = false;
  // The first update is read too: the season may have moved since the first page.
  const changed = async () => {
    if (reading) {
      pending = true;
      return;
    }
    reading = true;
    do {
      pending = false;
      if ((await refresh()) && !signal.aborted) view.status("live", "live");
    } while (pending && !signal.aborted);
    reading = false;
  };
  await view.client.watchBoard({
    board: boardId,
    limit: MAX_PAGE,
    signal,
    onBoard: () => void changed(),
    onState: (state) => {
      if (state.kind === "live") view.status("live", "live");
      else if (state.kind === "retrying") view.status("retrying", `reconnecting… (${state.error.rawMessage})`);
    },
  });
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
    function done() {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    }
  });
}
