// The "You" panel beside the board: the player's own rank and score on the
// board shown, how far it moved since the last message, and the neighbours
// around them, from LiveService's standing of the token's user.
import { formatScore, type LeaderboardEntry, type Standing } from "@scoreboard/client";

export class YouPanel {
  private readonly rank: HTMLElement;
  private readonly score: HTMLElement;
  private readonly move: HTMLElement;
  private readonly note: HTMLElement;
  private readonly neighbours: HTMLOListElement;
  /** The rank last shown on this board, to say "up 3" when it changes. */
  private lastRank: bigint | undefined;

  constructor(private readonly root: HTMLElement) {
    const part = <T extends HTMLElement>(testId: string) => root.querySelector<T>(`[data-testid="${testId}"]`)!;
    this.rank = part("you-rank");
    this.score = part("you-score");
    this.move = part("you-move");
    this.note = part("you-note");
    this.neighbours = part<HTMLOListElement>("you-neighbours");
  }

  /** No token, or a board without live standings: the panel goes away. */
  hide(): void {
    this.setVisible(false);
    this.lastRank = undefined;
  }

  /** A (new) board's standing is on its way. */
  waiting(): void {
    this.lastRank = undefined;
    this.showNothing("…", "loading your standing…");
  }

  /** The token was refused (or the stream given up): say why instead of numbers. */
  stopped(why: string): void {
    this.lastRank = undefined;
    this.showNothing("—", why);
  }

  show(standing: Standing): void {
    const { entry } = standing;
    if (!entry) {
      this.lastRank = undefined;
      this.showNothing("—", "No score on this board yet.");
      return;
    }
    this.setVisible(true);
    this.rank.textContent = `#${formatScore(entry.rank)}`;
    this.score.textContent = formatScore(entry.score);
    this.move.textContent = movement(this.lastRank, entry.rank);
    this.move.dataset.direction = this.lastRank === undefined || this.lastRank === entry.rank ? "" : entry.rank < this.lastRank ? "up" : "down";
    this.lastRank = entry.rank;
    this.note.textContent = "";
    this.neighbours.replaceChildren(...standing.neighbourhood.map((neighbour) => neighbourItem(neighbour, neighbour.userId === entry.userId)));
  }

  private showNothing(rank: string, note: string): void {
    this.setVisible(true);
    this.rank.textContent = rank;
    this.score.textContent = "";
    this.move.textContent = "";
    this.note.textContent = note;
    this.neighbours.replaceChildren();
  }

  private setVisible(visible: boolean): void {
    this.root.hidden = !visible;
    // The page widens to hold the panel beside the board (on a wide screen).
    this.root.closest("main")?.classList.toggle("with-you", visible);
  }
}

/** "up 3" / "down 1" since the last standing on this board; nothing at first or when unchanged. */
function movement(before: bigint | undefined, now: bigint): string {
  if (before === undefined || before === now) return "";
  return before > now ? `up ${formatScore(before - now)}` : `down ${formatScore(now - before)}`;
}

function neighbourItem(entry: LeaderboardEntry, isYou: boolean): HTMLLIElement {
  const item = document.createElement("li");
  item.dataset.user = entry.userId;
  item.dataset.testid = "you-neighbour";
  if (isYou) item.className = "me";
  for (const [cls, text] of [
    ["rank", `#${formatScore(entry.rank)}`],
    ["user", isYou ? `${entry.username || entry.userId} (you)` : entry.username || entry.userId],
    ["score", formatScore(entry.score)],
  ] as const) {
    const cell = document.createElement("span");
    cell.className = cls;
    cell.textContent = text;
    item.append(cell);
  }
  return item;
}
