// Submissions to defined boards (BoardScoreService.SubmitScore) on a real
// PostgreSQL: each operator and sort order, ties, bounds, idempotent replay,
// seasons keyed by the (injected) clock, and who may write.
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { sql } from "kysely";
import { Code } from "@connectrpc/connect";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { ScoreOperator, SortOrder, TieRule, type BoardDefinitionSchema } from "@scoreboard/gen/scoreboard/v1/boards_pb";
import { Scopes } from "@scoreboard/platform/auth";
import { startBoardServices, type BoardServices } from "./harness/board-services.js";
import { codeOf } from "./harness/rpc-errors.js";

let t: BoardServices;
beforeAll(async () => {
  t = await startBoardServices(inject("infra").databaseUrl);
});
afterAll(async () => {
  await t?.db.destroy();
});

type BoardInit = MessageInitShape<typeof BoardDefinitionSchema>;
let nextBoard = 0;
async function board(fields: BoardInit = {}): Promise<string> {
  const boardId = `b${nextBoard++}`;
  await t.admin.createBoard({ board: { boardId, title: boardId, ...fields } }, await t.adminHeaders());
  return boardId;
}

async function submit(
  userId: string,
  boardId: string,
  score: number,
  more: { subscore?: number; metadata?: string; key?: string; header?: string; ticket?: string } = {},
) {
  const options = await t.headers(userId);
  if (more.header) Object.assign(options.headers, { "idempotency-key": more.header });
  return t.boards.submitScore(
    {
      boardId,
      score: BigInt(score),
      subscore: BigInt(more.subscore ?? 0),
      metadata: more.metadata ?? "",
      idempotencyKey: more.key ?? "",
      actionTicket: more.ticket ?? "",
    },
    options,
  );
}

const entryOf = (boardId: string, userId: string) =>
  t.db.selectFrom("board_entries").selectAll().where("board_id", "=", boardId).where("user_id", "=", userId).executeTakeFirst();
const ledgerOf = (boardId: string) => t.db.selectFrom("ledger").selectAll().where("board_id", "=", boardId).orderBy("id").execute();
const outboxOf = async (boardId: string) =>
  (await t.db.selectFrom("outbox").innerJoin("ledger", "ledger.id", "outbox.ledger_id").select("ledger.id").where("ledger.board_id", "=", boardId).execute())
    .length;

