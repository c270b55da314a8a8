// Push on the real mesh: WatchLeaderboard's positions are ranking's epochs,
// a stream resumed from the current position starts with the next change,
// and WatchBoardMoves relays ranking's BoardMoved of a grant.
import { afterAll, beforeAll, expect, inject, it } from "vitest";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import type { BoardMoved } from "@scoreboard/gen/scoreboard/v1/events_pb";
import { PushService, type LeaderboardUpdate } from "@scoreboard/gen/scoreboard/v1/push_pb";
import { RankingService } from "@scoreboard/gen/scoreboard/v1/ranking_pb";
import { positionOf } from "@scoreboard/platform/stream-position";
import { startMesh, type Mesh } from "./harness/mesh.js";

let mesh: Mesh;
const aborts: AbortController[] = [];

beforeAll(async () => {
  mesh = await startMesh(inject("infra"), { STREAM_HEARTBEAT_MS: "300" });
  await mesh.sql("INSERT INTO actions (action_id, points) VALUES ('ten', 10)");
  expect((await mesh.submitAction("alice", "ten")).status).toBe(200);
});
afterAll(async () => {
  for (const abort of aborts) abort.abort();
  await mesh?.stop();
});

function stream<T>(open: (signal: AbortSignal) => AsyncIterable<T>) {
  const abort = new AbortController();
  aborts.push(abort);
  const iterator = open(abort.signal)[Symbol.asyncIterator]();
  return async (): Promise<T> => {
    const result = await iterator.next();
    if (result.done) throw new Error("stream ended");
    return result.value;
  };
}

const push = () => createClient(PushService, createGrpcTransport({ baseUrl: mesh.grpcUrls.push }));

/** Reads until a message passes `until`, at most `limit` messages. */
async function readUntil<T>(next: () => Promise<T>, until: (message: T) => boolean, limit = 50): Promise<T> {
  for (let i = 0; i < limit; i++) {
    const message = await next();
    if (until(message)) return message;
  }
  throw new Error(`no such message within ${limit}`);
}

it("gives WatchLeaderboard updates ranking's epoch, and a stream resumed from the current position starts with the next change", async () => {
  const ranking = createClient(RankingService, createGrpcTransport({ baseUrl: mesh.grpcUrls.ranking }));
  const page = await ranking.getLeaderboard({ limit: 5 });
  expect(page.epoch).toMatch(/^\d+\.all$/);

  const first = await stream((signal) => push().watchLeaderboard({ limit: 5 }, { signal }))();
  expect(first.position).toEqual(positionOf(page.epoch, first.asOf));
  expect(first.entries.map((e) => e.userId)).toContain("alice");

  const resumed = stream((signal) => push().watchLeaderboard({ limit: 5, resume: first.position }, { signal }));
  expect(await resumed()).toMatchObject({ heartbeat: true, sequence: 1n });
  expect((await mesh.submitAction("bob", "ten")).status).toBe(200);
  const change = await readUntil<LeaderboardUpdate>(resumed, (u) => !u.heartbeat);
  expect(change.entries.map((e) => e.userId)).toContain("bob");
  expect(change.position!.epoch).toBe(page.epoch);
  expect(change.position!.version).toBeGreaterThan(first.position!.version);
});

it("relays a grant's BoardMoved after a first message with the board's epoch", async () => {
  const next = stream((signal) => push().watchBoardMoves({ board: "global" }, { signal }));
  const first = await next();
  expect(first).toMatchObject({ board: "global", moves: [], everything: false });
  expect(first.epoch).toMatch(/^\d+\.all$/);
  expect((await mesh.submitAction("carol", "ten")).status).toBe(200);
  const moved = await readUntil<BoardMoved>(next, (m) => m.moves.some((move) => move.userId === "carol"));
  expect(moved.epoch).toBe(first.epoch);
  expect(moved.moves.find((move) => move.userId === "carol")).toMatchObject({ fromScore: 0n, toScore: 10n });
});
