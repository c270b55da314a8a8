// JetStream as deployed in production, on a three-node NATS cluster: score
// and ranking create the streams with the configured replicas and storage,
// a restart of score (which declares SCORES at every start) leaves what an
// operator set since as it is, and grants still reach the board when one of
// the three NATS servers is gone.
import { afterAll, beforeAll, expect, inject, it } from "vitest";
import { connect, nanos, type JetStreamManager, type NatsConnection } from "nats";
import { DeadLettersStream, ScoresStream } from "@scoreboard/platform/nats";
import { startNatsCluster, type NatsClusterInstance } from "./harness/infra.js";
import { eventually, startMesh, type Mesh } from "./harness/mesh.js";

let cluster: NatsClusterInstance;
let mesh: Mesh;
let nc: NatsConnection;
let jsm: JetStreamManager;

beforeAll(async () => {
  cluster = await startNatsCluster(3);
  // One seed, as a Kubernetes Service gives: clients learn the other servers from it.
  mesh = await startMesh({ ...inject("infra"), natsUrl: cluster.nodes[0]!.url }, { JETSTREAM_REPLICAS: "3", JETSTREAM_STORAGE: "file" });
  await mesh.sql(`INSERT INTO actions (action_id, points) VALUES ('quest-1', 10)`);
  nc = await connect({ servers: cluster.url.split(",") });
  jsm = await nc.jetstreamManager();
});

afterAll(async () => {
  await nc?.close();
  await mesh?.stop();
  await cluster?.stop();
});

async function scoreOf(userId: string): Promise<number | undefined> {
  const res = await fetch(`${mesh.urls.gateway}/api/leaderboard`);
  if (res.status !== 200) return undefined;
  return ((await res.json()) as { data: { userId: string; score: number }[] }).data.find((e) => e.userId === userId)?.score;
}

it("creates the streams on a fresh NATS with the configured replicas and storage", async () => {
  for (const name of [ScoresStream.name, DeadLettersStream.name]) {
    const info = await jsm.streams.info(name);
    expect(info.config, name).toMatchObject({
      num_replicas: 3,
      storage: "file",
      subjects: (name === ScoresStream.name ? ScoresStream : DeadLettersStream).subjects,
    });
    // A leader and two followers, each on its own server.
    expect(new Set([info.cluster?.leader, ...(info.cluster?.replicas ?? []).map((r) => r.name)]).size, name).toBe(3);
  }
});

it("keeps the replicas and an operator's limits when score restarts configured otherwise", async () => {
  const thirtyDays = nanos(30 * 24 * 3_600_000);
  // What `nats stream edit SCORES --max-age 30d --max-bytes 1GiB` does.
  await jsm.streams.update(ScoresStream.name, { max_age: thirtyDays, max_bytes: 1 << 30 });

  // A deploy without the production values: one replica, the default.
  await mesh.kill("score", "SIGTERM");
  await mesh.start("score", { JETSTREAM_REPLICAS: "1" });

  const info = await jsm.streams.info(ScoresStream.name);
  expect(info.config).toMatchObject({ num_replicas: 3, storage: "file", max_age: thirtyDays, max_bytes: 1 << 30 });
  // Each difference is named once in score's log, not silently rewritten.
  // Score may answer its health check before its log lines have crossed the pipe.
  const warnedSettings = () =>
    mesh.logs.score
      .filter((line) => line.includes("differs from the configuration"))
      .map((line) => (JSON.parse(line) as { setting: string }).setting)
      .sort();
  await eventually(async () => (warnedSettings().length >= 2 ? true : undefined), 5_000, "score's drift warnings");
  expect(warnedSettings()).toEqual(["max_age", "num_replicas"]);

  expect((await mesh.submitAction("ada", "quest-1")).status).toBe(200);
  await eventually(async () => ((await scoreOf("ada")) === 10 ? true : undefined), 20_000, "ada's grant on the board");
});

it("takes grants to the board while one of the three NATS servers is down", async () => {
  const leader = (await jsm.streams.info(ScoresStream.name)).cluster?.leader;
  // The stream's leader is the loss that matters: the other two elect a new one.
  const node = cluster.nodes.find((n) => n.serverName === leader) ?? cluster.nodes[0]!;
  await node.kill("SIGKILL");
  try {
    // The grant commits to PostgreSQL whatever NATS does; the board shows that JetStream took it.
    expect((await mesh.submitAction("bea", "quest-1")).status).toBe(200);
    // Publishes wait for the new leader; ranking's pull notices the lost
    // consumer leader only after two missed 15 s heartbeats (nats.js consume()).
    await eventually(async () => ((await scoreOf("bea")) === 10 ? true : undefined), 90_000, "bea's grant on the board");
  } finally {
    await node.restart();
  }
}, 120_000);
