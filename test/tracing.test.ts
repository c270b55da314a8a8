// One trace follows a score from the REST call through gateway (its rate
// limit in Redis), score (the grant's SQL), the outbox relay's JetStream
// publish, ranking (its Redis scripts) and push, exported over OTLP/HTTP to a
// receiver in this process.
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { eventually, startMesh, type Mesh } from "./harness/mesh.js";
import { OtlpKind, datastoreSpans, startOtlpReceiver, type OtlpReceiver, type ReceivedSpan } from "./harness/otlp-receiver.js";

let receiver: OtlpReceiver;
let mesh: Mesh;

beforeAll(async () => {
  receiver = await startOtlpReceiver();
  mesh = await startMesh(inject("infra"), {
    OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
    OTEL_EXPORTER_OTLP_PROTOCOL: "http/json",
    OTEL_BSP_SCHEDULE_DELAY: "100",
    PUSH_REFRESH_INTERVAL_MS: "200",
    // score logs each grant at debug (the audit log is the record).
    LOG_LEVEL: "debug",
  });
  await mesh.sql(`INSERT INTO actions (action_id, points, description) VALUES ('daily-login', 5, '')`);
});

afterAll(async () => {
  await mesh?.stop();
  await receiver?.close();
});

function only(spans: ReceivedSpan[], service: string, name: string, kind?: number): ReceivedSpan[] {
  return spans.filter((s) => s.service === service && s.name === name && (kind === undefined || s.kind === kind));
}

