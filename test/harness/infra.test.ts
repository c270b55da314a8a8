import { afterAll, beforeAll, describe, expect, it } from "vitest";
import pg from "pg";
import { Redis } from "ioredis";
import { connect, StorageType, StringCodec } from "nats";
import { startInfra, stopAll, type NatsInstance, type PostgresInstance, type RedisInstance } from "./infra.ts";

async function query<T extends pg.QueryResultRow>(url: string, sql: string): Promise<T[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query<T>(sql)).rows;
  } finally {
    await client.end();
  }
}

describe("test infra harness", () => {
  let postgres: PostgresInstance;
  let redis: RedisInstance;
  let nats: NatsInstance;

  beforeAll(async () => {
    ({ postgres, redis, nats } = await startInfra());
  }, 120_000);

  // Safety net when an assertion fails midway; stopAll is idempotent.
  afterAll(() => stopAll(), 60_000);

  it("postgres answers and createDatabase gives a fresh db", async () => {
    expect(postgres.url).toBe(`postgres://postgres@127.0.0.1:${postgres.port}/scoreboard`);
    expect(await query(postgres.url, "select 1 as one")).toEqual([{ one: 1 }]);
    const other = await postgres.createDatabase("harness_extra");
    expect(await query<{ db: string }>(other, "select current_database() as db")).toEqual([{ db: "harness_extra" }]);
  });

  it("redis answers PING", async () => {
    const client = new Redis(redis.url, { lazyConnect: true, maxRetriesPerRequest: 1 });
    await client.connect();
    try {
      expect(await client.ping()).toBe("PONG");
    } finally {
      client.disconnect();
    }
  });

  it("nats JetStream data survives SIGKILL + restart", async () => {
    const sc = StringCodec();
    let nc = await connect({ servers: nats.url, reconnect: false });
    const jsm = await nc.jetstreamManager();
    await jsm.streams.add({ name: "HARNESS", subjects: ["harness.>"], storage: StorageType.File });
    const ack = await nc.jetstream().publish("harness.a", sc.encode("hello"), { msgID: "m-1" });
    expect(ack.duplicate).toBe(false);
    await nc.close();

    const before = nats.pid;
    await nats.kill();
    await nats.restart();
    expect(nats.pid).not.toBe(before);

    nc = await connect({ servers: nats.url, reconnect: false });
    try {
      const jsm2 = await nc.jetstreamManager();
      expect((await jsm2.streams.info("HARNESS")).state.messages).toBe(1);
      const msg = await jsm2.streams.getMessage("HARNESS", { seq: 1 });
      expect(sc.decode(msg.data)).toBe("hello");
      expect(msg.header.get("Nats-Msg-Id")).toBe("m-1");
      // The dedupe window is rebuilt from the store, so a redelivery is still recognised.
      const again = await nc.jetstream().publish("harness.a", sc.encode("hello"), { msgID: "m-1" });
      expect(again.duplicate).toBe(true);
    } finally {
      await nc.close();
    }
  }, 60_000);

  it("postgres data survives SIGKILL + restart", async () => {
    await query(postgres.url, "create table t (x int); insert into t values (42)");
    const before = postgres.pid;
    await postgres.kill();
    expect(() => process.kill(before!, 0)).toThrow();
    await postgres.restart();
    expect(postgres.pid).not.toBe(before);
    expect(await query(postgres.url, "select x from t")).toEqual([{ x: 42 }]);
  }, 60_000);

  it("stopAll leaves no process behind", async () => {
    const pids = [postgres.pid, redis.pid, nats.pid];
    for (const pid of pids) expect(() => process.kill(pid!, 0)).not.toThrow();
    await stopAll();
    for (const pid of pids) expect(() => process.kill(pid!, 0)).toThrow();
  }, 60_000);
});
