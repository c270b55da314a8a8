import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, createRouterTransport } from "@connectrpc/connect";
import { LeaderboardEntrySchema, StreamPositionSchema, type StreamPosition } from "@scoreboard/gen/scoreboard/v1/leaderboard_pb";
import {
  LiveService,
  type LiveUpdate,
  type LiveUpdateSchema,
  SubscriptionSchema,
  type WatchRequest,
  type WatchStandingRequest,
} from "@scoreboard/gen/scoreboard/v1/live_pb";
import { afterEach, describe, expect, it } from "vitest";
import type { StreamState } from "./reconnect.js";
import { standingSubscription, topSubscription, watchLive, watchStanding } from "./watch-live.js";

type Update = MessageInitShape<typeof LiveUpdateSchema>;
interface Script {
  updates: Update[];
  end: "return" | "hang" | ConnectError;
}

// As in watch-board.test.ts: the router transport does not end a handler
// when the client aborts, so a hanging handler waits on this.
let releaseHangs: () => void = () => undefined;
let hung = new Promise<void>((resolve) => (releaseHangs = resolve));
afterEach(() => {
  releaseHangs();
  hung = new Promise<void>((resolve) => (releaseHangs = resolve));
});

/** A LiveService answering call n of either method with scripts[n] (the last one repeats). */
function fakeLive(scripts: Script[]) {
  const watches: WatchRequest[] = [];
  const standings: WatchStandingRequest[] = [];
  const authorizations: string[] = [];
  const play = async function* (calls: number, authorization: string | null) {
    const script = scripts[Math.min(calls, scripts.length - 1)]!;
    authorizations.push(authorization ?? "");
    for (const update of script.updates) yield update;
    if (script.end === "hang") await hung;
    else if (script.end instanceof ConnectError) throw script.end;
  };
  const transport = createRouterTransport(({ service }) =>
    service(LiveService, {
      async *watch(req, ctx) {
        watches.push(req);
        yield* play(watches.length - 1, ctx.requestHeader.get("authorization"));
      },
      async *watchStanding(req, ctx) {
        standings.push(req);
        yield* play(standings.length - 1, ctx.requestHeader.get("authorization"));
      },
    }),
  );
  return { live: createClient(LiveService, transport), watches, standings, authorizations };
}

const at = (version: bigint, epoch = "1700000000000.all") => create(StreamPositionSchema, { epoch, version });
const entry = (userId: string, rank: bigint, score: bigint) => create(LeaderboardEntrySchema, { userId, username: userId, rank, score });
const top = (subscription: string, position: StreamPosition, score: bigint): Update => ({
  subscription,
  board: "global",
  position,
  state: { case: "top", value: { entries: [entry("alice", 1n, score)] } },
});
const standing = (subscription: string, position: StreamPosition, rank: bigint): Update => ({
  subscription,
  board: "global",
  position,
  state: { case: "standing", value: { entry: entry("bob", rank, 5n), neighbourhood: [entry("bob", rank, 5n)] } },
});
const heartbeat: Update = { heartbeat: true };
const unavailable = new ConnectError("gateway restarting", Code.Unavailable);
const noJitter = { initialMs: 5, maxMs: 40, multiplier: 2, jitter: 0 };
const resumes = (request: WatchRequest) =>
  Object.fromEntries(request.subscriptions.map((s) => [s.id, s.resume ? `${s.resume.epoch}~${s.resume.version}` : "none"]));

