// How the chart runs its pods, checked without a cluster: each component has
// its own ServiceAccount and no API token; images carry the project's version
// and a digest when one is pinned; replicas spread per component; Envoy's
// stats stay off the public Service; development keys are the same on every
// render; and `helm test` grants through the front door and reads the board
// back (its script run here against a stand-in front door).
import { spawn } from "node:child_process";
import { once } from "node:events";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { parse } from "yaml";
import { Scopes, TokenVerifier, requireRole, requireScope } from "@scoreboard/platform/auth";
import {
  chartDir,
  findObject,
  helm,
  lintChart,
  parseManifests,
  podSpecOf,
  renderChart,
  root,
  validateObjects,
  type K8sObject,
} from "../scripts/check-chart.js";

const production = ["values-production.yaml"];
const ours = ["gateway", "score", "ranking", "push"];
const replicated = [...ours, "envoy"];
const digest = (n: number) => `sha256:${String(n).repeat(64)}`;
const componentOf = (labels: Record<string, string> | undefined) => labels?.["app.kubernetes.io/component"];
const deployment = (objects: K8sObject[], component: string) => findObject(objects, "Deployment", `scoreboard-${component}`) as any;
const containerImages = (objects: K8sObject[]) =>
  Object.fromEntries(
    objects.flatMap((o) => (podSpecOf(o)?.containers as any[] | undefined)?.map((c) => [`${o.kind}/${o.metadata.name}`, c.image as string]) ?? []),
  );
