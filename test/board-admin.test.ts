// Board definitions over BoardAdminService on a real PostgreSQL, and the
// events the outbox relay publishes for submissions.
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { fromBinary } from "@bufbuild/protobuf";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import pino from "pino";
import { Code } from "@connectrpc/connect";
import { ScoreOperator, SortOrder, TieRule } from "@scoreboard/gen/scoreboard/v1/boards_pb";
import { ScoreChangedSchema } from "@scoreboard/gen/scoreboard/v1/events_pb";
import { Scopes } from "@scoreboard/platform/auth";
import type { EventPublisher, OutboxEvent } from "../services/score/src/events.js";
import { PostgresLedger } from "../services/score/src/ledger.js";
import { OutboxRelay } from "../services/score/src/outbox.js";
import { startBoardServices, type BoardServices } from "./harness/board-services.js";
import { codeOf } from "./harness/rpc-errors.js";

let t: BoardServices;
beforeAll(async () => {
  t = await startBoardServices(inject("infra").databaseUrl);
});
afterAll(async () => {
  await t?.db.destroy();
});

const lapTimes = {
  boardId: "laps",
  title: "Best lap",
  sortOrder: SortOrder.ASCENDING,
  operator: ScoreOperator.BEST,
  resetSchedule: "0 20 * * SUN",
  timeZone: "Europe/Paris",
  tieRule: TieRule.SUBSCORE,
  minScore: 1n,
  maxScore: 600_000n,
  writeScopes: ["write:race"],
  metadataMaxBytes: 256,
  retainedSeasons: 4,
};

describe("BoardAdminService", () => {
  it("creates, reads, lists, updates and archives a board", async () => {
    t.clock.now = new Date("2026-12-06T12:00:00Z");
    const created = (await t.admin.createBoard({ board: lapTimes }, await t.adminHeaders())).board!;
    expect(created).toMatchObject({ ...lapTimes, builtin: false, archived: false, revision: 1n });
    expect(timestampDate(created.createdAt!)).toEqual(t.clock.now);

    // Sundays 20:00 in Paris are 19:00 UTC in winter.
    const got = await t.admin.getBoard({ boardId: "laps" }, await t.headers("reader", { scopes: [Scopes.readLeaderboard] }));
    expect(got.currentSeason?.id).toBe("20261129T1900Z");
    expect(timestampDate(got.currentSeason!.endsAt!)).toEqual(new Date("2026-12-06T19:00:00Z"));
    expect(got.currentSeason?.current).toBe(true);

    const updated = (await t.admin.updateBoard({ board: { ...lapTimes, title: "Fastest lap" }, expectedRevision: 1n }, await t.adminHeaders())).board!;
    expect([updated.title, updated.revision]).toEqual(["Fastest lap", 2n]);
    // An update that leaves sort order and tie rule unspecified keeps them.
    const kept = (await t.admin.updateBoard({ board: { ...lapTimes, sortOrder: SortOrder.UNSPECIFIED, tieRule: TieRule.UNSPECIFIED } }, await t.adminHeaders()))
      .board!;
    expect([kept.sortOrder, kept.tieRule, kept.revision]).toEqual([SortOrder.ASCENDING, TieRule.SUBSCORE, 3n]);

    const archived = (await t.admin.archiveBoard({ boardId: "laps" }, await t.adminHeaders())).board!;
    expect([archived.archived, archived.revision]).toEqual([true, 4n]);
    expect((await t.admin.archiveBoard({ boardId: "laps" }, await t.adminHeaders())).board?.revision).toBe(4n);
    const listed = async (includeArchived: boolean) =>
      (await t.admin.listBoards({ includeArchived }, await t.adminHeaders())).boards.map((b) => [b.boardId, b.builtin]);
    expect(await listed(false)).toEqual([
      ["daily", true],
      ["global", true],
      ["monthly", true],
      ["region", true],
      ["weekly", true],
    ]);
    expect(await listed(true)).toContainEqual(["laps", false]);
  });

  it("refuses what a definition may not be or become", async () => {
    const admin = await t.adminHeaders();
    const base = { boardId: "rules", title: "Rules" };
    expect(await codeOf(t.admin.createBoard({ board: { ...base, boardId: "Bad Id" } }, admin))).toBe(Code.InvalidArgument);
    expect(await codeOf(t.admin.createBoard({ board: { ...base, title: "x".repeat(201) } }, admin))).toBe(Code.InvalidArgument);
    expect(await codeOf(t.admin.createBoard({ board: { ...base, resetSchedule: "hourly" } }, admin))).toBe(Code.InvalidArgument);
    expect(await codeOf(t.admin.createBoard({ board: { ...base, resetSchedule: "daily", timeZone: "Mars/Olympus" } }, admin))).toBe(Code.InvalidArgument);
    expect(await codeOf(t.admin.createBoard({ board: { ...base, minScore: 5n, maxScore: 4n } }, admin))).toBe(Code.InvalidArgument);
    expect(await codeOf(t.admin.createBoard({ board: { ...base, maxScore: 2n ** 53n } }, admin))).toBe(Code.InvalidArgument);
    expect(await codeOf(t.admin.createBoard({ board: { ...base, metadataMaxBytes: 4097 } }, admin))).toBe(Code.InvalidArgument);
    expect(await codeOf(t.admin.createBoard({ board: { ...base, retainedSeasons: 1001 } }, admin))).toBe(Code.InvalidArgument);
    expect(await codeOf(t.admin.createBoard({ board: { ...base, writeScopes: ["has space"] } }, admin))).toBe(Code.InvalidArgument);
    expect(await codeOf(t.admin.createBoard({ board: { ...base, operator: 9 as ScoreOperator } }, admin))).toBe(Code.InvalidArgument);
    expect(await codeOf(t.admin.createBoard({ board: { ...base, boardId: "global" } }, admin))).toBe(Code.AlreadyExists);

    await t.admin.createBoard({ board: base }, admin);
    expect(await codeOf(t.admin.createBoard({ board: base }, admin))).toBe(Code.AlreadyExists);
    expect(await codeOf(t.admin.updateBoard({ board: base, expectedRevision: 7n }, admin))).toBe(Code.Aborted);
    expect(await codeOf(t.admin.updateBoard({ board: { ...base, sortOrder: SortOrder.ASCENDING } }, admin))).toBe(Code.FailedPrecondition);
    expect(await codeOf(t.admin.updateBoard({ board: { ...base, tieRule: TieRule.SUBSCORE } }, admin))).toBe(Code.FailedPrecondition);
    expect(await codeOf(t.admin.updateBoard({ board: { boardId: "global", title: "Mine" } }, admin))).toBe(Code.FailedPrecondition);
    expect(await codeOf(t.admin.archiveBoard({ boardId: "weekly" }, admin))).toBe(Code.FailedPrecondition);
    expect(await codeOf(t.admin.updateBoard({ board: { boardId: "nope", title: "" } }, admin))).toBe(Code.NotFound);
    expect(await codeOf(t.admin.getBoard({ boardId: "nope" }, admin))).toBe(Code.NotFound);
  });

  it("needs admin:score to change boards; read:leaderboard reads them", async () => {
    const player = await t.headers("pat", { scopes: [Scopes.updateScore, Scopes.readLeaderboard] });
    expect(await codeOf(t.admin.createBoard({ board: { boardId: "mine", title: "" } }, player))).toBe(Code.PermissionDenied);
    expect(await codeOf(t.admin.archiveBoard({ boardId: "rules" }, player))).toBe(Code.PermissionDenied);
    expect((await t.admin.listBoards({}, player)).boards.length).toBeGreaterThan(0);
    const writer = await t.headers("pat", { scopes: [Scopes.updateScore] });
    expect(await codeOf(t.admin.listBoards({}, writer))).toBe(Code.PermissionDenied);
    expect(await codeOf(t.admin.listBoards({}, {}))).toBe(Code.Unauthenticated);
  });
});

