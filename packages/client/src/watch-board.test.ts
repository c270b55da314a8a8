import { Code, ConnectError, createClient, createRouterTransport } from "@connectrpc/connect";
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { LeaderboardEntrySchema, StreamPositionSchema } from "@scoreboard/gen/scoreboard/v1/leaderboard_pb";
import { PushService, type LeaderboardUpdateSchema, type WatchLeaderboardRequest } from "@scoreboard/gen/scoreboard/v1/push_pb";
import { afterEach, describe, expect, it } from "vitest";
import { backoffDelay, DEFAULT_BACKOFF } from "./backoff.js";
import { watchBoard, type BoardState } from "./watch-board.js";

/** What one call of the fake server does: the updates it sends, then how it ends. */
type Update = MessageInitShape<typeof LeaderboardUpdateSchema>;
interface Script {
  updates: Update[];
  end: "return" | "hang" | ConnectError;
}

// connect 2.3's router transport does not end a server handler when the
// client aborts (a real server does), so a "hang" handler waits on this
// instead, released after each test.
let releaseHangs: () => void = () => undefined;
let hung = new Promise<void>((resolve) => (releaseHangs = resolve));
afterEach(() => {
  releaseHangs();
  hung = new Promise<void>((resolve) => (releaseHangs = resolve));
});

/** A PushService that answers call n with scripts[n] (the last one repeats). */
function fakePush(scripts: Script[]) {
  const requests: WatchLeaderboardRequest[] = [];
  const transport = createRouterTransport(({ service }) =>
    service(PushService, {
      async *watchLeaderboard(req) {
        const script = scripts[Math.min(requests.length, scripts.length - 1)]!;
        requests.push(req);
        for (const update of script.updates) yield update;
        if (script.end === "hang") await hung;
        else if (script.end instanceof ConnectError) throw script.end;
      },
    }),
  );
  return { push: createClient(PushService, transport), requests };
}

const board = (score: bigint): Update => ({
  entries: [create(LeaderboardEntrySchema, { rank: 1n, userId: "alice", username: "Alice", score })],
});
const heartbeat: Update = { heartbeat: true };
const unavailable = new ConnectError("gateway restarting", Code.Unavailable);
const noJitter = { initialMs: 5, maxMs: 40, multiplier: 2, jitter: 0 };

/** Runs watchBoard until `until` says stop, recording states and boards. */
async function watch(scripts: Script[], until: (states: BoardState[], boards: bigint[]) => boolean, extra = {}) {
  const { push, requests } = fakePush(scripts);
  const states: BoardState[] = [];
  const boards: bigint[] = [];
  const stop = new AbortController();
  const check = () => {
    if (until(states, boards)) stop.abort();
  };
  const done = watchBoard(push, {
    board: "region:eu",
    limit: 5,
    signal: stop.signal,
    backoff: noJitter,
    onBoard: (u) => {
      boards.push(u.entries[0]?.score ?? -1n);
      check();
    },
    onState: (s) => {
      states.push(s);
      check();
    },
    ...extra,
  });
  return { done, states, boards, requests, stop };
}

const kinds = (states: BoardState[]) => states.map((s) => (s.kind === "retrying" ? `retrying ${s.delayMs}` : s.kind));

