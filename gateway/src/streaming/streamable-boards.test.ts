import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { StreamableBoards, type StreamableBoardsOptions } from "./streamable-boards.js";

const RULES = { regions: new Set(["eu"]), retention: { daily: 7 * 86_400_000, weekly: 35 * 86_400_000, monthly: 366 * 86_400_000 } };

/** Defined boards `laps` and `points`; counts the lookups; `now` moves the clock. */
function fixture(options: Partial<StreamableBoardsOptions> = {}, probe?: (id: string) => Promise<boolean>) {
  const asked: string[] = [];
  const defined = new Set(["laps", "points"]);
  let now = Date.parse("2026-12-06T12:00:00Z");
  const boards = new StreamableBoards(
    RULES,
    (id) => {
      asked.push(id);
      return probe ? probe(id) : Promise.resolve(defined.has(id));
    },
    options,
    () => now,
  );
  return { boards, asked, defined, advance: (ms: number) => (now += ms) };
}

const codeOf = (call: Promise<unknown>) =>
  call.then(
    () => undefined,
    (err: unknown) => ConnectError.from(err).code,
  );

describe("StreamableBoards", () => {
  it("answers seed boards as knownBoard does, without a lookup", async () => {
    const { boards, asked } = fixture();
    expect(await boards.resolve("")).toBe("global");
    expect(await boards.resolve("daily")).toBe("daily");
    expect(await boards.resolve("region:eu")).toBe("region:eu");
    expect(await codeOf(boards.resolve("region:mars"))).toBe(Code.NotFound);
    expect(await codeOf(boards.resolve("daily:2026-02-30"))).toBe(Code.InvalidArgument);
    expect(await codeOf(boards.resolve("Not Valid"))).toBe(Code.InvalidArgument);
    // A builtin id that is no seed board's name is not looked up either.
    expect(await codeOf(boards.resolve("region"))).toBe(Code.NotFound);
    expect(asked).toEqual([]);
  });

  it("serves a defined board by its id and refuses an id no board has, NOT_FOUND", async () => {
    const { boards } = fixture();
    expect(await boards.resolve("laps")).toBe("laps");
    const refused = await boards.resolve("nope").catch((err: unknown) => err as ConnectError);
    expect(refused).toMatchObject({ code: Code.NotFound });
    expect((refused as ConnectError).rawMessage).toMatch(/^unknown board "nope": .*, or a defined board's id$/);
  });

  it("remembers a known board for 30 s and an unknown id for 5 s", async () => {
    const { boards, asked, defined, advance } = fixture();
    await boards.resolve("laps");
    await codeOf(boards.resolve("soon"));
    defined.add("soon");
    advance(4_000);
    await boards.resolve("laps");
    expect(await codeOf(boards.resolve("soon"))).toBe(Code.NotFound);
    expect(asked).toEqual(["laps", "soon"]);
    // A board created a moment ago is streamable once "unknown" is forgotten.
    advance(1_001);
    expect(await boards.resolve("soon")).toBe("soon");
    advance(24_998);
    await boards.resolve("laps");
    expect(asked).toEqual(["laps", "soon", "soon"]);
    advance(1);
    await boards.resolve("laps");
    expect(asked).toEqual(["laps", "soon", "soon", "laps"]);
  });

  it("asks once for many streams opening on one id at the same time", async () => {
    const { boards, asked } = fixture();
    const answers = await Promise.all(Array.from({ length: 50 }, () => boards.resolve("points")));
    expect(new Set(answers)).toEqual(new Set(["points"]));
    expect(asked).toEqual(["points"]);
  });

  it("keeps at most maxRemembered ids of each kind, so random ids never push known boards out", async () => {
    const { boards, asked } = fixture({ maxRemembered: 3 });
    await boards.resolve("laps");
    for (let i = 0; i < 10; i++) await codeOf(boards.resolve(`random-${i}`));
    await boards.resolve("laps");
    expect(asked.filter((id) => id === "laps")).toHaveLength(1);
    // The oldest unknown ids were forgotten: asking again looks them up again.
    await codeOf(boards.resolve("random-0"));
    await codeOf(boards.resolve("random-9"));
    expect(asked.filter((id) => id === "random-0")).toHaveLength(2);
    expect(asked.filter((id) => id === "random-9")).toHaveLength(1);
  });

  it("bounds the lookups in flight: a flood of random ids waits for none and costs ranking at most maxLookups calls", async () => {
    const pending: Array<() => void> = [];
    const { boards, asked } = fixture({ maxLookups: 4 }, () => new Promise<boolean>((resolve) => pending.push(() => resolve(false))));
    const flood = Array.from({ length: 100 }, (_, i) => codeOf(boards.resolve(`flood-${i}`)));
    for (const release of pending) release();
    const codes = await Promise.all(flood);
    expect(asked).toHaveLength(4);
    expect(codes.filter((c) => c === Code.NotFound)).toHaveLength(4);
    expect(codes.filter((c) => c === Code.Unavailable)).toHaveLength(96);
  });

  it("does not remember a failed lookup: the next stream asks again", async () => {
    let fail = true;
    const { boards, asked } = fixture({}, async () => {
      if (fail) throw new ConnectError('looking up board "laps": ranking is unavailable', Code.Unavailable);
      return true;
    });
    expect(await codeOf(boards.resolve("laps"))).toBe(Code.Unavailable);
    fail = false;
    expect(await boards.resolve("laps")).toBe("laps");
    expect(asked).toEqual(["laps", "laps"]);
  });
});
