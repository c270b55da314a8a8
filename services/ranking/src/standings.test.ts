import { describe, expect, it } from "vitest";
import type { Redis } from "ioredis";
import { createLogger } from "@scoreboard/platform/logger";
import type { Boards, RankedEntry } from "./boards.js";
import { ResilientBoards, type PostgresStandings } from "./standings.js";

const entry = (userId: string): RankedEntry => ({ rank: 1, userId, username: userId, score: 1 });
const fromRedis = { page: async () => [entry("from-redis")], rankOf: async () => entry("from-redis") } as unknown as Boards;
const fromPostgres = {
  page: async () => [entry("from-postgres")],
  rankOf: async () => entry("from-postgres"),
  ranksOf: async (_board: string, userIds: string[]) => userIds.map(entry),
} as unknown as PostgresStandings;
const logger = createLogger("standings-test", "silent");

describe("ResilientBoards", () => {
  it("reads Redis while it is ready and complete", async () => {
    const boards = new ResilientBoards(fromRedis, { status: "ready", defineCommand: () => undefined } as unknown as Redis, fromPostgres, logger);
    expect((await boards.page("global", 0, 10))[0]?.userId).toBe("from-redis");
  });

  it("reads PostgreSQL while Redis is not connected", async () => {
    const boards = new ResilientBoards(fromRedis, { status: "reconnecting", defineCommand: () => undefined } as unknown as Redis, fromPostgres, logger);
    expect((await boards.page("global", 0, 10))[0]?.userId).toBe("from-postgres");
    expect((await boards.rankOf("global", "u"))?.userId).toBe("from-postgres");
    // GetStandings' many-users read too (its Redis script is never defined on a connection that is away).
    expect((await boards.ranksOf("global", ["a", "b"])).map((e) => e?.userId)).toEqual(["a", "b"]);
  });

  it("reads PostgreSQL while a rebuild fills Redis, and Redis again once it is done", async () => {
    const boards = new ResilientBoards(fromRedis, { status: "ready", defineCommand: () => undefined } as unknown as Redis, fromPostgres, logger);
    boards.setRebuilding(true);
    expect((await boards.page("global", 0, 10))[0]?.userId).toBe("from-postgres");
    expect((await boards.rankOf("global", "u"))?.userId).toBe("from-postgres");
    boards.setRebuilding(false);
    expect((await boards.page("global", 0, 10))[0]?.userId).toBe("from-redis");
  });
});
