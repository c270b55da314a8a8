// What was acknowledged survives a NATS outage: the grant commits with its
// outbox row, and the relay and the ranking consumer catch up when NATS is back.
import { afterAll, beforeAll, expect, inject, it } from "vitest";
import { connect } from "nats";
import { RankingConsumer, ScoresStream, Subjects } from "@scoreboard/platform/nats";
import { startNats, type NatsInstance } from "./harness/infra.js";
import { eventually, startMesh, type Mesh } from "./harness/mesh.js";

let nats: NatsInstance;
let mesh: Mesh;

beforeAll(async () => {
  // Its own NATS, so this file can take it away without touching the others.
  nats = await startNats();
  mesh = await startMesh({ ...inject("infra"), natsUrl: nats.url });
  await mesh.sql(`INSERT INTO actions (action_id, points) VALUES ('quest-1', 10), ('quest-2', 20), ('quest-3', 30)`);
});

afterAll(async () => {
  await mesh?.stop();
  await nats?.stop();
});

async function grant(userId: string, actionId: string) {
  const res = await mesh.submitAction(userId, actionId);
  return { status: res.status, body: (await res.json()) as { newScore?: number } };
}

async function leaderboard(): Promise<{ userId: string; score: number }[]> {
  const res = await fetch(`${mesh.urls.gateway}/api/leaderboard`);
  const text = await res.text();
  if (res.status !== 200) throw new Error(`GET /api/leaderboard answered ${res.status}: ${text}`);
  return (JSON.parse(text) as { data: { userId: string; score: number }[] }).data;
}

it("keeps grants made while NATS is down and delivers them when it returns", async () => {
  expect((await grant("uma", "quest-1")).status).toBe(200);
  await eventually(async () => ((await leaderboard()).some((e) => e.userId === "uma") ? true : undefined));

  await nats.kill("SIGKILL");
  const during = [await grant("uma", "quest-2"), await grant("vic", "quest-3")];
  expect(during.map((g) => g.status)).toEqual([200, 200]);
  expect(during[0]!.body.newScore).toBe(30);
  const pending = await mesh.sql<{ n: number }>("SELECT count(*)::int AS n FROM outbox WHERE published_at IS NULL");
  expect(pending[0]!.n).toBe(2);

  await nats.restart();
  const board = await eventually(
    async () => {
      const entries = await leaderboard();
      return entries.length === 2 && entries[0]!.score === 30 && entries[1]!.score === 30 ? entries : undefined;
    },
    30_000,
    "the leaderboard to catch up after NATS returned",
  );
  expect(board.map((e) => e.userId).sort()).toEqual(["uma", "vic"]);
  const published = await mesh.sql<{ n: number }>("SELECT count(*)::int AS n FROM outbox WHERE published_at IS NULL");
  expect(published[0]!.n).toBe(0);
});

it("counts nothing twice when ranking is SIGKILLed and restarted", async () => {
  await mesh.kill("ranking", "SIGKILL");
  expect((await grant("wes", "quest-1")).status).toBe(200);
  await mesh.start("ranking");
  const board = await eventually(async () => {
    const entries = await leaderboard();
    return entries.some((e) => e.userId === "wes") ? entries : undefined;
  }, 20_000);
  // PostgreSQL and Redis agree for every user.
  const totals = await mesh.sql<{ user_id: string; score: number }>("SELECT user_id, score::int FROM scores ORDER BY user_id");
  expect(Object.fromEntries(board.map((e) => [e.userId, e.score]))).toEqual(Object.fromEntries(totals.map((t) => [t.user_id, t.score])));
});

it("declares the stream and consumer again when someone deletes them", async () => {
  const nc = await connect({ servers: nats.url });
  await (await nc.jetstreamManager()).streams.delete("SCORES");
  await nc.close();
  expect((await grant("xia", "quest-3")).status).toBe(200);
  const board = await eventually(
    async () => {
      const entries = await leaderboard();
      return entries.some((e) => e.userId === "xia") ? entries : undefined;
    },
    20_000,
    "the grant after the stream was deleted",
  );
  expect(board.find((e) => e.userId === "xia")?.score).toBe(30);
});

it("catches up on the batches an earlier release's consumer skipped, once ranking widens its filter", async () => {
  await mesh.kill("ranking", "SIGTERM");
  const nc = await connect({ servers: nats.url });
  try {
    const jsm = await nc.jetstreamManager();
    // The consumer as releases before batches declared it: single events only.
    await jsm.consumers.update(ScoresStream.name, RankingConsumer.durable_name, { ...RankingConsumer, filter_subject: Subjects.scoreChanged });
    expect((await grant("yan", "quest-2")).status).toBe(200);
    await eventually(
      async () => {
        const pending = await mesh.sql<{ n: number }>("SELECT count(*)::int AS n FROM outbox WHERE published_at IS NULL");
        return pending[0]!.n === 0 ? true : undefined;
      },
      10_000,
      "yan's batch in SCORES",
    );
    // An old ranking takes a later single event, and with it goes past yan's batch.
    await nc.jetstream().publish(Subjects.scoreChanged, new TextEncoder().encode("a later single event"));
    const old = await nc.jetstream().consumers.get(ScoresStream.name, RankingConsumer.durable_name);
    const single = await old.next({ expires: 5_000 });
    expect(single?.subject).toBe(Subjects.scoreChanged);
    single!.ack();
    expect((await jsm.consumers.info(ScoresStream.name, RankingConsumer.durable_name)).num_pending).toBe(0);
  } finally {
    await nc.close();
  }
  await mesh.start("ranking");
  const board = await eventually(
    async () => {
      const entries = await leaderboard();
      return entries.some((e) => e.userId === "yan") ? entries : undefined;
    },
    20_000,
    "yan's skipped grant on the leaderboard",
  );
  expect(board.find((e) => e.userId === "yan")?.score).toBe(20);
});