describe("watchLive", () => {
  it("names the subscriptions, passes updates on, skips heartbeats and resumes each subscription from its own last position", async () => {
    const { live, watches, authorizations } = fakeLive([
      { updates: [top("top:global", at(10n), 1n), heartbeat, standing("mine", at(11n), 4n)], end: unavailable },
      { updates: [standing("mine", at(12n), 3n)], end: unavailable },
      { updates: [heartbeat], end: "hang" },
    ]);
    const updates: LiveUpdate[] = [];
    const states: StreamState[] = [];
    const stop = new AbortController();
    let token = 0;
    await watchLive(
      live,
      [topSubscription("global", 5), standingSubscription("global", 2, "mine"), { ...topSubscription("weekly", 3), resume: at(7n, "1.20261130T0000Z") }],
      {
        onUpdate: (update) => updates.push(update),
        onState: (state) => {
          states.push(state);
          if (states.filter((s) => s.kind === "live").length === 3) stop.abort();
        },
      },
      { signal: stop.signal, backoff: noJitter, headers: () => ({ authorization: `Bearer t${++token}` }) },
    );
    expect(updates.map((u) => `${u.subscription} ${u.state.case}`)).toEqual(["top:global top", "mine standing", "mine standing"]);
    expect(watches[0]!.subscriptions.map((s) => [s.id, s.target.case, s.target.value?.board])).toEqual([
      ["top:global", "top", "global"],
      ["mine", "standing", "global"],
      ["top:weekly", "top", "weekly"],
    ]);
    expect(watches[0]!.subscriptions[0]!.target.value).toMatchObject({ limit: 5 });
    expect(watches[0]!.subscriptions[1]!.target.value).toMatchObject({ around: 2 });
    expect(watches.map(resumes)).toEqual([
      { "top:global": "none", mine: "none", "top:weekly": "1.20261130T0000Z~7" },
      { "top:global": "1700000000000.all~10", mine: "1700000000000.all~11", "top:weekly": "1.20261130T0000Z~7" },
      { "top:global": "1700000000000.all~10", mine: "1700000000000.all~12", "top:weekly": "1.20261130T0000Z~7" },
    ]);
    expect(authorizations).toEqual(["Bearer t1", "Bearer t2", "Bearer t3"]);
  });

  it("leaves the caller's subscriptions as they were", async () => {
    const { live } = fakeLive([{ updates: [top("top:global", at(1n), 1n)], end: "hang" }]);
    const mine = create(SubscriptionSchema, topSubscription());
    const stop = new AbortController();
    await watchLive(live, [mine], { onUpdate: () => stop.abort() }, { signal: stop.signal });
    expect(mine.id).toBe("");
    expect(mine.resume).toBeUndefined();
  });

  it("gives up on a refused token with the server's error, and rejects with what a callback threw", async () => {
    const refused = fakeLive([{ updates: [], end: new ConnectError("a standing needs a token", Code.Unauthenticated) }]);
    const states: StreamState[] = [];
    const err = await watchLive(refused.live, [standingSubscription()], { onUpdate: () => undefined, onState: (s) => states.push(s) }).catch((e: unknown) => e);
    expect(ConnectError.from(err).code).toBe(Code.Unauthenticated);
    expect(states.map((s) => s.kind)).toEqual(["connecting"]);
    expect(refused.watches).toHaveLength(1);

    const buggy = fakeLive([{ updates: [top("top:global", at(1n), 1n)], end: "hang" }]);
    const bug = new TypeError("render failed");
    const onUpdate = () => {
      throw bug;
    };
    await expect(watchLive(buggy.live, [topSubscription()], { onUpdate })).rejects.toBe(bug);
  });
});

describe("watchStanding", () => {
  it("passes the standing on and resumes from its last position after a reconnect", async () => {
    const { live, standings, authorizations } = fakeLive([
      { updates: [standing("standing:daily", at(20n), 9n), heartbeat], end: unavailable },
      { updates: [], end: new ConnectError("too many streams", Code.ResourceExhausted) },
      { updates: [standing("standing:daily", at(21n), 8n)], end: "hang" },
    ]);
    const ranks: bigint[] = [];
    const versions: bigint[] = [];
    const stop = new AbortController();
    await watchStanding(live, {
      board: "daily",
      around: 2,
      signal: stop.signal,
      backoff: noJitter,
      headers: { authorization: "Bearer me" },
      onStanding: (s, update) => {
        ranks.push(s.entry?.rank ?? -1n);
        versions.push(update.position?.version ?? -1n);
        if (ranks.length === 2) stop.abort();
      },
    });
    expect(ranks).toEqual([9n, 8n]);
    expect(versions).toEqual([20n, 21n]);
    expect(standings.map((r) => [r.board, r.around, r.resume?.version ?? "none"])).toEqual([
      ["daily", 2, "none"],
      ["daily", 2, 20n],
      ["daily", 2, 20n],
    ]);
    expect(authorizations).toEqual(["Bearer me", "Bearer me", "Bearer me"]);
  });
});