describe("operators", () => {
  it("incr adds and decr subtracts, each change a new version", async () => {
    const up = await board({ operator: ScoreOperator.INCREMENT });
    expect((await submit("ann", up, 5)).entry?.score).toBe(5n);
    const second = await submit("ann", up, 7);
    expect([second.entry?.score, second.changed, second.season]).toEqual([12n, true, "all"]);
    expect((await entryOf(up, "ann"))?.version).toBe(2);
    const down = await board({ operator: ScoreOperator.DECREMENT });
    await submit("ann", down, 3);
    expect((await submit("ann", down, 4)).entry?.score).toBe(-7n);
  });

  it("best keeps the higher on a descending board: a worse or equal score changes nothing", async () => {
    const id = await board({ operator: ScoreOperator.BEST, metadataMaxBytes: 100 });
    const first = await submit("bo", id, 50, { metadata: '{"lap":1}' });
    t.clock.now = new Date(t.clock.now.getTime() + 1_000);
    const worse = await submit("bo", id, 40, { metadata: '{"lap":2}' });
    expect([worse.changed, worse.entry?.score, worse.entry?.metadata]).toEqual([false, 50n, '{"lap": 1}']);
    // A tie is no improvement: the first to reach keeps the place and its time.
    const tie = await submit("bo", id, 50);
    expect(tie.changed).toBe(false);
    expect(tie.entry?.reachedAt).toEqual(first.entry?.reachedAt);
    const entry = await entryOf(id, "bo");
    expect([entry?.score, entry?.version, entry?.reached_at]).toEqual([50, 1, timestampDate(first.entry!.reachedAt!)]);
    const better = await submit("bo", id, 60);
    expect([better.changed, better.entry?.score, better.entry?.metadata]).toEqual([true, 60n, ""]);
    expect(timestampDate(better.entry!.reachedAt!)).toEqual(t.clock.now);
    // Every submission is in the ledger; only changes go to the outbox.
    expect((await ledgerOf(id)).map((r) => [r.board_score, r.new_score, r.version, r.board_changed, r.kind, r.points])).toEqual([
      [50, 50, 1, true, "board", 0],
      [40, 50, 1, false, "board", 0],
      [50, 50, 1, false, "board", 0],
      [60, 60, 2, true, "board", 0],
    ]);
    expect(await outboxOf(id)).toBe(2);
  });

  it("best keeps the lower on an ascending board", async () => {
    const id = await board({ operator: ScoreOperator.BEST, sortOrder: SortOrder.ASCENDING });
    await submit("cy", id, 90_500);
    expect((await submit("cy", id, 91_000)).changed).toBe(false);
    const faster = await submit("cy", id, 89_000);
    expect([faster.changed, faster.entry?.score]).toEqual([true, 89_000n]);
  });

  it("set overwrites, worse or better", async () => {
    const id = await board({ operator: ScoreOperator.SET });
    await submit("di", id, 100);
    expect((await submit("di", id, 20)).entry?.score).toBe(20n);
    expect((await submit("di", id, 20)).changed).toBe(false);
    expect((await submit("di", id, 30)).entry?.score).toBe(30n);
  });

  it("a subscore breaks a tie on subscore boards and is ignored elsewhere", async () => {
    const bySubscore = await board({ operator: ScoreOperator.BEST, tieRule: TieRule.SUBSCORE });
    await submit("ed", bySubscore, 10, { subscore: 3 });
    const better = await submit("ed", bySubscore, 10, { subscore: 5 });
    expect([better.changed, better.entry?.subscore]).toEqual([true, 5n]);
    expect((await submit("ed", bySubscore, 10, { subscore: 4 })).changed).toBe(false);
    const first = await board({ operator: ScoreOperator.BEST });
    await submit("ed", first, 10, { subscore: 3 });
    const ignored = await submit("ed", first, 10, { subscore: 9 });
    expect([ignored.changed, ignored.entry?.subscore]).toEqual([false, 0n]);
  });

  it("refuses scores outside the bounds: the submission for best and set, the result for incr and decr", async () => {
    const capped = await board({ operator: ScoreOperator.SET, minScore: 0n, maxScore: 100n });
    expect(await codeOf(submit("fa", capped, 101))).toBe(Code.InvalidArgument);
    expect(await codeOf(submit("fa", capped, -1))).toBe(Code.InvalidArgument);
    const counter = await board({ operator: ScoreOperator.INCREMENT, maxScore: 10n });
    await submit("fa", counter, 8);
    expect(await codeOf(submit("fa", counter, 3))).toBe(Code.FailedPrecondition);
    expect((await entryOf(counter, "fa"))?.score).toBe(8);
    const floor = await board({ operator: ScoreOperator.DECREMENT, minScore: 0n });
    expect(await codeOf(submit("fa", floor, 1))).toBe(Code.FailedPrecondition);
    expect(await codeOf(submit("fa", counter, Number.MAX_SAFE_INTEGER + 2))).toBe(Code.InvalidArgument);
    const refused = await t.db.selectFrom("audit_log").select("reason").where("operation", "=", "submit_score").where("reason", "=", "out_of_bounds").execute();
    expect(refused.length).toBe(4);
  });
});

