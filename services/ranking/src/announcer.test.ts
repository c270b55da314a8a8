import { fromBinary } from "@bufbuild/protobuf";
import type { NatsConnection } from "nats";
import { describe, expect, it } from "vitest";
import { BoardChangedSchema, type BoardChanged } from "@scoreboard/gen/scoreboard/v1/events_pb";
import { createLogger } from "@scoreboard/platform/logger";
import { periodBoardsAt } from "@scoreboard/platform/periods";
import { BoardChangeAnnouncer } from "./announcer.js";
import type { Boards, RankedEntry } from "./boards.js";

function fixture() {
  const sent: Array<{ subject: string; message: BoardChanged }> = [];
  const nats = {
    publish: (subject: string, data: Uint8Array) => sent.push({ subject, message: fromBinary(BoardChangedSchema, data) }),
  } as unknown as NatsConnection;
  const tops = new Map<string, RankedEntry[]>();
  const boards = { page: async (board: string) => tops.get(board) ?? [] } as unknown as Boards;
  // A window longer than any test: only the leading edge and stop() announce.
  const announcer = new BoardChangeAnnouncer(nats, boards, createLogger("test"), 60_000);
  const announce = async (change: () => void) => {
    change();
    await announcer.stop();
  };
  return { sent, tops, announcer, announce };
}

const entry = (rank: number, userId: string, score: number): RankedEntry => ({ rank, userId, username: userId, score });

describe("BoardChangeAnnouncer", () => {
  it("announces a changed top 100, and not an unchanged one again", async () => {
    const { sent, tops, announcer, announce } = fixture();
    tops.set("global", [entry(1, "a", 10), entry(2, "b", 5)]);
    await announce(() => announcer.changed(["global"]));
    expect(sent.map((s) => s.message.top.map((e) => e.userId))).toEqual([["a", "b"]]);

    // A grant below the top changed the board, not its top.
    await announce(() => announcer.changed(["global"]));
    expect(sent).toHaveLength(1);

    tops.set("global", [entry(1, "b", 11), entry(2, "a", 10)]);
    await announce(() => announcer.changed(["global"]));
    expect(sent).toHaveLength(2);
    expect(sent[1]!.message).toMatchObject({ board: "global", top: [{ userId: "b", score: 11n, rank: 1n }, { userId: "a" }] });
  });

  it("announces a repaired board even when its top looks unchanged (push may show a drift)", async () => {
    const { sent, tops, announcer, announce } = fixture();
    tops.set("region:eu", [entry(1, "ann", 10)]);
    await announce(() => announcer.changed(["region:eu"]));
    await announce(() => announcer.repaired(["region:eu"]));
    expect(sent.map((s) => s.subject)).toEqual(["scoreboard.board.region:eu.changed", "scoreboard.board.region:eu.changed"]);
  });

  it("publishes the current period's board under its alias too, each a whole message", async () => {
    const { sent, tops, announcer, announce } = fixture();
    const daily = periodBoardsAt(Date.now()).find((b) => b.startsWith("daily:"))!;
    tops.set(daily, [entry(1, "a", 3)]);
    await announce(() => announcer.changed([daily]));
    expect(sent.map((s) => [s.subject, s.message.board, s.message.top.length])).toEqual([
      [`scoreboard.board.${daily}.changed`, daily, 1],
      ["scoreboard.board.daily.changed", "daily", 1],
    ]);
    expect(sent[0]!.message.asOf).toEqual(sent[1]!.message.asOf);
  });

  it("announces a defined board under its id when the changed season is the one its streams show", async () => {
    const sent: string[] = [];
    const nats = { publish: (subject: string) => sent.push(subject) } as unknown as NatsConnection;
    const boards = {
      page: async () => [entry(1, "amy", 3)],
      showsSeason: async (_id: string, season: string) => season === "20261207T0000Z",
    };
    const announcer = new BoardChangeAnnouncer(nats, boards, createLogger("test"), 60_000);
    announcer.definedBoardChanged("laps", "20261130T0000Z");
    await new Promise((resolve) => setImmediate(resolve));
    expect(sent).toEqual([]);
    announcer.definedBoardChanged("laps", "20261207T0000Z");
    await new Promise((resolve) => setImmediate(resolve));
    await announcer.stop();
    expect(sent).toEqual(["scoreboard.board.laps.changed"]);
  });

  it("stamps each message with the board's epoch: the alias carries the concrete board's, and a new epoch is announced even with the same top", async () => {
    const sent: BoardChanged[] = [];
    const nats = { publish: (_subject: string, data: Uint8Array) => sent.push(fromBinary(BoardChangedSchema, data)) } as unknown as NatsConnection;
    const daily = periodBoardsAt(Date.now()).find((b) => b.startsWith("daily:"))!;
    let generation = 5;
    const asked: string[] = [];
    const epochs = {
      epochOf: async (board: string) => {
        asked.push(board);
        return `${generation}.${board === daily ? "day" : "all"}`;
      },
    };
    const announcer = new BoardChangeAnnouncer(nats, { page: async () => [entry(1, "a", 3)] }, createLogger("test"), 60_000, epochs);
    const announce = async (boards: string[]) => {
      announcer.changed(boards);
      await announcer.stop();
    };
    await announce([daily, "global"]);
    expect(sent.map((m) => [m.board, m.epoch]).sort()).toEqual(
      [
        ["daily", "5.day"],
        [daily, "5.day"],
        ["global", "5.all"],
      ].sort(),
    );
    expect(asked.sort()).toEqual([daily, "global"].sort());
    await announce(["global"]);
    expect(sent).toHaveLength(3);
    generation = 6; // a rebuild
    await announce(["global"]);
    expect(sent.map((m) => [m.board, m.epoch]).at(-1)).toEqual(["global", "6.all"]);
  });
});
