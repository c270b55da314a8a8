// Score events travel to ranking in batches, and every grant keeps its own
// trace through them: its publish span is its grant's child, ranking's apply
// span for its event is that publish span's child, and the Redis scripts of
// that apply are its children, though ranking's client pipelines them.
import { afterAll, beforeAll, expect, inject, it } from "vitest";
import { eventually, startMesh, type Mesh } from "./harness/mesh.js";
import { OtlpKind, startOtlpReceiver, type OtlpReceiver, type ReceivedSpan } from "./harness/otlp-receiver.js";

const USERS = ["tia", "tom", "tess", "theo", "tilda"];
let receiver: OtlpReceiver;
let mesh: Mesh;

beforeAll(async () => {
  receiver = await startOtlpReceiver();
  mesh = await startMesh(inject("infra"), {
    OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
    OTEL_EXPORTER_OTLP_PROTOCOL: "http/json",
    OTEL_BSP_SCHEDULE_DELAY: "100",
    // Kicks within half a second of a relay cycle wait for its end: the
    // concurrent grants below leave in one batch.
    OUTBOX_COALESCE_MS: "500",
  });
  await mesh.sql(`INSERT INTO actions (action_id, points) VALUES ('warm-up', 1), ('quest', 5)`);
});

afterAll(async () => {
  await mesh?.stop();
  await receiver?.close();
});

it("keeps one trace per grant when their events share a JetStream message", async () => {
  // A cycle now, so the burst's kicks fall within the coalescing window (it may join them).
  expect((await mesh.submitAction("warm", "warm-up")).status).toBe(200);
  const answers = await Promise.all(USERS.map((userId) => mesh.submitAction(userId, "quest")));
  expect(answers.map((r) => r.status)).toEqual(USERS.map(() => 200));

  const byName = (spans: ReceivedSpan[], service: string, name: string, kind: number) =>
    spans.filter((s) => s.service === service && s.name === name && s.kind === kind);
  const chains = await eventually(
    async () => {
      const grants = receiver.spans.filter((s) => s.service === "scoreboard-score" && s.name === "grant" && s.attributes["scoreboard.outcome"] === "granted");
      const chains = grants.map((grant) => {
        const inTrace = receiver.spans.filter((s) => s.traceId === grant.traceId);
        const publish = byName(inTrace, "scoreboard-score", "publish score event", OtlpKind.producer).filter((s) => s.parentSpanId === grant.spanId);
        const apply = byName(inTrace, "scoreboard-ranking", "apply score event", OtlpKind.consumer).filter((s) =>
          publish.some((p) => p.spanId === s.parentSpanId),
        );
        const scripts = inTrace.filter((s) => s.service === "scoreboard-ranking" && s.name === "evalsha" && apply.some((a) => a.spanId === s.parentSpanId));
        return { grant, publish, apply, scripts };
      });
      return chains.length === USERS.length + 1 && chains.every((c) => c.publish.length === 1 && c.apply.length === 1 && c.scripts.length > 0)
        ? chains
        : undefined;
    },
    20_000,
    "a publish, an apply and its Redis scripts under every grant",
  );
  // Each grant its own trace, and its event its own spans, though the burst shared one message.
  expect(new Set(chains.map((c) => c.grant.traceId)).size).toBe(USERS.length + 1);
  // The largest message's grants: those that went out together.
  const byMessage = new Map<string, typeof chains>();
  for (const c of chains) {
    const id = String(c.publish[0]!.attributes["messaging.message.id"]);
    byMessage.set(id, [...(byMessage.get(id) ?? []), c]);
  }
  const burst = [...byMessage.values()].sort((a, b) => b.length - a.length)[0]!;
  expect(burst.length).toBeGreaterThanOrEqual(USERS.length);
  for (const c of burst) expect(c.publish[0]!.attributes["messaging.batch.message_count"]).toBe(burst.length);
  expect(new Set(burst.map((c) => c.apply[0]!.attributes["messaging.nats.stream_sequence"])).size).toBe(1);
  expect(new Set(burst.map((c) => c.apply[0]!.attributes["scoreboard.ledger_id"])).size).toBe(burst.length);
  for (const c of burst) expect(c.apply[0]!.attributes["messaging.destination.name"]).toBe("scoreboard.score.batch");
});
