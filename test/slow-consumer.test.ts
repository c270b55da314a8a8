// A client that stops reading costs the gateway a bounded amount of memory:
// over HTTP/2 (how Envoy reaches the gateway), a stream whose window the
// client never opens is sent only what fits, then the gateway keeps just the
// latest state for it instead of queueing every change; when the client reads
// again it gets a few messages, ending with the latest state.
import { afterAll, beforeAll, expect, inject, it } from "vitest";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { LeaderboardUpdateSchema, WatchLeaderboardRequestSchema, type LeaderboardUpdate } from "@scoreboard/gen/scoreboard/v1/push_pb";
import { LeanHttp2Connection } from "./harness/lean-h2.js";
import { eventually, startMesh, type Mesh } from "./harness/mesh.js";

let mesh: Mesh;

beforeAll(async () => {
  mesh = await startMesh(inject("infra"));
  await mesh.sql("INSERT INTO actions (action_id, points) SELECT 'a' || g, 100 FROM generate_series(1, 100) g");
  await mesh.sql("INSERT INTO actions (action_id, points) VALUES ('join', 1)");
});
afterAll(async () => {
  await mesh?.stop();
});

/** A WatchLeaderboard stream (Connect, protobuf) of the global top 100 on `connection`, collecting its updates. */
function watchTop100(connection: LeanHttp2Connection): LeaderboardUpdate[] {
  const updates: LeaderboardUpdate[] = [];
  const message = toBinary(WatchLeaderboardRequestSchema, create(WatchLeaderboardRequestSchema, { board: "global", limit: 100 }));
  const request = Buffer.alloc(5 + message.length);
  request.writeUInt32BE(message.length, 1);
  request.set(message, 5);
  let buffer = Buffer.alloc(0);
  connection.request(
    {
      ":method": "POST",
      ":path": "/scoreboard.v1.PushService/WatchLeaderboard",
      ":scheme": "http",
      ":authority": new URL(mesh.urls.gateway).host,
      "content-type": "application/connect+proto",
      "connect-protocol-version": "1",
    },
    request,
    (chunk) => {
      buffer = Buffer.concat([buffer, chunk]);
      while (buffer.length >= 5 && buffer.length >= 5 + buffer.readUInt32BE(1)) {
        const end = 5 + buffer.readUInt32BE(1);
        if (buffer[0] === 0) updates.push(fromBinary(LeaderboardUpdateSchema, buffer.subarray(5, end)));
        buffer = buffer.subarray(end);
      }
    },
  );
  return updates;
}

const leaderScore = (updates: LeaderboardUpdate[]) => updates.findLast((u) => !u.heartbeat)?.entries.find((e) => e.userId === "leader")?.score;

it("sends a client that stopped reading only what fits, then just the latest state", async () => {
  // A full top 100, so that each update is a few KiB.
  for (let i = 0; i < 100; i++) expect((await mesh.submitAction(`player-${String(i).padStart(3, "0")}`, "join")).status).toBe(200);

  const reading = new LeanHttp2Connection(mesh.urls.gateway);
  const stuck = new LeanHttp2Connection(mesh.urls.gateway, { streamWindow: 1_024 }); // reads 1 KiB, then nothing
  await Promise.all([reading.ready, stuck.ready]);
  try {
    const everything = watchTop100(reading);
    const latestOnly = watchTop100(stuck);
    await eventually(async () => (everything.length > 0 ? true : undefined), 10_000, "the first update");

    // 40 changes, each its own message (push sends at most one per 100 ms per board).
    for (let n = 1; n <= 40; n++) {
      expect((await mesh.submitAction("leader", `a${n}`)).status).toBe(200);
      await eventually(async () => (leaderScore(everything) === BigInt(100 * n) ? true : undefined), 10_000, `change ${n} on the reading stream`);
      await new Promise((r) => setTimeout(r, 110));
    }
    const sent = everything.filter((u) => !u.heartbeat).length;
    expect(sent).toBeGreaterThanOrEqual(40);

    // The stuck client opens its window: it gets what the gateway held for it.
    stuck.openWindows();
    await eventually(async () => (leaderScore(latestOnly) === 4_000n ? true : undefined), 10_000, "the latest state on the stuck stream");
    await new Promise((r) => setTimeout(r, 300)); // anything still queued would arrive now
    const received = latestOnly.filter((u) => !u.heartbeat);
    // What was held: the few messages written before the stream pushed back
    // (the gateway's 16 KiB stream buffer, STREAM_BUFFER_BYTES), then the one latest state; not 40.
    expect(received.length).toBeLessThan(sent / 3);
    expect(leaderScore(received)).toBe(4_000n);
    // Sequence numbers count what this stream was sent: the states it skipped were never queued.
    expect(received.at(-1)!.sequence).toBe(BigInt(received.length));
  } finally {
    reading.close();
    stuck.close();
  }
});
