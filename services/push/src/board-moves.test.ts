// WatchBoardMoves: the relay of ranking's BoardMoved (one NATS subscription
// per watched board), each stream's first message and its backlog.
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { Code, ConnectError, createClient, createRouterTransport } from "@connectrpc/connect";
import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { type BoardMoved, BoardMovedSchema } from "@scoreboard/gen/scoreboard/v1/events_pb";
import { PushService } from "@scoreboard/gen/scoreboard/v1/push_pb";
import { createLogger } from "@scoreboard/platform/logger";
import { Subjects } from "@scoreboard/platform/nats";
import { BoardMovesRelay, MovesBacklog, boardMovesStream } from "./board-moves.js";
import { FakeNats, top } from "./fake-nats.js";
import { TopNFanout, type BoardSnapshot } from "./fanout.js";
import { createPushService } from "./service.js";

const EPOCH = "1000.all";
const logger = createLogger("push-moves-test", "silent");
const tick = (ms = 10) => new Promise((resolve) => setTimeout(resolve, ms));

function within<T>(promise: Promise<T>, ms = 100): Promise<T | "timeout"> {
  return Promise.race([promise, new Promise<"timeout">((resolve) => setTimeout(() => resolve("timeout"), ms))]);
}

let nats: FakeNats;
let fanout: TopNFanout;
let relay: BoardMovesRelay;
let snapshotOf: (board: string) => Promise<BoardSnapshot>;
const closers: Array<() => Promise<void>> = [];

beforeEach(() => {
  nats = new FakeNats();
  snapshotOf = async () => ({ top: top(3), asOf: timestampFromMs(Date.now()), epoch: EPOCH });
  fanout = new TopNFanout((board) => snapshotOf(board), logger, 3_600_000, 0);
  fanout.start(nats.connection);
  relay = new BoardMovesRelay(fanout, logger);
});

afterEach(async () => {
  for (const close of closers.splice(0)) await close();
  relay.stop();
  fanout.stop();
});

/** A stream as the handler runs it, with a signal this test controls. */
function watch(board = "global", counter?: { inc: () => void; dec: () => void }) {
  const abort = new AbortController();
  const stream = boardMovesStream(relay, board, abort.signal, counter);
  const next = async (): Promise<BoardMoved> => {
    const result = await stream.next();
    if (result.done) throw new Error("stream ended");
    return result.value;
  };
  const close = async () => {
    abort.abort();
    await stream.return(undefined);
  };
  closers.push(close);
  return { next, close };
}

const move = (userId: string, toScore: number, fromScore?: number) => ({
  userId,
  toScore: BigInt(toScore),
  fromScore: fromScore === undefined ? undefined : BigInt(fromScore),
});
const movedUsers = (moved: BoardMoved) => moved.moves.map((m) => `${m.userId}:${m.fromScore ?? "?"}>${m.toScore}`);

