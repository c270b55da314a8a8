import { describe, expect, it } from "vitest";
import { Code, ConnectError } from "@connectrpc/connect";
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { BoardDefinitionSchema, ScoreOperator, SortOrder, TieRule } from "@scoreboard/gen/scoreboard/v1/boards_pb";
import { metadataProblemOf } from "./board-score-service.js";
import { boardMessage, boardSpecOf, newBoardSpec, updatedSpec, type Board } from "./board-rules.js";

type BoardInit = MessageInitShape<typeof BoardDefinitionSchema>;
const definition = (fields: BoardInit = {}) => create(BoardDefinitionSchema, { boardId: "laps", title: "Laps", ...fields });

function refusal(work: () => unknown): { code: Code; message: string } {
  try {
    work();
  } catch (err) {
    const e = ConnectError.from(err);
    return { code: e.code, message: e.rawMessage };
  }
  throw new Error("expected a refusal");
}

const stored = (fields: Partial<Board> = {}): Board => ({
  ...newBoardSpec(boardSpecOf(definition())),
  builtin: false,
  archived: false,
  revision: 3,
  createdAt: new Date(0),
  updatedAt: new Date(0),
  ...fields,
});

describe("boardSpecOf", () => {
  it("fills the defaults a new board takes", () => {
    expect(newBoardSpec(boardSpecOf(definition()))).toEqual({
      boardId: "laps",
      title: "Laps",
      sortOrder: "desc",
      operator: "incr",
      resetSchedule: "none",
      timeZone: "UTC",
      tieRule: "first",
      minScore: null,
      maxScore: null,
      writeScopes: [],
      requiresTicket: false,
      metadataMaxBytes: 0,
      retainedSeasons: 0,
    });
  });

  it("maps each enum to the database's word and back", () => {
    const spec = newBoardSpec(
      boardSpecOf(definition({ sortOrder: SortOrder.ASCENDING, operator: ScoreOperator.BEST, tieRule: TieRule.SUBSCORE, minScore: -5n, maxScore: 5n })),
    );
    expect([spec.sortOrder, spec.operator, spec.tieRule, spec.minScore, spec.maxScore]).toEqual(["asc", "best", "subscore", -5, 5]);
    const message = boardMessage({ ...spec, builtin: false, archived: true, revision: 2, createdAt: new Date(0), updatedAt: new Date(0) });
    expect([message.sortOrder, message.operator, message.tieRule, message.minScore, message.archived, message.revision]).toEqual([
      SortOrder.ASCENDING,
      ScoreOperator.BEST,
      TieRule.SUBSCORE,
      -5n,
      true,
      2n,
    ]);
    expect(boardMessage(stored()).maxScore).toBeUndefined();
  });

  it("says what is wrong with a definition", () => {
    const cases: Array<[BoardInit, RegExp]> = [
      [{ boardId: "-x" }, /board_id/],
      [{ boardId: "a".repeat(65) }, /board_id/],
      [{ title: "t".repeat(201) }, /title/],
      [{ resetSchedule: "0 25 * * *" }, /not a valid cron/],
      [{ resetSchedule: "daily", timeZone: "Nowhere/Land" }, /time zone/],
      [{ minScore: 1n, maxScore: 0n }, /min_score/],
      [{ minScore: -(2n ** 53n) }, /min_score must be within/],
      [{ metadataMaxBytes: -1 }, /metadata_max_bytes/],
      [{ retainedSeasons: 1001 }, /retained_seasons/],
      [{ writeScopes: ["a b"] }, /write scope/],
      [{ tieRule: 7 as TieRule }, /tie_rule/],
    ];
    for (const [fields, message] of cases) {
      const { code, message: said } = refusal(() => boardSpecOf(definition(fields)));
      expect(code).toBe(Code.InvalidArgument);
      expect(said).toMatch(message);
    }
    expect(refusal(() => boardSpecOf(undefined)).code).toBe(Code.InvalidArgument);
    expect(refusal(() => newBoardSpec(boardSpecOf(definition({ boardId: "daily" })))).code).toBe(Code.AlreadyExists);
  });
});

describe("updatedSpec", () => {
  it("keeps an unspecified sort order and tie rule, and refuses changing them", () => {
    const current = stored({ sortOrder: "asc", tieRule: "subscore" });
    expect(updatedSpec(current, boardSpecOf(definition({ title: "New" })))).toMatchObject({ title: "New", sortOrder: "asc", tieRule: "subscore" });
    expect(refusal(() => updatedSpec(current, boardSpecOf(definition({ sortOrder: SortOrder.DESCENDING })))).code).toBe(Code.FailedPrecondition);
    expect(refusal(() => updatedSpec(current, boardSpecOf(definition({ tieRule: TieRule.FIRST_TO_REACH })))).code).toBe(Code.FailedPrecondition);
    expect(refusal(() => updatedSpec(stored({ builtin: true }), boardSpecOf(definition()))).code).toBe(Code.FailedPrecondition);
  });
});

describe("metadataProblemOf", () => {
  it("takes a JSON object within the cap, and nothing on a board that takes none", () => {
    expect(metadataProblemOf("", 0)).toBeUndefined();
    expect(metadataProblemOf('{"a":1}', 0)).toMatch(/takes no metadata/);
    expect(metadataProblemOf('{"a":1}', 7)).toBeUndefined();
    expect(metadataProblemOf('{"a":"é"}', 9)).toMatch(/10 bytes/);
    for (const notAnObject of ["[]", "1", "null", '"s"', "{"]) expect(metadataProblemOf(notAnObject, 100)).toMatch(/JSON object/);
  });
});