/** Renders with a values file written from YAML text (maps --set cannot express). */
function renderWith(yaml: string, files: string[] = []): K8sObject[] {
  const dir = mkdtempSync(join(tmpdir(), "sb-values-"));
  try {
    writeFileSync(join(dir, "values.yaml"), yaml);
    return renderChart([...files, join(dir, "values.yaml")]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe("chart pods", () => {
  let dev: K8sObject[];
  let prod: K8sObject[];
  beforeAll(() => {
    dev = renderChart();
    prod = renderChart(production);
  });

  it("runs every pod as its component's own ServiceAccount, with no API token", async () => {
    for (const objects of [dev, prod]) {
      const accounts = new Map(objects.filter((o) => o.kind === "ServiceAccount").map((o) => [o.metadata.name, o as any]));
      for (const account of accounts.values()) expect(account.automountServiceAccountToken, account.metadata.name).toBe(false);
      for (const o of objects) {
        const spec = podSpecOf(o);
        if (!spec) continue;
        const account = accounts.get(spec.serviceAccountName as string);
        expect(account, `${o.kind}/${o.metadata.name} runs as ${String(spec.serviceAccountName)}`).toBeDefined();
        const podLabels = (o.kind === "Pod" ? o.metadata : ((o.spec as any).template?.metadata ?? (o.spec as any).jobTemplate.spec.template.metadata)).labels;
        expect(componentOf(account.metadata.labels), `${o.kind}/${o.metadata.name}`).toBe(componentOf(podLabels));
        expect(spec.automountServiceAccountToken).toBe(false);
      }
    }
    expect([...new Set(dev.filter((o) => o.kind === "ServiceAccount").map((o) => componentOf(o.metadata.labels)))].sort()).toEqual([
      "envoy",
      "gateway",
      "migrate",
      "nats",
      "postgres",
      "push",
      "ranking",
      "reconcile",
      "redis",
      "score",
      "test",
    ]);
    // The migration hook runs before the release's objects exist: its account is a hook, created before the Job.
    for (const objects of [dev, prod]) {
      const account = findObject(objects, "ServiceAccount", "scoreboard-migrate").metadata.annotations!;
      const job = findObject(objects, "Job", "scoreboard-migrate").metadata.annotations!;
      expect(account["helm.sh/hook"]).toBe(job["helm.sh/hook"]);
      expect(Number(account["helm.sh/hook-weight"])).toBeLessThan(Number(job["helm.sh/hook-weight"]));
    }
    // The schema check notices a pod back on the default account, or with a token.
    const careless = structuredClone(deployment(dev, "push"));
    delete careless.spec.template.spec.serviceAccountName;
    careless.spec.template.spec.automountServiceAccountToken = true;
    expect(await validateObjects([careless])).toEqual(
      expect.arrayContaining([
        "Deployment/scoreboard-push: runs as the default ServiceAccount",
        "Deployment/scoreboard-push: mounts an API token (automountServiceAccountToken must be false)",
      ]),
    );
    // A cloud IAM role for one component reaches that component only.
    const annotated = renderWith("serviceAccounts: { annotations: { score: { eks.amazonaws.com/role-arn: arn:aws:iam::1:role/score } } }\n");
    expect(findObject(annotated, "ServiceAccount", "scoreboard-score").metadata.annotations).toEqual({
      "eks.amazonaws.com/role-arn": "arn:aws:iam::1:role/score",
    });
    expect(findObject(annotated, "ServiceAccount", "scoreboard-ranking").metadata.annotations).toBeUndefined();
  });

  it("tags our images with the project's version and pins every image by digest when given one", async () => {
    const version = (JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as { version: string }).version;
    expect(parse(readFileSync(join(chartDir, "Chart.yaml"), "utf8")).appVersion).toBe(version);
    for (const c of ours) expect(deployment(dev, c).spec.template.spec.containers[0].image).toBe(`scoreboard-${c}:${version}`);
    // NATS is a pinned 2.10 release (at least 2.10.23), by version and digest.
    const nats = containerImages(dev)["StatefulSet/scoreboard-nats"]!;
    const [, minor, patch] = /^nats:2\.(10)\.(\d+)-alpine@sha256:[a-f0-9]{64}$/.exec(nats) ?? [];
    expect(minor, nats).toBe("10");
    expect(Number(patch)).toBeGreaterThanOrEqual(23);

    const pinned = renderChart(
      [],
      [
        "image.registry=registry.example.com/sb",
        ...ours.map((c, i) => `image.digests.${c}=${digest(i + 1)}`),
        `envoy.image.digest=${digest(5)}`,
        `inCluster.postgres.image.digest=${digest(6)}`,
        `inCluster.redis.image.digest=${digest(7)}`,
      ],
    );
    const images = containerImages(pinned);
    for (const [i, c] of ours.entries())
      expect(images[`Deployment/scoreboard-${c}`]).toBe(`registry.example.com/sb/scoreboard-${c}:${version}@${digest(i + 1)}`);
    expect(images["Deployment/scoreboard-envoy"]).toMatch(new RegExp(`^envoyproxy/envoy:v1\\.37\\.\\d+@${digest(5)}$`));
    expect(images["StatefulSet/scoreboard-postgres"]).toBe(`postgres:16-bookworm@${digest(6)}`);
    expect(images["StatefulSet/scoreboard-redis"]).toBe(`redis:7-bookworm@${digest(7)}`);
    // The Jobs and the test run the same builds as the processes whose images they borrow.
    expect(images["Job/scoreboard-migrate"]).toBe(images["Deployment/scoreboard-score"]);
    expect(images["CronJob/scoreboard-reconcile"]).toBe(images["Deployment/scoreboard-ranking"]);
    expect(images["Pod/scoreboard-test"]).toBe(images["Deployment/scoreboard-gateway"]);
    expect(await validateObjects(pinned)).toEqual([]);
    for (const bad of ["image.digests.score=sha256:abc", `image.digests.worker=${digest(1)}`, "inCluster.nats.image.digest=latest"]) {
      expect(lintChart([], [bad]).code, bad).not.toBe(0);
    }
  });

  it("keeps each component's replicas apart and spread over zones and nodes, selecting only its own pods", async () => {
    for (const objects of [dev, prod]) {
      for (const c of replicated) {
        const spec = deployment(objects, c).spec.template.spec;
        const own = { matchLabels: { "app.kubernetes.io/name": "scoreboard", "app.kubernetes.io/instance": "scoreboard", "app.kubernetes.io/component": c } };
        expect(spec.affinity.podAntiAffinity).toEqual({
          preferredDuringSchedulingIgnoredDuringExecution: [{ weight: 100, podAffinityTerm: { topologyKey: "kubernetes.io/hostname", labelSelector: own } }],
        });
        expect(spec.topologySpreadConstraints).toEqual(
          ["topology.kubernetes.io/zone", "kubernetes.io/hostname"].map((topologyKey) => ({
            topologyKey,
            maxSkew: 1,
            whenUnsatisfiable: "ScheduleAnyway",
            labelSelector: own,
            matchLabelKeys: ["pod-template-hash"],
          })),
        );
      }
    }
    const strict = renderChart(production, ["spread.podAntiAffinity=required", "spread.topologySpread.whenUnsatisfiable=DoNotSchedule"]);
    const spec = deployment(strict, "push").spec.template.spec;
    expect(spec.affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution[0].labelSelector.matchLabels["app.kubernetes.io/component"]).toBe(
      "push",
    );
    expect(spec.topologySpreadConstraints.map((t: any) => t.whenUnsatisfiable)).toEqual(["DoNotSchedule", "DoNotSchedule"]);
    expect(deployment(renderChart([], ["spread.topologySpread.enabled=false"]), "score").spec.template.spec.topologySpreadConstraints).toBeUndefined();
    // An operator's own affinity is kept beside the chart's.
    const nodeAffinity = {
      requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [{ matchExpressions: [{ key: "pool", operator: "In", values: ["game"] }] }] },
    };
    const merged = deployment(renderWith(`affinity: ${JSON.stringify({ nodeAffinity })}\n`), "ranking").spec.template.spec.affinity;
    expect(merged.nodeAffinity).toEqual(nodeAffinity);
    expect(merged.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution).toHaveLength(1);
    expect(await validateObjects(strict)).toEqual([]);
    expect(lintChart([], ["spread.podAntiAffinity=sometimes"]).code).not.toBe(0);
  });

  it("serves Envoy's stats on their own ClusterIP Service, never on the public one", () => {
    const publicPorts = (findObject(prod, "Service", "scoreboard-envoy") as any).spec.ports.map((p: any) => p.targetPort);
    expect(publicPorts).toEqual(["public"]);
    const stats = findObject(prod, "Service", "scoreboard-envoy-stats") as any;
    expect(stats.spec.type).toBe("ClusterIP");
    expect(stats.spec.ports).toEqual([{ name: "stats", port: 9902, targetPort: "stats", appProtocol: "http" }]);
    expect(stats.spec.selector["app.kubernetes.io/component"]).toBe("envoy");
    // The ServiceMonitor scrapes each endpoint's port on a Service that has it: Envoy's stats through envoy-stats only.
    const monitor = findObject(prod, "ServiceMonitor", "scoreboard") as any;
    const components = monitor.spec.selector.matchExpressions.find((e: any) => e.key === "app.kubernetes.io/component").values;
    expect(components).toContain("envoy-stats");
    expect(components).not.toContain("envoy");
    const selected = prod.filter((o) => o.kind === "Service" && components.includes(componentOf(o.metadata.labels))) as any[];
    for (const endpoint of monitor.spec.endpoints) {
      expect(selected.filter((s) => s.spec.ports.some((p: any) => p.name === endpoint.port)).length, endpoint.port).toBeGreaterThan(0);
    }
    expect(selected.find((s) => s.metadata.name === "scoreboard-envoy-stats").spec.ports.map((p: any) => p.name)).toEqual(["stats"]);
  });

  it("accepts ephemeral-storage in every component's resources and refuses resources Kubernetes does not know", async () => {
    const sets = [...replicated.map((c) => `${c}.resources.limits.ephemeral-storage=1Gi`), "gateway.resources.requests.ephemeral-storage=256Mi"];
    const lint = lintChart(production, sets);
    expect(lint.code, lint.stdout + lint.stderr).toBe(0);
    const objects = renderChart(production, sets);
    expect(deployment(objects, "gateway").spec.template.spec.containers[0].resources).toMatchObject({
      requests: { "ephemeral-storage": "256Mi" },
      limits: { "ephemeral-storage": "1Gi" },
    });
    expect(await validateObjects(objects)).toEqual([]);
    expect(lintChart([], ["gateway.resources.limits.disk=1Gi"]).code).not.toBe(0);
  });

  it("renders the same development keys every time, different per release and devSeed, and random ones in production", () => {
    const secretData = (objects: K8sObject[]) =>
      (findObject(objects, "Secret", objects.find((o) => o.kind === "Secret" && o.metadata.name.endsWith("-secrets"))!.metadata.name) as any).data;
    const render = (release: string, sets: string[] = []) => {
      const result = helm(["template", release, chartDir, "--namespace", "scoreboard", ...sets.flatMap((s) => ["--set", s])]);
      expect(result.code, result.stderr).toBe(0);
      return parseManifests(result.stdout);
    };
    const first = secretData(dev);
    expect(secretData(renderChart())).toEqual(first);
    // So the pods' checksum annotation, and with it the pods, stay put across renders too.
    expect(deployment(renderChart(), "score").spec.template.metadata.annotations["checksum/secrets"]).toBe(
      deployment(dev, "score").spec.template.metadata.annotations["checksum/secrets"],
    );
    expect(secretData(render("other")).JWT_SECRET).not.toBe(first.JWT_SECRET);
    expect(secretData(renderChart([], ["secrets.devSeed=private"])).EVENT_HMAC_KEYS).not.toBe(first.EVENT_HMAC_KEYS);
    const decoded = (value: string) => Buffer.from(value, "base64").toString();
    expect(decoded(first.JWT_SECRET).length).toBeGreaterThanOrEqual(32);
    for (const [key, id] of [
      ["EVENT_HMAC_KEYS", "k1"],
      ["EVENT_ENCRYPTION_KEYS", "e1"],
    ] as const) {
      const [keyId, material] = decoded(first[key]).split(":");
      expect(keyId).toBe(id);
      expect(Buffer.from(material!, "base64")).toHaveLength(32);
    }
    // Production never derives a key: what the values leave empty is random.
    const productionSets = ["nodeEnv=production", `secrets.eventEncryptionKeys=e1:${Buffer.alloc(32, 1).toString("base64")}`];
    expect(secretData(renderChart([], productionSets)).JWT_SECRET).not.toBe(secretData(renderChart([], productionSets)).JWT_SECRET);
  });
});

describe("helm test", () => {
  it("is a test hook Pod that runs the chart's script against the front door with the release's JWT secret", async () => {
    const dev = renderChart();
    const pod = findObject(dev, "Pod", "scoreboard-test") as any;
    expect(pod.metadata.annotations["helm.sh/hook"]).toBe("test");
    expect(pod.spec.restartPolicy).toBe("Never");
    const container = pod.spec.containers[0];
    expect(container.command).toEqual(["node", "/test/helm-test.mjs"]);
    const env = Object.fromEntries(container.env.map((e: any) => [e.name, e.value ?? e.valueFrom]));
    expect(env).toMatchObject({ BASE_URL: "http://scoreboard-envoy.scoreboard.svc.cluster.local:8080", TEST_USER_ID: "helm-test", EDGE_JWT: "false" });
    expect(env.JWT_SECRET).toEqual({ secretKeyRef: { name: "scoreboard-secrets", key: "JWT_SECRET", optional: true } });
    const configMap = findObject(dev, "ConfigMap", pod.spec.volumes[0].configMap.name) as any;
    expect(configMap.data["helm-test.mjs"]).toBe(readFileSync(join(chartDir, "files/helm-test.mjs"), "utf8"));
    // Envoy admits anyone on its public port, so no NetworkPolicy stands in the test's way.
    const envoyPolicy = findObject(dev, "NetworkPolicy", "scoreboard-envoy") as any;
    expect(envoyPolicy.spec.ingress[0]).toEqual({ ports: [{ port: 8443, protocol: "TCP" }] });

    const prodEnv = Object.fromEntries(
      (findObject(renderChart(production, ["tests.tlsServerName=scores.example.com"]), "Pod", "scoreboard-test") as any).spec.containers[0].env.map(
        (e: any) => [e.name, e.value],
      ),
    );
    expect(prodEnv).toMatchObject({
      BASE_URL: "https://scoreboard-envoy.scoreboard.svc.cluster.local:443",
      EDGE_JWT: "true",
      TLS_SERVER_NAME: "scores.example.com",
    });
    const direct = (findObject(renderChart([], ["envoy.enabled=false"]), "Pod", "scoreboard-test") as any).spec.containers[0].env;
    expect(direct.find((e: any) => e.name === "BASE_URL").value).toBe("http://scoreboard-gateway.scoreboard.svc.cluster.local:8080");
    expect(renderChart([], ["tests.enabled=false"]).some((o) => o.kind === "Pod" || o.metadata.name === "scoreboard-test")).toBe(false);
  });

  it("grants a point through the front door and passes once the board shows it; fails when it never does", async () => {
    const door = await frontDoor();
    try {
      const ok = await runScript(door.url, { BOARD_TIMEOUT_S: "5" });
      expect(ok.code, ok.log).toBe(0);
      expect(ok.log).toContain("granted 1 point to helm-test: 0 -> 1");
      expect(ok.log).toContain("board shows 1: ok");
      // A second run: the user's score moves on, nothing collides.
      expect((await runScript(door.url, { BOARD_TIMEOUT_S: "5" })).log).toContain("1 -> 2");

      door.board.frozen = true;
      const stuck = await runScript(door.url, { BOARD_TIMEOUT_S: "1" });
      expect(stuck.code).toBe(1);
      expect(stuck.log).toContain("the board still shows 2 for helm-test");

      // With edge JWT, Envoy would refuse the HS256 token on writes: the read path only, and it says so.
      const readOnly = await runScript(door.url, { EDGE_JWT: "true" });
      expect(readOnly.code, readOnly.log).toBe(0);
      expect(readOnly.log).toContain("grant skipped");
      expect(door.grants).toBe(3);
    } finally {
      door.server.close();
    }
  });
});

const secret = "s".repeat(40);
const auth = { jwtSecret: secret, issuer: "scoreboard", audience: "scoreboard-api" };

/** A stand-in for Envoy and the mesh behind it: the routes the script calls, tokens verified as the services verify them. */
async function frontDoor() {
  const verifier = new TokenVerifier(auth);
  const board = { scores: new Map<string, bigint>(), frozen: false };
  const state = { grants: 0 };
  const send = (res: ServerResponse, status: number, body: unknown) => res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(body));
  const server = createServer(async (req: IncomingMessage, res: ServerResponse) => {
    let text = "";
    for await (const chunk of req) text += chunk;
    try {
      if (req.method === "GET" && req.url === "/readyz") return send(res, 200, { status: "ready" });
      if (req.url === "/scoreboard.v1.RankingService/GetLeaderboard") return send(res, 200, { entries: [] });
      const principal = await verifier.authenticate(req.headers.authorization);
      if (req.url === "/scoreboard.v1.RankingService/GetRank") {
        const score = board.scores.get(JSON.parse(text).userId);
        return score === undefined
          ? send(res, 404, { code: "not_found", message: "no score" })
          : send(res, 200, { entry: { rank: "1", userId: principal.userId, score: String(score) } });
      }
      if (req.url === "/scoreboard.v1.ScoreService/AddScore") {
        requireScope(principal, Scopes.updateScore);
        requireRole(principal, "player");
        state.grants++;
        const total = (board.scores.get(principal.userId) ?? 0n) + BigInt(JSON.parse(text).delta);
        // The board follows a moment later, as ranking does.
        if (!board.frozen) setTimeout(() => board.scores.set(principal.userId, total), 300);
        return send(res, 200, { userId: principal.userId, delta: "1", newScore: String(total) });
      }
      send(res, 404, { code: "not_found" });
    } catch (err) {
      send(res, 401, { code: "unauthenticated", message: String(err) });
    }
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  return {
    server,
    board,
    get grants() {
      return state.grants;
    },
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
  };
}

async function runScript(baseUrl: string, extra: Record<string, string> = {}): Promise<{ code: number; log: string }> {
  const child = spawn(process.execPath, [join(chartDir, "files/helm-test.mjs")], {
    env: {
      PATH: process.env.PATH,
      BASE_URL: baseUrl,
      TEST_USER_ID: "helm-test",
      JWT_SECRET: secret,
      JWT_ISSUER: auth.issuer,
      JWT_AUDIENCE: auth.audience,
      EDGE_JWT: "false",
      ...extra,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let log = "";
  child.stdout.on("data", (c: Buffer) => (log += c));
  child.stderr.on("data", (c: Buffer) => (log += c));
  const [code] = (await once(child, "exit")) as [number];
  return { code, log };
}