class RecordingPublisher implements EventPublisher {
  readonly events: OutboxEvent[] = [];
  async publish(events: readonly OutboxEvent[]): Promise<void> {
    this.events.push(...events);
  }
}

describe("the relay's events", () => {
  it("a board submission's event carries its entry and the board's rules; a grant's does not", async () => {
    const publisher = new RecordingPublisher();
    const relay = new OutboxRelay(t.db, publisher, pino({ level: "silent" }), { batchSize: 100, pollIntervalMs: 60_000, coalesceMs: 0 });
    await relay.drain();
    publisher.events.length = 0;

    await t.admin.createBoard({ board: { ...lapTimes, boardId: "laps-2", writeScopes: [] } }, await t.adminHeaders());
    t.clock.now = new Date("2026-12-06T18:30:00Z");
    const submitted = await t.boards.submitScore(
      { boardId: "laps-2", score: 81_250n, subscore: 3n, metadata: '{"car":"kart"}' },
      await t.headers("val", { name: "Val" }),
    );
    // Worse: recorded in the ledger, published as nothing.
    await t.boards.submitScore({ boardId: "laps-2", score: 90_000n }, await t.headers("val"));
    await new PostgresLedger(t.db).addScore({ grantee: { userId: "val", username: "Val" }, source: "rpc", requireRegistration: false }, 5);
    expect(await relay.drain()).toBe(2);

    const [board, grant] = publisher.events.map((e) => fromBinary(ScoreChangedSchema, e.payload));
    expect(board?.requestId).toBe(submitted.requestId);
    expect([board?.userId, board?.newScore, board?.version, board?.region, board?.periodScores, board?.actionId, board?.points]).toEqual([
      "val",
      0n,
      0n,
      "",
      [],
      "",
      0n,
    ]);
    const entry = board!.boardEntry!;
    expect({ ...entry, $typeName: undefined, reachedAt: undefined, expiresAt: undefined }).toMatchObject({
      boardId: "laps-2",
      season: "20261129T1900Z",
      score: 81_250n,
      subscore: 3n,
      version: 1n,
      metadata: '{"car": "kart"}',
      sortOrder: SortOrder.ASCENDING,
      tieRule: TieRule.SUBSCORE,
    });
    expect(timestampDate(entry.reachedAt!)).toEqual(new Date("2026-12-06T18:30:00Z"));
    // The season ends Sunday 6 Dec 19:00 UTC; four more are kept readable.
    expect(timestampDate(entry.expiresAt!)).toEqual(new Date("2027-01-03T19:00:00Z"));
    expect(grant?.boardEntry).toBeUndefined();
    expect([grant?.points, grant?.newScore, grant?.version]).toEqual([5n, 5n, 1n]);
  });
});
