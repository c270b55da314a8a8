import type { BoardEntry, RedisBoards } from "./boards.js";
import type { Drift } from "./reconcile.js";

/**
 * Where PostgreSQL places each of these users relative to one board: true
 * on it, false known but elsewhere (another region), absent unknown.
 */
export type Placement = (userIds: string[]) => Promise<Map<string, boolean>>;

/**
 * Removes from a board what PostgreSQL does not have there, and adds each to
 * `repaired`: members of users it places elsewhere or does not know (of an
 * unknown user, the field in the board's hash goes too), and members other
 * than the one the hash records for the user (left behind by a region move).
 * A board is read a batch at a time; PostgreSQL is asked after Redis, so a
 * member an event added is never taken for one PostgreSQL lacks (events
 * follow commits).
 */
export async function sweepBoard(boards: RedisBoards, board: string, placement: Placement, repaired: Drift[]): Promise<void> {
  const removed = new Set<string>(); // a scan may return an entry twice
  for await (const batch of boards.entries(board)) {
    const userIds = [...new Set(batch.map((e) => e.userId))];
    const [placed, stored] = await Promise.all([placement(userIds), boards.storedOf(board, userIds)]);
    const storedBy = new Map(userIds.map((userId, i) => [userId, stored[i]]));
    const orphans: (BoardEntry & { value?: string })[] = [];
    for (const entry of batch) {
      if (removed.has(entry.member)) continue;
      const onBoard = placed.get(entry.userId);
      const own = storedBy.get(entry.userId);
      if (onBoard === true && (own === undefined || own.member === entry.member)) continue;
      orphans.push({ ...entry, value: onBoard === undefined ? own?.value : undefined });
    }
    if (orphans.length === 0) continue;
    // Only what was still there: an event may have replaced a member meanwhile.
    const gone = new Set(await boards.removeEntries(board, orphans));
    for (const o of orphans.filter((o) => gone.has(o.member))) {
      removed.add(o.member);
      repaired.push({ userId: o.userId, board, redis: o.score, postgres: null });
    }
  }
}
