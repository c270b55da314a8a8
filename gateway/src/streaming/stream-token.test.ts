import { describe, expect, it } from "vitest";
import { streamToken } from "./stream-token.js";

describe("streamToken", () => {
  it("reads Authorization: Bearer first, in any case and spacing", () => {
    expect(streamToken({ headers: { authorization: "bearer   abc" }, url: "/s?access_token=other" })).toBe("Bearer abc");
    expect(streamToken({ headers: new Headers({ authorization: "Bearer abc" }) })).toBe("Bearer abc");
  });

  it("then the WebSocket subprotocol pair, then ?access_token=", () => {
    expect(streamToken({ headers: { "sec-websocket-protocol": "bearer, abc" }, url: "/ws?access_token=other" })).toBe("Bearer abc");
    expect(streamToken({ headers: {}, url: "/api/leaderboard/stream?access_token=abc" })).toBe("Bearer abc");
    expect(streamToken({ headers: new Headers(), url: "http://gateway/x?access_token=abc" })).toBe("Bearer abc");
  });

  it("is undefined when no form carries one", () => {
    expect(streamToken({ headers: {}, url: "/s" })).toBeUndefined();
    expect(streamToken({ headers: { authorization: "Basic eDp5" }, url: "/s?access_token=" })).toBeUndefined();
    expect(streamToken({ headers: { "sec-websocket-protocol": "bearer" } })).toBeUndefined();
  });
});