describe("watchBoard", () => {
  it("goes live, passes boards on and skips heartbeats", async () => {
    const w = await watch([{ updates: [board(10n), heartbeat, board(20n)], end: "hang" }], (_s, b) => b.length === 2);
    await w.done;
    expect(w.boards).toEqual([10n, 20n]);
    expect(kinds(w.states)).toEqual(["connecting", "live"]);
    expect(w.requests.map((r) => [r.board, r.limit])).toEqual([["region:eu", 5]]);
  });

  it("reconnects with exponential backoff, capped, until a message resets it", async () => {
    const w = await watch(
      [
        { updates: [], end: unavailable },
        { updates: [], end: unavailable },
        { updates: [], end: unavailable },
        { updates: [], end: unavailable },
        { updates: [], end: unavailable },
        { updates: [board(1n)], end: unavailable },
        { updates: [], end: "return" },
        { updates: [board(2n)], end: "hang" },
      ],
      (_s, b) => b.length === 2,
    );
    await w.done;
    expect(kinds(w.states)).toEqual([
      "connecting",
      "retrying 5",
      "connecting",
      "retrying 10",
      "connecting",
      "retrying 20",
      "connecting",
      "retrying 40",
      "connecting",
      "retrying 40",
      // a message: the next failure starts again from the first delay
      "connecting",
      "live",
      "retrying 5",
      // the server ending the stream is retried too
      "connecting",
      "retrying 10",
      "connecting",
      "live",
    ]);
    const retries = w.states.filter((s) => s.kind === "retrying");
    expect(retries.map((s) => s.attempt)).toEqual([1, 2, 3, 4, 5, 1, 2]);
    expect(retries.every((s) => s.error.code === Code.Unavailable)).toBe(true);
    expect(retries[6]!.error.rawMessage).toBe("the server ended the stream");
    expect(w.requests).toHaveLength(8);
  });

  it("stops on abort: during a live stream, while waiting to retry, and before it starts", async () => {
    const live = await watch([{ updates: [board(1n)], end: "hang" }], (_s, b) => b.length === 1);
    await expect(live.done).resolves.toBeUndefined();

    const waiting = await watch([{ updates: [], end: unavailable }], (s) => s.some((x) => x.kind === "retrying"), {
      backoff: { ...noJitter, initialMs: 60_000 },
    });
    const started = Date.now();
    await waiting.done;
    expect(Date.now() - started).toBeLessThan(1_000);
    expect(waiting.requests).toHaveLength(1);

    const { push, requests } = fakePush([{ updates: [board(1n)], end: "hang" }]);
    const onState = (_: BoardState) => expect.fail("no state after abort");
    await watchBoard(push, { signal: AbortSignal.abort(), onBoard: () => expect.fail("no board"), onState });
    expect(requests).toHaveLength(0);
  });

  it("no callback runs once stopped from a callback", async () => {
    const w = await watch([{ updates: [board(1n), board(2n), board(3n)], end: "hang" }], (_s, b) => b.length === 1);
    await w.done;
    expect(w.boards).toEqual([1n]);
    expect(kinds(w.states)).toEqual(["connecting", "live"]);
  });

  it("gives up on failures a retry cannot fix, with the server's error", async () => {
    for (const code of [Code.NotFound, Code.InvalidArgument, Code.OutOfRange, Code.Unauthenticated, Code.PermissionDenied]) {
      const w = await watch([{ updates: [], end: new ConnectError("no such board", code) }], () => false);
      const err = await w.done.then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(ConnectError);
      expect((err as ConnectError).code).toBe(code);
      expect(kinds(w.states)).toEqual(["connecting"]);
      expect(w.requests).toHaveLength(1);
    }
  });

  it("retries a full stream cap (RESOURCE_EXHAUSTED) and unknown failures", async () => {
    const w = await watch(
      [
        { updates: [], end: new ConnectError("too many streams", Code.ResourceExhausted) },
        { updates: [], end: new ConnectError("boom", Code.Internal) },
        { updates: [board(7n)], end: "hang" },
      ],
      (_s, b) => b.length === 1,
    );
    await w.done;
    expect(kinds(w.states)).toEqual(["connecting", "retrying 5", "connecting", "retrying 10", "connecting", "live"]);
  });

  it("reconnects a stream that went silent past the idle timeout", async () => {
    const w = await watch(
      [
        { updates: [board(1n)], end: "hang" },
        { updates: [board(2n)], end: "hang" },
      ],
      (_s, b) => b.length === 2,
      { idleTimeoutMs: 50 },
    );
    await w.done;
    expect(kinds(w.states)).toEqual(["connecting", "live", "retrying 5", "connecting", "live"]);
    const retry = w.states[2] as Extract<BoardState, { kind: "retrying" }>;
    expect(retry.error.code).toBe(Code.DeadlineExceeded);
  });

  it("resumes from the last position received: the first attempt from `resume`, heartbeats change nothing", async () => {
    const at = (version: bigint, epoch = "1700000000000.all") => create(StreamPositionSchema, { epoch, version });
    const w = await watch(
      [
        { updates: [{ ...board(1n), position: at(5n) }, heartbeat], end: unavailable },
        { updates: [], end: unavailable },
        { updates: [{ ...board(2n), position: at(9n, "1700000001000.all") }], end: unavailable },
        // a server not tracking positions: nothing to resume from
        { updates: [board(3n)], end: unavailable },
        { updates: [board(4n)], end: "hang" },
      ],
      (_s, b) => b.length === 4,
      { resume: at(2n) },
    );
    await w.done;
    expect(w.requests.map((r) => (r.resume ? `${r.resume.epoch}~${r.resume.version}` : "none"))).toEqual([
      "1700000000000.all~2",
      "1700000000000.all~5",
      "1700000000000.all~5",
      "1700000001000.all~9",
      "none",
    ]);
  });

  it("sends the headers of each attempt, a function called again for every reconnect", async () => {
    let token = 0;
    const seen: string[] = [];
    const transport = createRouterTransport(({ service }) =>
      service(PushService, {
        async *watchLeaderboard(_req, ctx) {
          seen.push(ctx.requestHeader.get("authorization") ?? "");
          if (seen.length < 2) throw unavailable;
          yield board(1n);
        },
      }),
    );
    const stop = new AbortController();
    await watchBoard(createClient(PushService, transport), {
      signal: stop.signal,
      backoff: noJitter,
      headers: () => ({ authorization: `Bearer t${++token}` }),
      onBoard: () => stop.abort(),
    });
    expect(seen).toEqual(["Bearer t1", "Bearer t2"]);
  });

  it("rejects with what a callback threw instead of reconnecting", async () => {
    const { push, requests } = fakePush([{ updates: [board(1n)], end: "hang" }]);
    const bug = new TypeError("render failed");
    const onBoard = () => {
      throw bug;
    };
    await expect(watchBoard(push, { onBoard })).rejects.toBe(bug);
    expect(requests).toHaveLength(1);
  });
});

describe("backoffDelay", () => {
  it("doubles from initialMs up to maxMs", () => {
    const none = () => 0;
    expect([0, 1, 2, 3, 4, 5, 10, 100].map((n) => backoffDelay(n, DEFAULT_BACKOFF, none))).toEqual([500, 1_000, 2_000, 4_000, 8_000, 10_000, 10_000, 10_000]);
  });

  it("takes up to `jitter` of each delay off at random", () => {
    expect(backoffDelay(2, DEFAULT_BACKOFF, () => 0)).toBe(2_000);
    expect(backoffDelay(2, DEFAULT_BACKOFF, () => 0.5)).toBe(1_500);
    expect(backoffDelay(2, DEFAULT_BACKOFF, () => 0.999_999)).toBe(1_000);
    const delays = Array.from({ length: 200 }, () => backoffDelay(3, DEFAULT_BACKOFF));
    expect(Math.min(...delays)).toBeGreaterThanOrEqual(2_000);
    expect(Math.max(...delays)).toBeLessThanOrEqual(4_000);
    expect(new Set(delays).size).toBeGreaterThan(10);
  });
});
