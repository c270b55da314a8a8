// Ranking's side of resumable streams: reads carry the board's epoch, which a
// Redis emptied and rebuilt from PostgreSQL changes; GetStandings reads many
// users at once on the real stores; BoardMoved tells who moved, and says
// "everything" for the boards a rebuild loaded.
import { fromBinary } from "@bufbuild/protobuf";
import { Redis } from "ioredis";
import { connect, type NatsConnection } from "nats";
import { afterAll, beforeAll, expect, inject, it } from "vitest";
import { BoardMovedSchema, type BoardMoved } from "@scoreboard/gen/scoreboard/v1/events_pb";
import { Subjects } from "@scoreboard/platform/nats";
import { periodAt } from "@scoreboard/platform/periods";
import { seasonIdOf } from "@scoreboard/platform/seasons";
import { compareEpochs } from "@scoreboard/platform/stream-position";
import { REBUILT_MARKER } from "../services/ranking/src/rebuild.js";
import { startRedis, type RedisInstance } from "./harness/infra.js";
import { eventually, startMesh, type Mesh } from "./harness/mesh.js";

let redis: RedisInstance;
let mesh: Mesh;
let nats: NatsConnection;
const moved: BoardMoved[] = [];

beforeAll(async () => {
  // Its own Redis, so this file can empty it without touching the others.
  redis = await startRedis();
  mesh = await startMesh({ ...inject("infra"), redisUrl: redis.url });
  await mesh.sql("INSERT INTO actions (action_id, points) VALUES ('a', 10), ('b', 20)");
  nats = await connect({ servers: inject("infra").natsUrl });
  const sub = nats.subscribe(Subjects.boardMoved("global"));
  void (async () => {
    for await (const msg of sub) moved.push(fromBinary(BoardMovedSchema, msg.data));
  })();
});
afterAll(async () => {
  await nats?.close();
  await mesh?.stop();
  await redis?.stop();
});

interface Entry {
  userId: string;
  rank: string;
  score: string;
}
/** RankingService over Connect JSON, straight to ranking. */
async function ranking<T>(method: string, body: object): Promise<T> {
  const res = await fetch(`${mesh.urls.ranking}/scoreboard.v1.RankingService/${method}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  const json = (await res.json()) as T;
  if (res.status !== 200) throw new Error(`${method}: ${res.status} ${JSON.stringify(json)}`);
  return json;
}
const leaderboard = (board = "global") => ranking<{ entries?: Entry[]; epoch: string }>("GetLeaderboard", { board, limit: 100 });
async function generation(): Promise<number> {
  const client = new Redis(redis.url);
  try {
    return Date.parse((await client.get(REBUILT_MARKER)) ?? "");
  } finally {
    client.disconnect();
  }
}

it("stamps reads with the rebuild's generation, reads many standings at once, and says who moved", async () => {
  expect((await mesh.submitAction("ea", "a")).status).toBe(200);
  expect((await mesh.submitAction("eb", "b")).status).toBe(200);
  expect((await mesh.submitAction("ea", "b")).status).toBe(200);
  const page = await eventually(async () => {
    const read = await leaderboard();
    return read.entries?.[0]?.score === "30" ? read : undefined;
  });
  expect(page.epoch).toBe(`${await generation()}.all`);
  const today = periodAt("daily", Date.now());
  expect((await leaderboard("daily")).epoch).toMatch(new RegExp(`^${await generation()}\\.(${seasonIdOf(new Date(today.startMs))}|\\d{8}T0000Z)$`));

  const standings = await ranking<{ standings: { userId: string; standing: { entry?: Entry; neighbourhood?: Entry[] } }[]; epoch: string }>("GetStandings", {
    userIds: ["eb", "nobody", "ea"],
    around: 1,
  });
  expect(standings.epoch).toBe(page.epoch);
  expect(standings.standings.map((s) => [s.userId, s.standing.entry?.rank, s.standing.neighbourhood?.map((e) => e.userId)])).toEqual([
    ["eb", "2", ["ea", "eb"]],
    ["nobody", undefined, undefined],
    ["ea", "1", ["ea", "eb"]],
  ]);

  // ea's second grant: from 10 to 30, in the same epoch.
  const move = await eventually(async () => moved.find((m) => m.moves.some((x) => x.userId === "ea" && x.toScore === 30n)));
  expect(move.epoch).toBe(page.epoch);
  expect(move.moves.find((x) => x.userId === "ea")).toMatchObject({ fromScore: 10n, toScore: 30n });
});

it("gives every board a new epoch when Redis was emptied and rebuilt, and says everything moved", async () => {
  const before = await leaderboard();
  const client = new Redis(redis.url);
  await client.flushall();
  client.disconnect();
  await mesh.kill("ranking");
  moved.length = 0;
  await mesh.start("ranking");
  // While the rebuild runs, reads answer from PostgreSQL in generation 0.
  const after = await eventually(
    async () => {
      const read = await leaderboard();
      return read.epoch !== before.epoch && !read.epoch.startsWith("0.") ? read : undefined;
    },
    20_000,
    "the rebuild's new epoch",
  );
  expect(compareEpochs(after.epoch, before.epoch)).toBeGreaterThan(0);
  expect(after.epoch).toBe(`${await generation()}.all`);
  expect(after.entries).toEqual(before.entries);
  await eventually(async () => moved.find((m) => m.everything && m.epoch === after.epoch), 10_000, "BoardMoved everything after the rebuild");
});

it("answers GetStandings from PostgreSQL while Redis is down, in the epoch it last read", async () => {
  const asked = { userIds: ["eb", "ea"] };
  type Standings = { standings: { standing: { entry?: Entry } }[]; epoch: string };
  const before = await ranking<Standings>("GetStandings", asked);
  await redis.kill("SIGKILL");
  try {
    const during = await ranking<Standings>("GetStandings", asked);
    expect(during.standings.map((s) => s.standing.entry)).toEqual(before.standings.map((s) => s.standing.entry));
    expect(during.epoch).toBe(before.epoch);
  } finally {
    await redis.restart();
  }
});