describe("WatchBoardMoves", () => {
  beforeEach(() => relay.start(nats.connection));

  it("starts with the board's epoch and no moves, then relays each announcement in order", async () => {
    const client = createClient(
      PushService,
      createRouterTransport((router) => router.service(PushService, createPushService(fanout, relay))),
    );
    const abort = new AbortController();
    closers.push(async () => abort.abort());
    const stream = client.watchBoardMoves({ board: "" }, { signal: abort.signal })[Symbol.asyncIterator]();
    const first = (await stream.next()).value as BoardMoved;
    expect(first).toMatchObject({ board: "global", epoch: EPOCH, moves: [], everything: false });
    nats.boardMoved("global", { epoch: EPOCH, moves: [move("a", 10, 5)] });
    nats.boardMoved("global", { epoch: EPOCH, moves: [move("b", 20), move("c", 30, 25)] });
    const seen: string[] = [];
    while (seen.length < 3) seen.push(...movedUsers((await stream.next()).value as BoardMoved));
    expect(seen).toEqual(["a:5>10", "b:?>20", "c:25>30"]);
  });

  it("relays only the watched board's moves, under the name the stream gave (daily too)", async () => {
    const w = watch("daily");
    expect(await w.next()).toMatchObject({ board: "daily", epoch: EPOCH });
    expect(nats.subscribed).toContain(Subjects.boardMoved("daily"));
    const pending = w.next();
    nats.boardMoved("global", { epoch: EPOCH, moves: [move("x", 1)] });
    expect(await within(pending)).toBe("timeout");
    nats.boardMoved("daily", { epoch: EPOCH, moves: [move("y", 2)] });
    expect(movedUsers(await pending)).toEqual(["y:?>2"]);
  });

  it("tells every stream `everything` with the new epoch when the board's epoch changes", async () => {
    const [a, b] = [watch(), watch()];
    await a.next();
    await b.next();
    nats.boardChanged("global", top(3), { epoch: "2000.all" });
    for (const w of [a, b]) expect(await w.next()).toMatchObject({ board: "global", epoch: "2000.all", everything: true, moves: [] });
  });

  it("tells every stream `everything` after a NATS reconnect", async () => {
    const w = watch();
    await w.next();
    nats.reconnect();
    expect(await w.next()).toMatchObject({ epoch: EPOCH, everything: true });
  });

  it("merges the moves waiting for a reader that is not reading, in order, without changing what other streams get", async () => {
    const [slow, other] = [watch(), watch()];
    await slow.next();
    await other.next();
    for (let i = 1; i <= 3; i++) nats.boardMoved("global", { epoch: EPOCH, moves: [move(`u${i}`, i * 10)] });
    expect(movedUsers(await slow.next())).toEqual(["u1:?>10", "u2:?>20", "u3:?>30"]);
    expect(movedUsers(await other.next())).toEqual(["u1:?>10", "u2:?>20", "u3:?>30"]);
    expect(await within(slow.next())).toBe("timeout");
  });

  it("replaces more than 2,000 waiting moves by one `everything` of the latest epoch", async () => {
    const w = watch();
    await w.next();
    const many = (n: number, prefix: string) => Array.from({ length: n }, (_, i) => move(`${prefix}${i}`, i));
    nats.boardMoved("global", { epoch: EPOCH, moves: many(1_500, "a") });
    nats.boardMoved("global", { epoch: EPOCH, moves: many(501, "b") });
    const merged = await w.next();
    expect(merged).toMatchObject({ epoch: EPOCH, everything: true, moves: [] });
    nats.boardMoved("global", { epoch: EPOCH, moves: many(2_000, "c") });
    expect((await w.next()).moves).toHaveLength(2_000); // up to 2,000 still listed
  });

  it("subscribes once per board for all its streams and unsubscribes after the last", async () => {
    const subject = Subjects.boardMoved("weekly");
    const [a, b] = [watch("weekly"), watch("weekly")];
    await a.next();
    await b.next();
    expect(nats.subscribed.filter((s) => s === subject)).toHaveLength(1);
    await a.close();
    expect(nats.subscribed).toContain(subject);
    await b.close();
    expect(nats.subscribed).not.toContain(subject);
    expect(relay.listenerCount).toBe(0);
    expect(fanout.watcherCount).toBe(0);
  });

  it("counts its open streams", async () => {
    let open = 0;
    const w = watch("global", { inc: () => (open += 1), dec: () => (open -= 1) });
    await w.next();
    expect(open).toBe(1);
    await w.close();
    expect(open).toBe(0);
  });

  it("fails the stream with the snapshot source's error and keeps no subscription", async () => {
    snapshotOf = async () => {
      throw new ConnectError("ranking is unavailable", Code.Unavailable);
    };
    const err = await watch("monthly")
      .next()
      .catch((e: unknown) => ConnectError.from(e));
    expect(err).toMatchObject({ code: Code.Unavailable });
    expect(nats.subscribed).not.toContain(Subjects.boardMoved("monthly"));
    expect(relay.listenerCount).toBe(0);
  });

  it("rejects an invalid board with INVALID_ARGUMENT", async () => {
    const client = createClient(
      PushService,
      createRouterTransport((router) => router.service(PushService, createPushService(fanout, relay))),
    );
    const err = await client
      .watchBoardMoves({ board: "BAD board" })
      [Symbol.asyncIterator]()
      .next()
      .catch((e: unknown) => ConnectError.from(e));
    expect(err).toMatchObject({ code: Code.InvalidArgument });
  });
});

describe("WatchBoardMoves before push has NATS", () => {
  it("starts the stream, then relays once subscribed", async () => {
    const w = watch();
    expect(await w.next()).toMatchObject({ epoch: EPOCH, moves: [] });
    expect(nats.subscribed).not.toContain(Subjects.boardMoved("global"));
    relay.start(nats.connection);
    nats.boardMoved("global", { epoch: EPOCH, moves: [move("late", 7)] });
    expect(movedUsers(await w.next())).toEqual(["late:?>7"]);
    await tick();
  });
});

describe("MovesBacklog", () => {
  const moved = (epoch: string, users: string[], everything = false) =>
    create(BoardMovedSchema, { board: "global", epoch, everything, moves: users.map((u) => move(u, 1)) });

  it("turns moves of two epochs into `everything` of the newer", () => {
    const backlog = new MovesBacklog();
    backlog.add(moved("2000.all", ["a"]));
    backlog.add(moved("1000.all", ["b"]));
    expect(backlog.take()).toMatchObject({ epoch: "2000.all", everything: true, moves: [] });
    expect(backlog.take()).toBeUndefined();
  });

  it("keeps `everything` once set, at the latest epoch", () => {
    const backlog = new MovesBacklog(10);
    backlog.add(moved("1000.all", [], true));
    backlog.add(moved("1000.all", ["a"]));
    expect(backlog.take()).toMatchObject({ epoch: "1000.all", everything: true });
    backlog.add(
      moved(
        "1000.all",
        Array.from({ length: 11 }, (_, i) => `u${i}`),
      ),
    );
    expect(backlog.take()).toMatchObject({ everything: true, moves: [] });
  });
});
