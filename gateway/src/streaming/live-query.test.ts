import { create } from "@bufbuild/protobuf";
import { StreamPositionSchema } from "@scoreboard/gen/scoreboard/v1/leaderboard_pb";
import { describe, expect, it } from "vitest";
import { describeError } from "../http.js";
import { standingSubscriptionOf, subscriptionsOfQuery } from "./live-query.js";
import { parseResumeVector } from "./resume-vector.js";

const none = parseResumeVector(undefined);
const query = (...subscribe: string[]) => new URLSearchParams(subscribe.map((s) => ["subscribe", s]));

/** What a refusal answers over REST and before a WebSocket handshake. */
function refusal(run: () => unknown): { status: number; code: string; message: string } {
  try {
    run();
  } catch (err) {
    return describeError(err);
  }
  throw new Error("not refused");
}

describe("a live stream's query string", () => {
  it("names tops and standings, each with its id, limit or around, and its position from the resume token", () => {
    const resume = parseResumeVector("top:global@5.all~100 standing:laps@5.20261207T0000Z~7 top:other@5.all~1");
    const subscriptions = subscriptionsOfQuery(query("top:global/5", "top:region:eu", "standing:laps/2", "standing:daily"), resume);
    expect(subscriptions.map(({ id, board, target }) => ({ id, board, target }))).toEqual([
      { id: "top:global", board: "global", target: { kind: "top", limit: 5 } },
      { id: "top:region:eu", board: "region:eu", target: { kind: "top", limit: 10 } },
      { id: "standing:laps", board: "laps", target: { kind: "standing", around: 2 } },
      { id: "standing:daily", board: "daily", target: { kind: "standing", around: 0 } },
    ]);
    expect(subscriptions.map((s) => s.resume)).toEqual([
      create(StreamPositionSchema, { epoch: "5.all", version: 100n }),
      undefined,
      create(StreamPositionSchema, { epoch: "5.20261207T0000Z", version: 7n }),
      undefined,
    ]);
  });

  it("refuses a spec it cannot read with 400 invalid_argument saying which and why", () => {
    const cases: [string, RegExp][] = [
      ["bottom:global", /subscribe=bottom:global: write top:<board>\[\/<limit>\] or standing:<board>\[\/<around>\]/],
      ["global", /subscribe=global: write top:/],
      ["top:global/ten", /subscribe=top:global\/ten: limit must be an integer/],
      ["top:global/101", /subscribe=top:global\/101: limit must be 1\.\.100/],
      ["standing:laps/11", /subscribe=standing:laps\/11: around must be 0\.\.10/],
      ["standing:laps/-1", /around must be an integer/],
      ["top:Laps!", /subscribe=top:Laps!: board must be 1\.\.64 of a-z/],
      ["top:global/5/6", /limit must be an integer/],
    ];
    for (const [spec, message] of cases) {
      const { status, code, message: said } = refusal(() => subscriptionsOfQuery(query(spec), none));
      expect({ spec, status, code }).toEqual({ spec, status: 400, code: "invalid_argument" });
      expect(said).toMatch(message);
    }
  });

  it("refuses no subscription, the same one twice and more than ten", () => {
    expect(refusal(() => subscriptionsOfQuery(new URLSearchParams("resume=x"), none))).toMatchObject({
      status: 400,
      message: /name what to watch: subscribe=/,
    });
    expect(refusal(() => subscriptionsOfQuery(query("top:global/5", "top:global/10"), none))).toMatchObject({
      status: 400,
      code: "invalid_argument",
      message: 'subscription id "top:global" is used twice: give each its own id',
    });
    const eleven = Array.from({ length: 11 }, (_, i) => `top:board-${i}`);
    expect(refusal(() => subscriptionsOfQuery(query(...eleven), none))).toMatchObject({ status: 400, message: "at most 10 subscribe= per stream" });
    expect(subscriptionsOfQuery(query(...eleven.slice(1)), none)).toHaveLength(10);
  });

  it("names a board's standing by its path, with ?around= 0..10 (0 when absent)", () => {
    const resume = parseResumeVector("standing:laps@5.all~9");
    expect(standingSubscriptionOf("laps", new URLSearchParams(), resume)).toEqual([
      { id: "standing:laps", board: "laps", target: { kind: "standing", around: 0 }, resume: create(StreamPositionSchema, { epoch: "5.all", version: 9n }) },
    ]);
    expect(standingSubscriptionOf("laps", new URLSearchParams("around=3"), none)[0]!.target).toEqual({ kind: "standing", around: 3 });
    expect(refusal(() => standingSubscriptionOf("laps", new URLSearchParams("around=11"), none))).toMatchObject({
      status: 400,
      message: "around must be 0..10",
    });
    expect(refusal(() => standingSubscriptionOf("laps", new URLSearchParams("around=two"), none))).toMatchObject({
      status: 400,
      message: "around must be an integer",
    });
  });
});
