// The standings table, shared by the live seed boards and the defined boards'
// seasons: rows keyed by user, a row flashes when its score changed since the
// table was last drawn for the same board.
import { formatScore } from "@scoreboard/client";

/** What a row shows: a seed board's LeaderboardEntry and a defined board's BoardEntry both fit. */
export interface StandingsRow {
  rank: bigint;
  userId: string;
  username: string;
  score: bigint;
}

export class StandingsTable {
  private previous = new Map<string, bigint>();

  constructor(
    private readonly rows: HTMLTableSectionElement,
    private readonly empty: HTMLElement,
  ) {}

  /** Another board or season: nothing on screen is "changed" relative to it. */
  clear(emptyText: string): void {
    this.previous = new Map();
    this.rows.replaceChildren();
    this.empty.textContent = emptyText;
    this.empty.hidden = true;
  }

  render(entries: readonly StandingsRow[]): void {
    const next = new Map<string, bigint>();
    const fragment = document.createDocumentFragment();
    for (const entry of entries) {
      next.set(entry.userId, entry.score);
      const row = document.createElement("tr");
      row.dataset.user = entry.userId;
      if (this.previous.get(entry.userId) !== entry.score) row.className = "changed";
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
    this.rows.replaceChildren(fragment);
    this.empty.hidden = entries.length > 0;
    this.previous = next;
  }
}
