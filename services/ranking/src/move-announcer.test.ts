import { create, fromBinary } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { BoardEntryChangedSchema, BoardMovedSchema, PeriodScoreSchema, ScoreChangedSchema, type BoardMoved } from "@scoreboard/gen/scoreboard/v1/events_pb";
import { createLogger } from "@scoreboard/platform/logger";
import { periodAt } from "@scoreboard/platform/periods";
import { MAX_MOVES_PER_MESSAGE, BoardMoveAnnouncer } from "./move-announcer.js";

function fixture() {
  const sent: Array<{ subject: string; message: BoardMoved }> = [];
  const nats = { publish: (subject: string, data: Uint8Array) => sent.push({ subject, message: fromBinary(BoardMovedSchema, data) }) };
  const boards = { showsSeason: async (_id: string, season: string) => season === "20261207T0000Z" };
  const epochs = { epochOf: async (board: string) => (board.startsWith("daily:") ? "7.20261207T0000Z" : "7.all") };
  // A window longer than any test: only the leading edge and stop() publish.
  const moves = new BoardMoveAnnouncer(nats, boards, epochs, createLogger("test"), 60_000);
  return { sent, moves, bySubject: () => Object.fromEntries(sent.map((s) => [s.subject, s.message])) };
}

const grant = (userId: string, points: number, newScore: number, version: number, periodScores: Record<string, number> = {}) =>
  create(ScoreChangedSchema, {
    userId,
    points: BigInt(points),
    newScore: BigInt(newScore),
    version: BigInt(version),
    periodScores: Object.entries(periodScores).map(([board, score]) => create(PeriodScoreSchema, { board, score: BigInt(score) })),
  });

const movesOf = (message: BoardMoved | undefined) => message?.moves.map((m) => [m.userId, m.fromScore, m.toScore]);
const settle = () => new Promise((resolve) => setImmediate(resolve));

