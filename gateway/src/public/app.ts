// The demo page's client: a live top 10 through @scoreboard/client (the
// package a page of one's own installs) and a form that submits actions
// through the same gateway.
import { ConnectError } from "@connectrpc/connect";
import { createScoreboardClient, formatScore, type BoardState, type LeaderboardEntry } from "@scoreboard/client";

const client = createScoreboardClient({ baseUrl: location.origin });

const rows = document.querySelector<HTMLTableSectionElement>("#rows")!;
const empty = document.querySelector<HTMLDivElement>("#empty")!;
const status = document.querySelector<HTMLSpanElement>("#status")!;
let previous = new Map<string, bigint>();

function showState(state: BoardState): void {
  // Between retries keep saying "reconnecting…" (and why) until a message arrives.
  if (state.kind === "connecting" && state.attempt > 0) return;
  status.dataset.state = state.kind;
  status.textContent = state.kind === "live" ? "live" : state.kind === "retrying" ? `reconnecting… (${state.error.rawMessage})` : "connecting…";
}

function render(entries: LeaderboardEntry[]): void {
  const next = new Map<string, bigint>();
  const fragment = document.createDocumentFragment();
  for (const entry of entries) {
    next.set(entry.userId, entry.score);
    const row = document.createElement("tr");
    row.dataset.user = entry.userId;
    if (previous.get(entry.userId) !== entry.score) row.className = "changed";
    for (const [cls, text] of [
      ["rank", String(entry.rank)],
      ["user", entry.username || entry.userId],
      ["score", formatScore(entry.score)],
    ] as const) {
      const cell = document.createElement("td");
      cell.className = cls;
      cell.textContent = text;
      row.append(cell);
    }
    fragment.append(row);
  }
  rows.replaceChildren(fragment);
  empty.hidden = entries.length > 0;
  previous = next;
}

document.querySelector<HTMLFormElement>("#submit")!.addEventListener("submit", async (event) => {
  event.preventDefault();
  const token = document
    .querySelector<HTMLInputElement>("#token")!
    .value.trim()
    .replace(/^Bearer\s+/i, "");
  const actionId = document.querySelector<HTMLInputElement>("#action")!.value.trim();
  const result = document.querySelector<HTMLDivElement>("#result")!;
  try {
    const granted = await client.score.submitAction({ actionId }, { headers: { authorization: `Bearer ${token}` } });
    result.textContent = `+${granted.points} → ${granted.newScore}`;
  } catch (err) {
    result.textContent = ConnectError.from(err).rawMessage;
  }
});

client.watchBoard({ board: "global", limit: 10, onBoard: (update) => render(update.entries), onState: showState }).catch((err: unknown) => {
  status.dataset.state = "failed";
  status.textContent = ConnectError.from(err).rawMessage;
});