describe("tracing", () => {
  it("follows one action from the REST call to push's fan-out in one trace", async () => {
    // The gateway opens its global top-100 feed from push once it runs; the
    // fan-out asserted below needs that stream to be there before the grant.
    await eventually(
      async () => {
        const text = await (await fetch(`${mesh.urls.push}/metrics`)).text();
        const open = Number(/^sb_open_streams\{[^}]*kind="watch"[^}]*\} (\d+)/m.exec(text)?.[1] ?? 0);
        return open > 0 ? open : undefined;
      },
      15_000,
      "the gateway's stream open on push",
    );
    const token = await mesh.token("tracy", { name: "Tracy" });
    const res = await fetch(`${mesh.urls.gateway}/api/actions`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
      body: JSON.stringify({ actionId: "daily-login" }),
    });
    expect(res.status).toBe(200);

    const route = await eventually(
      async () => only(receiver.spans, "scoreboard-gateway", "POST /api/actions", OtlpKind.server)[0],
      15_000,
      "the gateway's route span",
    );
    const trace = await eventually(
      async () => {
        // Each process exports on its own schedule: wait until the chain is whole.
        const spans = receiver.spans.filter((s) => s.traceId === route.traceId);
        const ids = new Set(spans.map((s) => s.spanId));
        const whole = spans.every((s) => !s.parentSpanId || ids.has(s.parentSpanId));
        // Push exports its fan-outs on its own schedule too: wait for the global board's.
        const globalFanout = spans.some(
          (s) => s.service === "scoreboard-push" && s.name === "fan out board change" && s.attributes["scoreboard.board"] === "global",
        );
        const rankingRedis = datastoreSpans(spans, "scoreboard-ranking", "redis").length > 0;
        return whole && globalFanout && rankingRedis ? spans : undefined;
      },
      20_000,
      "a whole trace down to push's fan-out",
    );

    expect(new Set(trace.map((s) => s.service))).toEqual(new Set(["scoreboard-gateway", "scoreboard-score", "scoreboard-ranking", "scoreboard-push"]));
    const ids = new Set(trace.map((s) => s.spanId));
    for (const span of trace) {
      if (span.parentSpanId) expect(ids, `${span.service} ${span.name}'s parent`).toContain(span.parentSpanId);
    }
    expect(route.parentSpanId).toBe("");

    const call = only(trace, "scoreboard-gateway", "scoreboard.v1.ScoreService/SubmitAction", OtlpKind.client);
    expect(call).toHaveLength(1);
    expect(call[0]!.parentSpanId).toBe(route.spanId);
    const served = only(trace, "scoreboard-score", "scoreboard.v1.ScoreService/SubmitAction", OtlpKind.server);
    expect(served).toHaveLength(1);
    expect(served[0]!.parentSpanId).toBe(call[0]!.spanId);
    const grant = only(trace, "scoreboard-score", "grant");
    expect(grant).toHaveLength(1);
    expect(grant[0]!.parentSpanId).toBe(served[0]!.spanId);
    expect(grant[0]!.attributes["scoreboard.outcome"]).toBe("granted");

    // The gateway's rate limit: its script in Redis, under the route, before the call to score.
    const limit = datastoreSpans(trace, "scoreboard-gateway", "redis");
    expect(limit.length).toBeGreaterThan(0);
    for (const span of limit) expect(span).toMatchObject({ parentSpanId: route.spanId, kind: OtlpKind.client, name: "evalsha" });
    // The grant's transaction: one statement writes the ledger, total, outbox and audit rows.
    const sql = datastoreSpans(trace, "scoreboard-score", "postgresql", grant[0]);
    expect(sql).toHaveLength(1);
    expect(sql[0]!.kind).toBe(OtlpKind.client);
    expect(sql[0]!.attributes["db.query.text"]).toMatch(/sb_grant_batch\(\$1::jsonb, \$2\)/);
    // Statements outside any request (the relay's polls, probes, the backlog gauge) make no traces of their own.
    expect(receiver.spans.filter((s) => s.parentSpanId === "" && s.attributes["db.system.name"] !== undefined)).toEqual([]);

    // The relay publishes later, from the context stored with the outbox row.
    const publish = only(trace, "scoreboard-score", "publish score event", OtlpKind.producer);
    expect(publish).toHaveLength(1);
    expect(publish[0]!.parentSpanId).toBe(grant[0]!.spanId);
    const apply = only(trace, "scoreboard-ranking", "apply score event", OtlpKind.consumer);
    expect(apply).toHaveLength(1);
    expect(apply[0]!.parentSpanId).toBe(publish[0]!.spanId);
    // Ranking's board scripts in Redis, under the apply.
    const scripts = datastoreSpans(trace, "scoreboard-ranking", "redis", apply[0]);
    expect(scripts.map((s) => s.name)).toContain("evalsha");
    const announces = only(trace, "scoreboard-ranking", "announce board change", OtlpKind.producer);
    expect(announces.length).toBeGreaterThan(0);
    for (const announce of announces) expect(announce.parentSpanId).toBe(apply[0]!.spanId);
    const global = announces.find((s) => s.attributes["scoreboard.board"] === "global");
    expect(global, "the global board's announcement").toBeDefined();
    const fanouts = only(trace, "scoreboard-push", "fan out board change", OtlpKind.consumer);
    const announceIds = new Set(announces.map((s) => s.spanId));
    for (const fanout of fanouts) expect(announceIds).toContain(fanout.parentSpanId);
    // The gateway keeps the global top 100 open for good: push fanned it out to that stream.
    expect(fanouts.some((s) => s.parentSpanId === global!.spanId && Number(s.attributes["scoreboard.watchers"]) > 0)).toBe(true);

    // Logs join the trace: score's "granted" line names the server span.
    const granted = mesh.logs.score
      .filter((line) => line.startsWith("{"))
      .map((line) => JSON.parse(line) as Record<string, unknown>)
      .find((l) => l.msg === "granted" && l.userId === "tracy");
    expect(granted).toMatchObject({ trace_id: route.traceId, span_id: served[0]!.spanId });

    // No credential leaves a process as telemetry, nor a statement's values:
    // SQL parameters are not recorded, Redis statements name only the command
    // and a script's digest (a rate-limit key holds the user id and address).
    const exported = receiver.bodies.join("\n");
    expect(exported).not.toContain(token);
    expect(exported.toLowerCase()).not.toContain("bearer");
    expect(exported).not.toContain("Tracy");
    for (const span of [...datastoreSpans(receiver.spans, "scoreboard-gateway", "redis"), ...datastoreSpans(receiver.spans, "scoreboard-ranking", "redis")]) {
      expect(span.attributes["db.query.text"]).toMatch(/^[a-z]+( [0-9a-f]{40})?$/);
    }
    expect(receiver.spans.some((s) => "db.postgresql.values" in s.attributes)).toBe(false);
  });

  it("makes no traces of push's routine board refreshes", async () => {
    const served = async () => {
      const text = await (await fetch(`${mesh.urls.ranking}/metrics`)).text();
      return [...text.matchAll(/^sb_rpc_requests_total\{[^}]*method="GetLeaderboard"[^}]*\} (\d+)/gm)].reduce((n, m) => n + Number(m[1]), 0);
    };
    const spans = () => receiver.spans.filter((s) => s.name === "scoreboard.v1.RankingService/GetLeaderboard").length;
    const spansBefore = spans();
    const servedBefore = await served();
    // Push re-reads the boards it watches every 200 ms here: ranking answers them...
    await eventually(async () => ((await served()) >= servedBefore + 5 ? true : undefined), 10_000, "push's refreshes reaching ranking");
    await new Promise((r) => setTimeout(r, 500)); // longer than the exporters' 100 ms schedule
    // ...and neither push nor ranking exported a span for them.
    expect(spans()).toBe(spansBefore);
  });

  it("traces a WatchLeaderboard stream on the gateway's fast path, as a child of the caller", async () => {
    const traceId = "4bf92f3577b34da6a3ce929d0e0e4736";
    const callerSpan = "00f067aa0ba902b7";
    const abort = new AbortController();
    const res = await fetch(`${mesh.urls.gateway}/scoreboard.v1.PushService/WatchLeaderboard`, {
      method: "POST",
      headers: { "content-type": "application/connect+json", traceparent: `00-${traceId}-${callerSpan}-01` },
      body: Buffer.concat([Buffer.from([0, 0, 0, 0, 2]), Buffer.from("{}")]),
      signal: abort.signal,
    });
    const reader = res.body!.getReader();
    await reader.read(); // the snapshot
    abort.abort(); // the client leaves: the span ends
    await reader.closed.catch(() => undefined);
    const span = await eventually(
      async () => receiver.spans.find((s) => s.traceId === traceId && s.name === "scoreboard.v1.PushService/WatchLeaderboard"),
      10_000,
      "the stream's span",
    );
    expect(span).toMatchObject({ service: "scoreboard-gateway", kind: OtlpKind.server, parentSpanId: callerSpan });
    expect(span.attributes["rpc.connect_rpc.error_code"]).toBe("canceled");
  });

  it("has exported the last calls' spans by the time a SIGTERMed process exits", async () => {
    const before = receiver.spans.length;
    const token = await mesh.token("tracy");
    await fetch(`${mesh.urls.gateway}/api/actions`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
      body: JSON.stringify({ actionId: "daily-login" }),
    });
    // At once, before the batch processor's next export: the shutdown flushes.
    const exit = await mesh.kill("gateway", "SIGTERM");
    expect(exit.code).toBe(0);
    const exported = receiver.spans.slice(before).filter((s) => s.service === "scoreboard-gateway" && s.name === "POST /api/actions");
    expect(exported.length).toBeGreaterThan(0);
  });
});
