import { EventEmitter } from "node:events";
import { describe, expect, it } from "vitest";
import { create } from "@bufbuild/protobuf";
import { LeaderboardEntrySchema } from "@scoreboard/gen/scoreboard/v1/leaderboard_pb";
import { LeaderboardUpdateSchema, type LeaderboardUpdate } from "@scoreboard/gen/scoreboard/v1/push_pb";
import type { LeaderboardFeeds } from "./leaderboard-feed.js";
import type { Request, Response } from "../http.js";
import { serveLeaderboardStream } from "./sse.js";

/** A response whose socket never drains: every write after the first is "blocked". */
class StuckResponse extends EventEmitter {
  readonly chunks: string[] = [];
  writeHead() {
    return this;
  }
  write(chunk: string | Buffer) {
    this.chunks.push(String(chunk));
    return this.chunks.length < 2; // the connected event fits, then the socket is full
  }
  end() {}
}

function update(score: number): LeaderboardUpdate {
  return create(LeaderboardUpdateSchema, {
    entries: [create(LeaderboardEntrySchema, { rank: 1n, userId: "u", username: "u", score: BigInt(score) })],
  });
}

describe("SSE with a client that stops reading", () => {
  it("keeps only the latest state for it, however many changes come, and sends it when it drains", () => {
    let listener: ((u: LeaderboardUpdate) => void) | undefined;
    const feeds = {
      subscribe: (_b: string, _l: number, l: (u: LeaderboardUpdate) => void) => {
        listener = l;
        return () => {};
      },
    } as unknown as LeaderboardFeeds;
    const res = new StuckResponse();
    const shutdown = new AbortController();
    serveLeaderboardStream({ httpVersionMajor: 1 } as Request, res as unknown as Response, feeds, {
      heartbeatMs: 60_000,
      shutdownSignal: shutdown.signal,
    });
    for (let i = 1; i <= 10_000; i++) listener!(update(i));
    // connected + the first update were written; the other 9,999 states were
    // not queued: the server holds one pending state for this client.
    expect(res.chunks).toHaveLength(2);
    res.emit("drain");
    expect(res.chunks).toHaveLength(3);
    expect(res.chunks[2]).toContain('"score":10000');
    res.emit("close");
    shutdown.abort();
  });
});
