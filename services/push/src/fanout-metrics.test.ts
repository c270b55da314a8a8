// The push process's metrics: fan-out latency (TopNFanout) and open watch streams (the service).
import { afterEach, describe, expect, it, onTestFinished } from "vitest";
import http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { createClient } from "@connectrpc/connect";
import { connectNodeAdapter, createConnectTransport } from "@connectrpc/connect-node";
import { create, toBinary } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import type { Msg, NatsConnection, NatsError, Status } from "nats";
import { BoardChangedSchema } from "@scoreboard/gen/scoreboard/v1/events_pb";
import { LeaderboardEntrySchema } from "@scoreboard/gen/scoreboard/v1/leaderboard_pb";
import { PushService } from "@scoreboard/gen/scoreboard/v1/push_pb";
import { createLogger } from "@scoreboard/platform/logger";
import { BoardMovesRelay } from "./board-moves.js";
import { TopNFanout } from "./fanout.js";
import { createPushService } from "./service.js";

type Callback = (err: NatsError | null, msg: Msg) => void;

/** What TopNFanout uses of NATS: one subscription and a quiet status feed. */
function fakeNats() {
  const callbacks: Callback[] = [];
  const nats = {
    subscribe: (_subject: string, options: { callback: Callback }) => {
      callbacks.push(options.callback);
      return { unsubscribe: () => {} };
    },
    status: (): AsyncIterable<Status> => ({ [Symbol.asyncIterator]: () => ({ next: () => new Promise<IteratorResult<Status>>(() => {}) }) }),
  };
  const announce = (board: string, score: number, asOfMs: number) => {
    const top = [create(LeaderboardEntrySchema, { rank: 1n, userId: "alice", username: "Alice", score: BigInt(score) })];
    const data = toBinary(BoardChangedSchema, create(BoardChangedSchema, { board, top, asOf: timestampFromMs(asOfMs) }));
    for (const callback of callbacks) callback(null, { subject: `scoreboard.board.${board}.changed`, data } as Msg);
  };
  return { nats: nats as unknown as NatsConnection, announce };
}

const tick = (ms = 10) => new Promise((resolve) => setTimeout(resolve, ms));
const logger = createLogger("push-metrics-test", "silent");
let fanout: TopNFanout | undefined;
afterEach(() => fanout?.stop());

describe("fan-out latency", () => {
  it("observes, per notification of an announced change, the time since its asOf", async () => {
    const { nats, announce } = fakeNats();
    const observed: number[] = [];
    // Older than the announcements below, which a refresh must not roll back.
    const snapshot = async () => ({ top: [], asOf: timestampFromMs(Date.now() - 10_000), epoch: "1.all" });
    fanout = new TopNFanout(snapshot, logger, 3_600_000, 0, { observe: (s) => observed.push(s) });
    fanout.start(nats);
    announce("global", 10, Date.now() - 250); // nobody watches yet: nothing to time
    expect(observed).toEqual([]);
    await fanout.watch("global", () => {});
    expect(observed).toEqual([]); // the first snapshot came from a read, not an announcement
    announce("global", 20, Date.now() - 250);
    expect(observed).toHaveLength(1);
    expect(observed[0]).toBeGreaterThanOrEqual(0.25);
    expect(observed[0]).toBeLessThan(5);
    announce("global", 30, Date.now() + 60_000); // a clock ahead of ours
    expect(observed[1]).toBe(0);
  });
});

describe("open watch streams", () => {
  it("counts a WatchLeaderboard stream while it is open", async () => {
    const { nats } = fakeNats();
    fanout = new TopNFanout(async () => ({ top: [], asOf: timestampFromMs(Date.now()), epoch: "1.all" }), logger, 3_600_000, 0);
    fanout.start(nats);
    let open = 0;
    const counter = {
      inc: () => {
        open += 1;
      },
      dec: () => {
        open -= 1;
      },
    };
    // A real HTTP/2 server: connect's in-memory router transport (2.3) no
    // longer ends a handler whose client went away, a real server does.
    const server = http2.createServer(
      connectNodeAdapter({
        routes: (router) =>
          router.service(PushService, createPushService(fanout!, new BoardMovesRelay(fanout!, logger), { heartbeatMs: 60_000, openStreams: counter })),
      }),
    );
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    onTestFinished(() => void server.close());
    const baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const client = createClient(PushService, createConnectTransport({ baseUrl, httpVersion: "2" }));
    const abort = new AbortController();
    const stream = client.watchLeaderboard({ board: "global", limit: 5 }, { signal: abort.signal })[Symbol.asyncIterator]();
    await stream.next();
    expect(open).toBe(1);
    abort.abort();
    await stream.next().catch(() => undefined);
    for (let i = 0; i < 20 && open !== 0; i++) await tick();
    expect(open).toBe(0);
  });
});
