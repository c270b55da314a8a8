import { create } from "@bufbuild/protobuf";
import { StreamPositionSchema } from "@scoreboard/gen/scoreboard/v1/leaderboard_pb";
import { describe, expect, it } from "vitest";
import { describeError } from "../http.js";
import { MAX_RESUME_BYTES, parseResumeVector, resumeVectorOf, SentPositions } from "./resume-vector.js";

const position = (epoch: string, version: bigint) => create(StreamPositionSchema, { epoch, version });

describe("resume tokens", () => {
  it("round-trip: the token of the positions sent parses back to them, starting from those resumed", () => {
    const sent = new SentPositions([
      ["top:global", position("1765000000000.all", 5n)],
      ["standing:laps", undefined],
    ]);
    expect(sent.token()).toBe("top:global@1765000000000.all~5");
    sent.sent("standing:laps", position("1765000000000.20261207T0000Z", 1765022400000000n));
    const token = sent.sent("top:global", position("1765000000000.all", 6n));
    expect(token).toBe("top:global@1765000000000.all~6 standing:laps@1765000000000.20261207T0000Z~1765022400000000");
    expect(parseResumeVector(token)).toEqual(
      new Map([
        ["top:global", position("1765000000000.all", 6n)],
        ["standing:laps", position("1765000000000.20261207T0000Z", 1765022400000000n)],
      ]),
    );
  });

  it("skips malformed items: those subscriptions start fresh", () => {
    const vector = parseResumeVector("top:a@1.all~5 garbage standing:b@bad~x @1.all~3 top:c@1.all~7  top:d@1.all~99999999999999999999999");
    expect([...vector.keys()]).toEqual(["top:a", "top:c"]);
    expect(parseResumeVector("").size).toBe(0);
    expect(parseResumeVector(null).size).toBe(0);
  });

  it("refuses a token over 2 KiB with 400", () => {
    const long = Array.from({ length: 100 }, (_, i) => `top:board-${i}@1.all~${i}`).join(" ");
    expect(long.length).toBeGreaterThan(MAX_RESUME_BYTES);
    try {
      parseResumeVector(long);
      expect.unreachable();
    } catch (err) {
      expect(describeError(err)).toEqual({ status: 400, code: "invalid_argument", message: "resume token is longer than 2048 bytes" });
    }
  });

  it("comes from Last-Event-ID (EventSource's reconnect) before ?resume= (the page's URL)", () => {
    const query = new URLSearchParams("resume=top:global@1.all~5");
    expect(resumeVectorOf({ headers: { "last-event-id": "top:global@1.all~9" } }, query).get("top:global")?.version).toBe(9n);
    expect(resumeVectorOf({ headers: {} }, query).get("top:global")?.version).toBe(5n);
    expect(resumeVectorOf({ headers: { "last-event-id": "" } }, query).get("top:global")?.version).toBe(5n);
  });
});