describe("idempotency", () => {
  it("a retry by field or by header answers as the first; another request with the key is refused", async () => {
    const id = await board({ operator: ScoreOperator.INCREMENT });
    const first = await submit("gu", id, 5, { key: "k-1" });
    const again = await submit("gu", id, 5, { key: "k-1" });
    const byHeader = await submit("gu", id, 5, { header: "k-1" });
    for (const retry of [again, byHeader]) {
      expect(retry.replayed).toBe(true);
      expect([retry.requestId, retry.entry?.score, retry.entry?.reachedAt, retry.changed]).toEqual([first.requestId, 5n, first.entry?.reachedAt, true]);
    }
    expect(await codeOf(submit("gu", id, 6, { key: "k-1" }))).toBe(Code.FailedPrecondition);
    expect(await codeOf(submit("gu", `${id}x`, 5, { key: "k-1" }))).toBe(Code.NotFound);
    expect((await entryOf(id, "gu"))?.score).toBe(5);
    expect((await ledgerOf(id)).length).toBe(1);
  });

  it("a replay of a submission that changed nothing answers the entry it saw", async () => {
    const id = await board({ operator: ScoreOperator.BEST });
    const kept = await submit("ha", id, 9);
    const worse = await submit("ha", id, 3, { key: "w" });
    await submit("ha", id, 12);
    const replay = await submit("ha", id, 3, { key: "w" });
    expect([replay.replayed, replay.changed, replay.entry?.score, replay.entry?.reachedAt]).toEqual([true, false, 9n, kept.entry?.reachedAt]);
    expect(replay.requestId).toBe(worse.requestId);
  });

  it("parallel copies of one request all get the first answer and count once", async () => {
    const id = await board({ operator: ScoreOperator.INCREMENT });
    await submit("io", await board(), 1);
    // Copies that race to create the entry, then copies that queue on its row lock.
    for (const [key, after] of [
      ["first", 4n],
      ["second", 8n],
    ] as const) {
      const answers = await Promise.all(Array.from({ length: 8 }, () => submit("io", id, 4, { key })));
      expect(new Set(answers.map((a) => a.requestId)).size).toBe(1);
      expect(answers.every((a) => a.entry?.score === after)).toBe(true);
      expect(answers.filter((a) => !a.replayed)).toHaveLength(1);
      expect((await entryOf(id, "io"))?.score).toBe(Number(after));
    }
  });

  it("parallel first submissions with different keys all count", async () => {
    const id = await board({ operator: ScoreOperator.INCREMENT });
    // A known user: a new one's registration alone would serialize them.
    await submit("ju", await board(), 1);
    await Promise.all(Array.from({ length: 8 }, (_, i) => submit("ju", id, 1, { key: `k${i}` })));
    expect(await entryOf(id, "ju")).toMatchObject({ score: 8, version: 8 });
  });
});

describe("seasons and definition changes", () => {
  it("keys a submission by the season of the clock, crossing a boundary without waiting", async () => {
    const id = await board({ operator: ScoreOperator.INCREMENT, resetSchedule: "weekly" });
    t.clock.now = new Date("2026-12-06T23:59:59Z");
    expect((await submit("ka", id, 3)).season).toBe("20261130T0000Z");
    t.clock.now = new Date("2026-12-07T00:00:00Z");
    const next = await submit("ka", id, 2);
    expect([next.season, next.entry?.score]).toEqual(["20261207T0000Z", 2n]);
    const rows = await t.db.selectFrom("board_entries").select(["season", "score"]).where("board_id", "=", id).orderBy("season").execute();
    expect(rows).toEqual([
      { season: "20261130T0000Z", score: 3 },
      { season: "20261207T0000Z", score: 2 },
    ]);
  });

  it("a definition change never rewrites entries or the ledger already recorded", async () => {
    t.clock.now = new Date("2026-12-07T09:00:00Z");
    const id = await board({ operator: ScoreOperator.INCREMENT, resetSchedule: "none" });
    await submit("lu", id, 10);
    await submit("mo", id, 20);
    const before = { entries: await t.db.selectFrom("board_entries").selectAll().where("board_id", "=", id).execute(), ledger: await ledgerOf(id) };
    const current = (await t.admin.getBoard({ boardId: id }, await t.adminHeaders())).board!;
    const updated = await t.admin.updateBoard(
      { board: { ...current, operator: ScoreOperator.SET, resetSchedule: "daily", maxScore: 5n }, expectedRevision: current.revision },
      await t.adminHeaders(),
    );
    expect(updated.board?.revision).toBe(current.revision + 1n);
    expect({ entries: await t.db.selectFrom("board_entries").selectAll().where("board_id", "=", id).execute(), ledger: await ledgerOf(id) }).toEqual(before);
    // What comes after follows the new rules, in the new schedule's season.
    const after = await submit("lu", id, 4);
    expect([after.season, after.entry?.score]).toEqual(["20261207T0000Z", 4n]);
  });
});

