// The demo page's client: a Connect-Web stream of the top 10 and a form that
// submits actions through the same gateway.
import { ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-web";
import type { LeaderboardEntry } from "@scoreboard/gen/scoreboard/v1/leaderboard_pb";
import { PushService } from "@scoreboard/gen/scoreboard/v1/push_pb";
import { ScoreService } from "@scoreboard/gen/scoreboard/v1/score_pb";

const transport = createConnectTransport({ baseUrl: location.origin });
const push = createClient(PushService, transport);
const score = createClient(ScoreService, transport);

const rows = document.querySelector<HTMLTableSectionElement>("#rows")!;
const empty = document.querySelector<HTMLDivElement>("#empty")!;
const status = document.querySelector<HTMLSpanElement>("#status")!;
let previous = new Map<string, bigint>();

function setStatus(state: "connecting" | "live" | "reconnecting", text: string): void {
  status.dataset.state = state;
  status.textContent = text;
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
      ["score", entry.score.toLocaleString()],
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

async function watch(): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    try {
      for await (const update of push.watchLeaderboard({ board: "global", limit: 10 })) {
        attempt = 0;
        setStatus("live", "live");
        if (!update.heartbeat) render(update.entries);
      }
    } catch (err) {
      setStatus("reconnecting", `reconnecting… (${ConnectError.from(err).rawMessage})`);
    }
    await new Promise((r) => setTimeout(r, Math.min(500 * 2 ** attempt, 10_000)));
  }
}

document.querySelector<HTMLFormElement>("#submit")!.addEventListener("submit", async (event) => {
  event.preventDefault();
  const token = document.querySelector<HTMLInputElement>("#token")!.value.trim().replace(/^Bearer\s+/i, "");
  const actionId = document.querySelector<HTMLInputElement>("#action")!.value.trim();
  const result = document.querySelector<HTMLDivElement>("#result")!;
  try {
    const granted = await score.submitAction({ actionId }, { headers: { authorization: `Bearer ${token}` } });
    result.textContent = `+${granted.points} → ${granted.newScore}`;
  } catch (err) {
    result.textContent = ConnectError.from(err).rawMessage;
  }
});

void watch();
