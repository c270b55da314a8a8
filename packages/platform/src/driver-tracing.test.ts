import { describe, expect, it } from "vitest";
import { redisStatement } from "./driver-tracing.js";

describe("redisStatement", () => {
  it("records a command and a script's digest, never a key or an argument", () => {
    const sha = "e0e1f9fabfc9d4800c877a703b823ac0578ff831";
    // The rate limiter's call: keys hold a client address and a user id.
    expect(redisStatement("evalsha", [sha, 2, "sb:rl:ip:{203.0.113.9}", "sb:rl:user:{tracy}", "m:1", 10, 60000, 0])).toBe(`evalsha ${sha}`);
    expect(redisStatement("zadd", ["board:global", 42, "tracy"])).toBe("zadd");
    expect(redisStatement("get", ["session:tracy"])).toBe("get");
    expect(redisStatement("ping", [])).toBe("ping");
  });
});