describe("who may submit where", () => {
  it("refuses unknown, builtin and archived boards", async () => {
    expect(await codeOf(submit("na", "no-such-board", 1))).toBe(Code.NotFound);
    expect(await codeOf(submit("na", "global", 1))).toBe(Code.FailedPrecondition);
    const id = await board();
    await t.admin.archiveBoard({ boardId: id }, await t.adminHeaders());
    expect(await codeOf(submit("na", id, 1))).toBe(Code.FailedPrecondition);
    expect(await codeOf(submit("na", "Not An Id", 1))).toBe(Code.InvalidArgument);
  });

  it("needs update:score and the board's write scopes", async () => {
    const id = await board({ writeScopes: ["write:tournament"] });
    expect(await codeOf(submit("ol", id, 1))).toBe(Code.PermissionDenied);
    const scoped = await t.headers("ol", { scopes: [Scopes.updateScore, "write:tournament"] });
    expect((await t.boards.submitScore({ boardId: id, score: 1n }, scoped)).entry?.score).toBe(1n);
    const readOnly = await t.headers("ol", { scopes: [Scopes.readLeaderboard, "write:tournament"] });
    expect(await codeOf(t.boards.submitScore({ boardId: id, score: 1n }, readOnly))).toBe(Code.PermissionDenied);
  });

  it("checks X-API-Key when a submission carries one, as grants do", async () => {
    const id = await board();
    await submit("qa", id, 1);
    const wrongKey = await t.headers("qa");
    Object.assign(wrongKey.headers, { "x-api-key": "not-qa's-key" });
    expect(await codeOf(t.boards.submitScore({ boardId: id, score: 1n }, wrongKey))).toBe(Code.Unauthenticated);
    expect((await entryOf(id, "qa"))?.score).toBe(1);
  });

  it("takes metadata only as a JSON object within the board's cap", async () => {
    const none = await board();
    expect(await codeOf(submit("pi", none, 1, { metadata: "{}" }))).toBe(Code.InvalidArgument);
    const small = await board({ metadataMaxBytes: 16 });
    expect(await codeOf(submit("pi", small, 1, { metadata: '{"car":"a-very-long-name"}' }))).toBe(Code.InvalidArgument);
    expect(await codeOf(submit("pi", small, 1, { metadata: "[1,2]" }))).toBe(Code.InvalidArgument);
    expect(await codeOf(submit("pi", small, 1, { metadata: "{car" }))).toBe(Code.InvalidArgument);
    expect((await submit("pi", small, 1, { metadata: '{"car":"kart"}' })).entry?.metadata).toBe('{"car": "kart"}');
  });

  it("takes only ticketed submissions on requires_ticket boards, each ticket once, for its score", async () => {
    const id = await board({ operator: ScoreOperator.BEST, requiresTicket: true });
    expect(await codeOf(submit("qu", id, 70))).toBe(Code.PermissionDenied);
    expect(await codeOf(submit("qu", id, 70, { ticket: await t.ticket("qu", id, 71) }))).toBe(Code.PermissionDenied);
    expect(await codeOf(submit("qu", id, 70, { ticket: await t.ticket("qu", id) }))).toBe(Code.PermissionDenied);
    expect(await codeOf(submit("qu", id, 70, { ticket: await t.ticket("qu", "other", 70) }))).toBe(Code.PermissionDenied);
    const ticket = await t.ticket("qu", id, 70);
    expect((await submit("qu", id, 70, { ticket, key: "t1" })).entry?.score).toBe(70n);
    // A retry with its key replays; the same ticket in another request is spent.
    expect((await submit("qu", id, 70, { ticket, key: "t1" })).replayed).toBe(true);
    expect(await codeOf(submit("qu", id, 70, { ticket, key: "t2" }))).toBe(Code.PermissionDenied);
  });

  it("tells the relay after each committed change only", async () => {
    const id = await board({ operator: ScoreOperator.BEST });
    const before = t.kicks();
    await submit("ru", id, 5, { key: "r" });
    await submit("ru", id, 5, { key: "r" });
    await submit("ru", id, 1);
    expect(t.kicks() - before).toBe(1);
    const audited = await sql<{
      n: number;
    }>`SELECT count(*)::int AS n FROM audit_log WHERE user_id = 'ru' AND operation = 'submit_score' AND outcome = 'granted'`.execute(t.db);
    expect(audited.rows[0]?.n).toBe(2);
  });
});
