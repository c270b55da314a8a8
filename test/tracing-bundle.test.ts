// The images run single-file bundles, where no loader hook can see pg or
// ioredis being loaded: the mesh here runs those bundles (scripts/bundle.ts,
// the Dockerfiles' build step), and a grant's trace still holds its SQL and
// Redis spans, each under the span that issued it.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, expect, inject, it } from "vitest";
import { bundleDeployable, bundleEntries, type Deployable } from "../scripts/bundle.js";
import { eventually, startMesh, type Mesh } from "./harness/mesh.js";
import { OtlpKind, datastoreSpans, startOtlpReceiver, type OtlpReceiver } from "./harness/otlp-receiver.js";

// Outside the repository, so nothing resolves through its node_modules.
const bundles = mkdtempSync(join(tmpdir(), "sb-traced-bundles-"));
let receiver: OtlpReceiver;
let mesh: Mesh;

beforeAll(async () => {
  for (const name of Object.keys(bundleEntries) as Deployable[]) await bundleDeployable(name, join(bundles, name));
  receiver = await startOtlpReceiver();
  mesh = await startMesh(
    inject("infra"),
    { OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url, OTEL_EXPORTER_OTLP_PROTOCOL: "http/json", OTEL_BSP_SCHEDULE_DELAY: "100" },
    { bundles },
  );
  await mesh.sql(`INSERT INTO actions (action_id, points) VALUES ('bundled', 3)`);
});

afterAll(async () => {
  await mesh?.stop();
  await receiver?.close();
  rmSync(bundles, { recursive: true, force: true });
});

it("traces a grant's SQL and Redis calls in bundled processes", async () => {
  expect((await mesh.submitAction("bundy", "bundled")).status).toBe(200);
  const spans = await eventually(
    async () => {
      const route = receiver.spans.find((s) => s.service === "scoreboard-gateway" && s.name === "POST /api/actions");
      const inTrace = receiver.spans.filter((s) => s.traceId === route?.traceId);
      const grant = inTrace.find((s) => s.service === "scoreboard-score" && s.name === "grant");
      const apply = inTrace.find((s) => s.service === "scoreboard-ranking" && s.name === "apply score event");
      if (!route || !grant || !apply) return undefined;
      const found = {
        limit: datastoreSpans(inTrace, "scoreboard-gateway", "redis", route),
        sql: datastoreSpans(inTrace, "scoreboard-score", "postgresql", grant),
        scripts: datastoreSpans(inTrace, "scoreboard-ranking", "redis", apply),
      };
      return found.limit.length > 0 && found.sql.length > 0 && found.scripts.length > 0 ? found : undefined;
    },
    20_000,
    "the grant's SQL and Redis spans",
  );
  expect(spans.sql[0]).toMatchObject({
    kind: OtlpKind.client,
    attributes: expect.objectContaining({ "db.query.text": expect.stringContaining("sb_grant_batch(") }),
  });
  for (const span of spans.limit) expect(span).toMatchObject({ kind: OtlpKind.client, name: "evalsha" });
  expect(spans.scripts.map((s) => s.name)).toContain("evalsha");
});