describe("BoardMoveAnnouncer", () => {
  it("publishes a grant's move at once: from the new total minus the points to the new total, on each board it changed", async () => {
    const { sent, moves } = fixture();
    moves.granted(grant("ann", 5, 25, 3), ["global", "region:eu"]);
    await moves.stop();
    expect(sent.map((s) => s.subject)).toEqual(["scoreboard.board.global.moved", "scoreboard.board.region:eu.moved"]);
    expect(sent[0]!.message).toMatchObject({ board: "global", epoch: "7.all", everything: false });
    expect(movesOf(sent[0]!.message)).toEqual([["ann", 20n, 25n]]);
    expect(sent[0]!.message.asOf).toBeDefined();
  });

  it("merges a window's moves per board and user: the first version's from, the last version's to", async () => {
    const { sent, moves, bySubject } = fixture();
    moves.granted(grant("lead", 1, 1, 1), ["global"]); // published at once: the window's leading edge
    await settle();
    moves.granted(grant("ann", 5, 30, 4), ["global"]);
    moves.granted(grant("bob", 2, 12, 9), ["global", "region:us"]);
    moves.granted(grant("ann", 5, 25, 3), ["global"]); // applied late, in an older version
    moves.granted(grant("ann", 10, 40, 5), ["global"]);
    await moves.stop();
    expect(sent).toHaveLength(3);
    expect(movesOf(sent[0]!.message)).toEqual([["lead", 0n, 1n]]);
    expect(movesOf(bySubject()["scoreboard.board.global.moved"])).toEqual([
      ["ann", 20n, 40n],
      ["bob", 10n, 12n],
    ]);
    expect(movesOf(bySubject()["scoreboard.board.region:us.moved"])).toEqual([["bob", 10n, 12n]]);
  });

  it("publishes a period board's moves from its own total, under the alias too while it is current", async () => {
    const { sent, moves } = fixture();
    const today = periodAt("daily", Date.now()).board;
    const lastMonth = periodAt("monthly", Date.now() - 40 * 86_400_000).board;
    moves.granted(grant("ann", 5, 100, 3, { [today]: 15, [lastMonth]: 7 }), ["global", today, lastMonth]);
    await moves.stop();
    const messages = Object.fromEntries(sent.map((s) => [s.subject, s.message]));
    expect(Object.keys(messages).sort()).toEqual(
      ["scoreboard.board.daily.moved", `scoreboard.board.${today}.moved`, `scoreboard.board.${lastMonth}.moved`, "scoreboard.board.global.moved"].sort(),
    );
    expect(movesOf(messages[`scoreboard.board.${today}.moved`])).toEqual([["ann", 10n, 15n]]);
    expect(messages["scoreboard.board.daily.moved"]).toMatchObject({ board: "daily", epoch: "7.20261207T0000Z" });
    expect(movesOf(messages["scoreboard.board.daily.moved"])).toEqual([["ann", 10n, 15n]]);
    expect(movesOf(messages[`scoreboard.board.${lastMonth}.moved`])).toEqual([["ann", 2n, 7n]]);
  });

  it("publishes a defined board's entry under its id, without from, only for the season its id shows", async () => {
    const { sent, moves } = fixture();
    const submission = (season: string, score: number) =>
      create(ScoreChangedSchema, {
        userId: "amy",
        boardEntry: create(BoardEntryChangedSchema, { boardId: "laps", season, score: BigInt(score), version: 2n }),
      });
    moves.definedEntryChanged(submission("20261130T0000Z", 50));
    await settle();
    expect(sent).toEqual([]);
    moves.definedEntryChanged(submission("20261207T0000Z", 42));
    await settle();
    await moves.stop();
    expect(sent.map((s) => s.subject)).toEqual(["scoreboard.board.laps.moved"]);
    expect(sent[0]!.message.moves[0]!.fromScore).toBeUndefined();
    expect(movesOf(sent[0]!.message)).toEqual([["amy", undefined, 42n]]);
  });

  it(`says everything instead of listing more than ${MAX_MOVES_PER_MESSAGE} moves`, async () => {
    const { sent, moves } = fixture();
    moves.granted(grant("first", 1, 1, 1), ["global"]);
    await settle();
    for (let i = 0; i <= MAX_MOVES_PER_MESSAGE; i += 1) moves.granted(grant(`u${i}`, 1, 1, 1), ["global"]);
    await moves.stop();
    expect(sent.map((s) => [s.message.moves.length, s.message.everything])).toEqual([
      [1, false],
      [0, true],
    ]);
  });

  it("says everything for repaired and rebuilt boards, and for a repaired defined board's shown season", async () => {
    const { sent, moves } = fixture();
    moves.granted(grant("ann", 1, 1, 1), ["global"]);
    await settle();
    moves.granted(grant("bob", 1, 1, 1), ["global"]);
    moves.everything(["global", "region:eu"]);
    moves.granted(grant("cat", 1, 1, 1), ["global"]); // still everything: the window already says so
    moves.definedBoardRepaired("laps", "20261207T0000Z");
    moves.definedBoardRepaired("sprint", "20261130T0000Z");
    await settle();
    await moves.stop();
    expect(sent.slice(1).map((s) => [s.message.board, s.message.moves.length, s.message.everything])).toEqual([
      ["global", 0, true],
      ["region:eu", 0, true],
      ["laps", 0, true],
    ]);
  });

  it("never lets a failing publish or epoch escape", async () => {
    const nats = {
      publish: () => {
        throw new Error("connection closed");
      },
    };
    const epochs = { epochOf: async () => "0.all" };
    const moves = new BoardMoveAnnouncer(nats, {}, epochs, createLogger("test"), 60_000);
    expect(() => moves.granted(grant("ann", 1, 1, 1), ["global"])).not.toThrow();
    await expect(moves.stop()).resolves.toBeUndefined();
  });
});
