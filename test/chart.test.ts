// The deployment, checked without a cluster: the Helm chart lints, renders
// with the dev and production values, every object passes the Kubernetes
// schemas, bad values are refused, Envoy routes what the gateway serves,
// skaffold.yaml holds together, and the images' bundling step produces
// processes that boot against real PostgreSQL, Redis and NATS.
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { parse, stringify } from "yaml";
import { bundleDeployable, bundleEntries, type Deployable } from "../scripts/bundle.js";
import {
  chartDir,
  checkReferences,
  checkUpstreams,
  findObject,
  helm,
  lintChart,
  podSpecOf,
  renderChart,
  root,
  validateObjects,
  type K8sObject,
} from "../scripts/check-chart.js";
import { checkEnvoyRoutes, envoyConfig } from "../scripts/check-envoy-routes.js";
import { checkSkaffold } from "../scripts/check-skaffold.js";
import { freshMigratedDb } from "./harness/database.js";
import { freePort } from "./harness/infra.js";

const production = ["values-production.yaml"];
// Secrets production values name but an operator creates (docs/operations.md).
const externalSecrets = { secrets: ["scoreboard-keys", "scoreboard-datastore-urls"] };

describe("helm chart", () => {
  let dev: K8sObject[];
  let prod: K8sObject[];
  beforeAll(() => {
    dev = renderChart();
    prod = renderChart(production);
  });

  it("lints with the dev and the production values", () => {
    for (const files of [[], production]) {
      const lint = lintChart(files);
      expect(lint.code, lint.stdout + lint.stderr).toBe(0);
    }
  });

  it("renders objects that pass the Kubernetes schemas and reference only what exists", async () => {
    expect(await validateObjects(dev)).toEqual([]);
    expect(await validateObjects(prod)).toEqual([]);
    expect(checkReferences(dev)).toEqual([]);
    expect(checkReferences(prod, externalSecrets)).toEqual([]);
  });

  it("refuses bad values", () => {
    const refused = (sets: string[], files: string[] = []) => {
      const result = lintChart(files, sets);
      expect(result.code, `helm accepted ${sets.join(" ")}`).not.toBe(0);
      return result.stdout + result.stderr;
    };
    expect(refused(["score.replicas=two"])).toContain("score.replicas");
    expect(refused(["image.pullPolicy=Sometimes"])).toContain("image.pullPolicy");
    expect(refused(["envoy.streamIdleTimeout=forever"])).toContain("envoy.streamIdleTimeout");
    expect(refused(["gateway.replica=2"])).toContain("replica");
    expect(refused(["envoy.jwtAuthn.enabled=true"])).toContain("remoteJwksUri");
    expect(refused(["grpc.maxConnectionAgeMs=soon"])).toContain("grpc.maxConnectionAgeMs");
    expect(refused(["clusterDomain=Cluster_Local"])).toContain("clusterDomain");
    // Production keys must outlive a GitOps re-render: generated ones would not.
    expect(refused(["secrets.existingSecret="], production)).toContain("secrets.eventEncryptionKeys");
  });

  it("fails on a broken template", () => {
    const copy = mkdtempSync(join(tmpdir(), "sb-chart-"));
    try {
      cpSync(chartDir, copy, { recursive: true });
      writeFileSync(join(copy, "templates/broken.yaml"), '{{ include "sb.noSuchTemplate" . }}\n');
      const result = helm(["template", "scoreboard", copy]);
      expect(result.code).not.toBe(0);
      expect(result.stderr).toContain("sb.noSuchTemplate");
    } finally {
      rmSync(copy, { recursive: true, force: true });
    }
  });

  it("catches an object the API server would refuse", async () => {
    const deployment = structuredClone(findObject(dev, "Deployment", "scoreboard-score"));
    (podSpecOf(deployment)!.containers as any[])[0].ports[0].containerPort = "fifty";
    expect(await validateObjects([deployment])).toContainEqual(expect.stringMatching(/containerPort must be integer/));
    // A misspelt field: Kubernetes would drop it with a warning and run without the probe.
    const misspelt = structuredClone(findObject(dev, "Deployment", "scoreboard-push"));
    (podSpecOf(misspelt)!.containers as any[])[0].readinesProbe = { httpGet: { path: "/readyz", port: "http" } };
    expect(await validateObjects([misspelt])).toContainEqual(expect.stringMatching(/'"readinesProbe"' does not exist/));
  });

  it("runs each process with probes on its main port, limits, and drain time", () => {
    for (const component of ["gateway", "score", "ranking", "push"]) {
      const spec = podSpecOf(findObject(prod, "Deployment", `scoreboard-${component}`))!;
      const container = (spec.containers as any[])[0];
      const main = container.ports.find((p: any) => p.name === "http").containerPort;
      expect(container.livenessProbe.httpGet).toEqual({ path: "/healthz", port: "http" });
      expect(container.readinessProbe.httpGet).toEqual({ path: "/readyz", port: "http" });
      expect(main).toBe(parse(readFileSync(join(chartDir, "values.yaml"), "utf8"))[component].port);
      expect(container.resources.limits.memory).toBeTruthy();
      // The processes give themselves 15 s to drain after SIGTERM (lifecycle.ts).
      expect(spec.terminationGracePeriodSeconds).toBeGreaterThan(15 + Number(container.lifecycle.preStop.exec.command[1]));
    }
    // The paths the probes use are the ones the code serves.
    const probes = readFileSync(join(root, "packages/platform/src/probes.ts"), "utf8");
    for (const path of ['"/healthz"', '"/readyz"']) expect(probes).toContain(path);
  });

  it("autoscales ranking and push, keeps replicas through disruptions, and isolates pods", () => {
    const ranking = findObject(prod, "HorizontalPodAutoscaler", "scoreboard-ranking") as any;
    expect(ranking.apiVersion).toBe("autoscaling/v2");
    expect(ranking.spec.metrics.map((m: any) => m.type)).toEqual(["Resource", "External"]);
    expect(ranking.spec.metrics[1].external.metric.name).toBe("sb_jetstream_consumer_pending");
    expect((findObject(prod, "HorizontalPodAutoscaler", "scoreboard-push") as any).spec.metrics.map((m: any) => m.type)).toEqual(["Resource"]);
    expect((findObject(prod, "HorizontalPodAutoscaler", "scoreboard-gateway") as any).spec.metrics[1].pods.metric.name).toBe("sb_open_streams");
    expect(dev.some((o) => o.kind === "HorizontalPodAutoscaler")).toBe(false);
    for (const c of ["gateway", "score", "ranking", "push", "envoy"]) findObject(prod, "PodDisruptionBudget", `scoreboard-${c}`);

    const deny = findObject(dev, "NetworkPolicy", "scoreboard-default-deny") as any;
    expect(deny.spec.policyTypes).toEqual(["Ingress"]);
    const allowedFrom = (target: string) =>
      (findObject(dev, "NetworkPolicy", `scoreboard-${target}`) as any).spec.ingress[0].from.map(
        (f: any) => f.podSelector.matchLabels["app.kubernetes.io/component"],
      );
    expect(allowedFrom("gateway")).toEqual(["envoy"]);
    expect(allowedFrom("ranking")).toEqual(["gateway", "push"]);
    expect(allowedFrom("postgres")).toEqual(["score", "ranking", "migrate", "reconcile"]);
    expect(allowedFrom("nats")).toEqual(["score", "ranking", "push", "reconcile"]);
  });

  it("lets the gateway and push balance gRPC over every ready pod of the services they call", () => {
    const values = parse(readFileSync(join(chartDir, "values.yaml"), "utf8"));
    const target = (component: string, domain = "cluster.local") =>
      `dns:///scoreboard-${component}-pods.scoreboard.svc.${domain}:${values[component].grpcPort}`;
    const envOf = (objects: K8sObject[], component: string): Record<string, string | undefined> =>
      Object.fromEntries(
        (podSpecOf(findObject(objects, "Deployment", `scoreboard-${component}`))!.containers as any[])[0].env.map((e: any) => [e.name, e.value]),
      );
    for (const objects of [dev, prod]) {
      for (const component of ["score", "ranking", "push"]) {
        const headless = findObject(objects, "Service", `scoreboard-${component}-pods`) as any;
        expect(headless.spec.clusterIP).toBe("None");
        expect(headless.spec.publishNotReadyAddresses).toBe(false);
        expect(headless.spec.ports).toEqual([{ name: "grpc", port: values[component].grpcPort, targetPort: "grpc", appProtocol: "kubernetes.io/h2c" }]);
        // The virtual IP keeps the main port only (scraping, port-forward): no gRPC client pins itself to one pod through it.
        expect((findObject(objects, "Service", `scoreboard-${component}`) as any).spec.ports.map((p: any) => p.name)).toEqual(["http"]);
      }
      expect(envOf(objects, "gateway")).toMatchObject({ SCORE_URL: target("score"), RANKING_URL: target("ranking"), PUSH_URL: target("push") });
      expect(envOf(objects, "push").RANKING_URL).toBe(target("ranking"));
      for (const component of ["gateway", "score", "ranking", "push"]) {
        expect(envOf(objects, component).GRPC_MAX_CONNECTION_AGE_MS).toBe("300000");
        expect(envOf(objects, component)).not.toHaveProperty("GRPC_KEEPALIVE_TIME_MS");
      }
      // Headless Services, ready pods only, the gRPC-only port, and NetworkPolicies that let the caller in.
      expect(checkUpstreams(objects)).toEqual([]);
    }
    const tuned = renderChart(production, ["clusterDomain=corp.internal", "grpc.maxConnectionAgeMs=60000", "grpc.keepaliveTimeMs=20000"]);
    expect(envOf(tuned, "gateway").SCORE_URL).toBe(target("score", "corp.internal"));
    expect(envOf(tuned, "ranking")).toMatchObject({ GRPC_MAX_CONNECTION_AGE_MS: "60000", GRPC_KEEPALIVE_TIME_MS: "20000" });
    expect(checkUpstreams(tuned, "corp.internal")).toEqual([]);
    // Numbers from a values file are floats to Helm; a day must not render as 8.64e+07.
    const dir = mkdtempSync(join(tmpdir(), "sb-values-"));
    try {
      writeFileSync(join(dir, "grpc.yaml"), "grpc: { maxConnectionAgeMs: 86400000, keepaliveTimeMs: 3600000 }\n");
      expect(envOf(renderChart([join(dir, "grpc.yaml")]), "push")).toMatchObject({ GRPC_MAX_CONNECTION_AGE_MS: "86400000", GRPC_KEEPALIVE_TIME_MS: "3600000" });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    // The variables are the ones the processes read.
    for (const name of ["SCORE_URL", "RANKING_URL", "PUSH_URL"]) expect(readFileSync(join(root, "gateway/src/config.ts"), "utf8")).toContain(`"${name}"`);
    expect(readFileSync(join(root, "services/push/src/config.ts"), "utf8")).toContain('"RANKING_URL"');
  });

  it("gives the gateway its edge settings: regions, CORS origins, ranking's retention, and per-address caps that fit behind Envoy", () => {
    const envOf = (objects: K8sObject[]): Record<string, string | undefined> =>
      Object.fromEntries((podSpecOf(findObject(objects, "Deployment", "scoreboard-gateway"))!.containers as any[])[0].env.map((e: any) => [e.name, e.value]));
    // Behind Envoy every connection is Envoy's (a WebSocket each): the connection cap is Envoy's job.
    expect(envOf(dev)).toMatchObject({ GATEWAY_MAX_CONNECTIONS_PER_IP: "0", GATEWAY_MAX_STREAMS_PER_IP: "32", REGIONS: "", CORS_ALLOWED_ORIGINS: "" });
    expect(envOf(renderChart([], ["envoy.enabled=false"])).GATEWAY_MAX_CONNECTIONS_PER_IP).toBe("256");
    const tuned = renderChart(production, [
      "config.regions={eu,us}",
      "config.corsAllowedOrigins={https://game.example.com}",
      "ranking.env.DAILY_BOARD_RETENTION_DAYS=3",
      "ranking.env.RECONCILE_INTERVAL_MS=3600000",
    ]);
    expect(envOf(tuned)).toMatchObject({ REGIONS: "eu,us", CORS_ALLOWED_ORIGINS: "https://game.example.com", DAILY_BOARD_RETENTION_DAYS: "3" });
    expect(envOf(tuned)).not.toHaveProperty("RECONCILE_INTERVAL_MS");
    const gatewayConfig = readFileSync(join(root, "gateway/src/config.ts"), "utf8");
    for (const name of ["GATEWAY_MAX_CONNECTIONS_PER_IP", "GATEWAY_MAX_STREAMS_PER_IP", "REGIONS", "CORS_ALLOWED_ORIGINS"])
      expect(gatewayConfig).toContain(`"${name}"`);
    expect(() => renderChart([], ["config.corsAllowedOrigins={https://game.example.com/path}"])).toThrow();
  });

  it("notices an upstream pinned to one pod, on the wrong port or walled off", () => {
    const objects = structuredClone(dev) as any[];
    const find = (kind: string, name: string) => findObject(objects, kind, name) as any;
    delete find("Service", "scoreboard-ranking-pods").spec.clusterIP;
    find("Service", "scoreboard-score-pods").spec.ports[0].targetPort = "http";
    const gateway = podSpecOf(find("Deployment", "scoreboard-gateway"))!.containers as any[];
    gateway[0].env.find((e: any) => e.name === "PUSH_URL").value = "http://scoreboard-push:50063";
    const ranking = find("NetworkPolicy", "scoreboard-ranking").spec.ingress[0];
    ranking.from = ranking.from.filter((f: any) => f.podSelector.matchLabels["app.kubernetes.io/component"] !== "push");
    const problems = checkUpstreams(objects);
    expect(problems).toContainEqual(expect.stringContaining("gateway RANKING_URL: Service scoreboard-ranking-pods is not headless"));
    expect(problems).toContainEqual(expect.stringContaining("gateway SCORE_URL: port 50061 of Service scoreboard-score-pods is not score's gRPC-only port"));
    expect(problems).toContainEqual(expect.stringContaining("gateway PUSH_URL is http://scoreboard-push:50063, not dns:///"));
    expect(problems).toContainEqual(expect.stringContaining("push RANKING_URL: no NetworkPolicy lets push reach ranking on port 50062"));
  });

  it("applies values.boards after install and every upgrade with the CLI in score's image", async () => {
    expect(dev.some((o) => o.metadata.name === "scoreboard-boards")).toBe(false);
    const boards = [
      { boardId: "laps", title: "Best lap", sortOrder: "ascending", operator: "best", resetSchedule: "weekly", timeZone: "Europe/Paris", minScore: 1 },
      { boardId: "event", title: "Sunday event", resetSchedule: "0 20 * * SUN", retainedSeasons: 4 },
    ];
    const dir = mkdtempSync(join(tmpdir(), "sb-boards-values-"));
    const file = join(dir, "boards.yaml");
    writeFileSync(file, stringify({ boards }));
    try {
      for (const [objects, external] of [
        [renderChart([file]), {}],
        [renderChart([...production, file]), externalSecrets],
      ] as const) {
        expect(await validateObjects(objects)).toEqual([]);
        expect(checkReferences(objects, external)).toEqual([]);
        const configMap = findObject(objects, "ConfigMap", "scoreboard-boards") as any;
        expect(JSON.parse(configMap.data["boards.json"])).toEqual(boards);
        const job = findObject(objects, "Job", "scoreboard-boards") as any;
        // Definitions are score's: the Job runs once the new score can serve them, after the migration Job.
        expect(job.metadata.annotations["helm.sh/hook"]).toBe("post-install,post-upgrade");
        const container = job.spec.template.spec.containers[0];
        expect(container.command).toEqual(["node", "scoreboard.mjs", "boards", "apply", "/etc/scoreboard/boards.json"]);
        const containerOf = (deployment: string) => (podSpecOf(findObject(objects, "Deployment", deployment))!.containers as any[])[0];
        expect(container.image).toBe(containerOf("scoreboard-score").image);
        const env = (name: string) => container.env.find((e: any) => e.name === name);
        const gatewayEnv = containerOf("scoreboard-gateway").env;
        expect(env("SCORE_URL").value).toBe(gatewayEnv.find((e: any) => e.name === "SCORE_URL").value);
        expect(env("JWT_SECRET").valueFrom.secretKeyRef.key).toBe("JWT_SECRET");
        const policy = findObject(objects, "NetworkPolicy", "scoreboard-score") as any;
        expect(policy.spec.ingress[0].from.map((f: any) => f.podSelector.matchLabels["app.kubernetes.io/component"])).toEqual(["gateway", "boards"]);
        findObject(objects, "ServiceAccount", "scoreboard-boards");
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    const refused = lintChart([], ["boards[0].boardId=Laps", "boards[0].operator=max"]);
    expect(refused.code).not.toBe(0);
    expect(refused.stdout + refused.stderr).toContain("boards.0.boardId: Does not match pattern");
    expect(refused.stdout + refused.stderr).toContain("boards.0.operator must be one of the following");
  });

  it("migrates before an upgrade and reconciles daily", () => {
    const job = findObject(prod, "Job", "scoreboard-migrate") as any;
    expect(job.metadata.annotations["helm.sh/hook"]).toBe("pre-install,pre-upgrade");
    expect(job.spec.template.spec.containers[0].command).toEqual(["node", "scoreboard.mjs", "migrate"]);
    // An in-cluster PostgreSQL only exists after install.
    expect((findObject(dev, "Job", "scoreboard-migrate") as any).metadata.annotations["helm.sh/hook"]).toBe("post-install,pre-upgrade");
    const cron = findObject(prod, "CronJob", "scoreboard-reconcile") as any;
    expect(cron.spec.schedule.split(" ").slice(2)).toEqual(["*", "*", "*"]);
    expect(cron.spec.jobTemplate.spec.template.spec.containers[0].command).toEqual(["node", "scoreboard.mjs", "reconcile"]);
    // It announces what it repaired, so it needs NATS as well as the stores.
    expect(cron.spec.jobTemplate.spec.template.spec.containers[0].env.map((e: { name: string }) => e.name)).toEqual(
      expect.arrayContaining(["DATABASE_URL", "REDIS_URL", "NATS_URL"]),
    );
    // It sees ranking's board retention, so both treat the same period boards as live.
    const tuned = findObject(renderChart([], ["ranking.env.DAILY_BOARD_RETENTION_DAYS=14"]), "CronJob", "scoreboard-reconcile") as any;
    expect(tuned.spec.jobTemplate.spec.template.spec.containers[0].env).toContainEqual({ name: "DAILY_BOARD_RETENTION_DAYS", value: "14" });
    // The images carry those entry points.
    expect(Object.keys(bundleEntries.score)).toContain("scoreboard");
    expect(Object.keys(bundleEntries.ranking)).toContain("scoreboard");
  });

  it("creates the JetStream streams as the values say, R3 in production, and fsyncs the dev NATS on every write", () => {
    const jetstreamEnv = (objects: K8sObject[], component: string) =>
      ((podSpecOf(findObject(objects, "Deployment", `scoreboard-${component}`))!.containers as any[])[0].env as { name: string }[]).filter((e) =>
        e.name.startsWith("JETSTREAM_"),
      );
    for (const component of ["score", "ranking"]) {
      expect(jetstreamEnv(dev, component)).toEqual([
        { name: "JETSTREAM_REPLICAS", value: "1" },
        { name: "JETSTREAM_STORAGE", value: "file" },
      ]);
      expect(jetstreamEnv(prod, component)).toEqual([
        { name: "JETSTREAM_REPLICAS", value: "3" },
        { name: "JETSTREAM_STORAGE", value: "file" },
      ]);
    }
    // The in-cluster NATS is a single server, which refuses streams with more than one replica.
    const lint = lintChart([], ["jetstream.replicas=3"]);
    expect(lint.code).not.toBe(0);
    expect(lint.stdout + lint.stderr).toContain("jetstream.replicas");
    const natsConf: string = (findObject(dev, "ConfigMap", "scoreboard-nats-config") as any).data["nats.conf"];
    expect(natsConf).toMatch(/^\s*sync_interval: always$/m);
  });

  it("ships a dashboard with every metric the processes export", () => {
    const configMap = findObject(dev, "ConfigMap", "scoreboard-dashboards") as any;
    expect(configMap.metadata.labels.grafana_dashboard).toBe("1");
    const dashboard = JSON.parse(configMap.data["scoreboard.json"]);
    const exprs = JSON.stringify(dashboard.panels.flatMap((p: any) => p.targets ?? []));
    for (const metric of [
      "sb_rpc_requests_total",
      "sb_rpc_duration_seconds_bucket",
      "sb_http_requests_total",
      "sb_http_duration_seconds_bucket",
      "sb_jetstream_consumer_pending",
      "sb_jetstream_consumer_ack_pending",
      "sb_jetstream_redeliveries_total",
      "sb_outbox_backlog",
      "sb_dead_letters_total",
      "sb_open_streams",
      "sb_fanout_latency_seconds_bucket",
      "sb_redis_errors_total",
      "sb_postgres_errors_total",
    ])
      expect(exprs, metric).toContain(metric);
    // Metric names the code declares, so a renamed metric fails here rather than on a blank panel.
    const declared = readFileSync(join(root, "packages/platform/src/metrics.ts"), "utf8");
    for (const [, name] of exprs.matchAll(/(sb_[a-z_]+?)(?:_bucket)?\b/g)) expect(declared, name).toContain(`"${name}"`);
    expect(findObject(prod, "ServiceMonitor", "scoreboard").apiVersion).toBe("monitoring.coreos.com/v1");
  });
});

describe("envoy", () => {
  it("routes every gateway route, RPC and stream, with stream timeouts and edge JWT on writes", async () => {
    expect(await checkEnvoyRoutes(renderChart())).toEqual([]);
    const prod = renderChart(production);
    expect(await checkEnvoyRoutes(prod)).toEqual([]);
    const { config } = envoyConfig(prod);
    const tls = config.static_resources.listeners[0].filter_chains[0].transport_socket;
    expect(tls.name).toBe("envoy.transport_sockets.tls");
    expect(config.static_resources.clusters.map((c: any) => c.name)).toEqual(
      expect.arrayContaining(["gateway", "gateway_websocket", "jwks", "otel_collector"]),
    );
  });

  it("answers its own refusals in the gateway's JSON error shape, and gRPC with a plain status", () => {
    const { config } = envoyConfig(renderChart());
    const local = config.static_resources.listeners[0].filter_chains[0].filters[0].typed_config.local_reply_config;
    // gRPC first: a JSON body would end up in grpc-message.
    expect(local.mappers[0].filter.header_filter.header).toEqual({ name: "content-type", string_match: { prefix: "application/grpc" } });
    expect(local.mappers[0].body_format_override).toEqual({ text_format_source: { inline_string: "%LOCAL_REPLY_BODY%" } });
    const codeFor = (status: number) =>
      local.mappers.find((m: any) => m.filter.status_code_filter?.comparison.value.default_value === status)?.body_format_override.json_format;
    expect(codeFor(401)).toEqual({ success: false, code: "unauthenticated", message: "%LOCAL_REPLY_BODY%" });
    expect(codeFor(429)).toEqual({ success: false, code: "resource_exhausted", message: "%LOCAL_REPLY_BODY%" });
    expect(codeFor(404)?.code).toBe("not_found");
    expect(local.body_format.json_format).toEqual({ success: false, code: "unavailable", message: "%LOCAL_REPLY_BODY%" });
  });

  it("notices a missing route and a stream with a timeout", async () => {
    const objects = renderChart();
    const configMap = objects.find((o) => o.metadata.name === "scoreboard-envoy" && o.kind === "ConfigMap") as any;
    const config = parse(configMap.data["envoy.yaml"]);
    const routes = config.static_resources.listeners[0].filter_chains[0].filters[0].typed_config.route_config.virtual_hosts[0].routes;
    routes.splice(
      routes.findIndex((r: any) => r.name === "write-update-score"),
      1,
    );
    routes.find((r: any) => r.name === "sse-leaderboard").route.timeout = "15s";
    configMap.data["envoy.yaml"] = stringify(config);
    const problems = await checkEnvoyRoutes(objects);
    expect(problems).toContainEqual(expect.stringContaining("POST /update-score (rest) does not reach the gateway"));
    expect(problems).toContainEqual(expect.stringContaining("GET /api/leaderboard/stream: a stream needs route timeout 0s"));
  });
});

describe("skaffold.yaml", () => {
  it("uses only skaffold/v4beta11 fields, builds the four images and deploys the chart", () => {
    expect(checkSkaffold()).toEqual([]);
  });

  it("notices a misspelt field and a missing Dockerfile", () => {
    const text = readFileSync(join(root, "skaffold.yaml"), "utf8")
      .replace("dockerfile: services/push/Dockerfile", "dockerfile: services/push/Dockerfil")
      .replace("useBuildkit:", "useBuildKit:");
    const problems = checkSkaffold(text);
    expect(problems).toContainEqual(expect.stringContaining("useBuildKit: not a field"));
    expect(problems).toContainEqual(expect.stringContaining("services/push/Dockerfil does not exist"));
  });
});

describe("image bundles", () => {
  // Bundled in a folder outside the repository, so nothing resolves through its node_modules.
  const out = mkdtempSync(join(tmpdir(), "sb-bundles-"));
  const children: ChildProcess[] = [];
  afterAll(async () => {
    await Promise.all(
      children
        .filter((c) => c.exitCode === null)
        .map((c) => {
          c.kill("SIGTERM");
          return once(c, "exit");
        }),
    );
    rmSync(out, { recursive: true, force: true });
  });

  it("bundle each deployable into files that migrate, boot and answer health checks", async () => {
    for (const name of Object.keys(bundleEntries) as Deployable[]) await bundleDeployable(name, join(out, name));
    const infra = inject("infra");
    const { db, url } = await freshMigratedDb(infra.databaseUrl);
    await db.destroy();
    const ports = { score: await freePort(), scoreGrpc: await freePort(), gateway: await freePort() };
    const env = {
      PATH: process.env.PATH,
      NODE_ENV: "production",
      DATABASE_URL: url,
      REDIS_URL: infra.redisUrl,
      NATS_URL: infra.natsUrl,
      JWT_SECRET: "k".repeat(40),
      EVENT_HMAC_KEYS: `k1:${Buffer.alloc(32, 1).toString("base64")}`,
      EVENT_HMAC_KEY_ID: "k1",
      EVENT_ENCRYPTION_KEYS: `e1:${Buffer.alloc(32, 2).toString("base64")}`,
      EVENT_ENCRYPTION_KEY_ID: "e1",
      SCORE_PORT: String(ports.score),
      SCORE_GRPC_PORT: String(ports.scoreGrpc),
      GATEWAY_PORT: String(ports.gateway),
      GATEWAY_HOST: "127.0.0.1",
      SCORE_URL: `http://127.0.0.1:${ports.scoreGrpc}`,
    };
    const run = (name: Deployable, ...args: string[]) => {
      const child = spawn(process.execPath, args, { cwd: join(out, name), env, stdio: ["ignore", "pipe", "pipe"] });
      let log = "";
      child.stdout!.on("data", (c: Buffer) => (log += c.toString()));
      child.stderr!.on("data", (c: Buffer) => (log += c.toString()));
      children.push(child);
      return { child, log: () => log };
    };

    // The migration Job's command: a no-op on a migrated database, and it exits.
    const migrate = run("score", "scoreboard.mjs", "migrate");
    const [code] = (await once(migrate.child, "exit")) as [number];
    expect(code, migrate.log()).toBe(0);
    expect(migrate.log()).toContain("schema up to date");

    const score = run("score", "main.mjs");
    const gateway = run("gateway", "main.mjs");
    const health = async (port: number) => {
      const res = await fetch(`http://127.0.0.1:${port}/grpc.health.v1.Health/Check`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: "{}",
      });
      return res.ok ? ((await res.json()) as { status?: string }).status : undefined;
    };
    for (const [port, proc] of [
      [ports.score, score],
      [ports.gateway, gateway],
    ] as const) {
      const deadline = Date.now() + 30_000;
      let status: string | undefined;
      while (status !== "SERVING" && Date.now() < deadline && proc.child.exitCode === null) {
        status = await health(port).catch(() => undefined);
        if (status !== "SERVING") await new Promise((r) => setTimeout(r, 200));
      }
      expect(status, proc.log()).toBe("SERVING");
    }
    // The demo page is bundled at gateway start from the files shipped beside the bundle.
    const page = await fetch(`http://127.0.0.1:${ports.gateway}/app.js`);
    expect(page.status).toBe(200);
    expect((await page.text()).length).toBeGreaterThan(1000);
    for (const port of [ports.score, ports.gateway]) {
      expect((await fetch(`http://127.0.0.1:${port}/readyz`)).status).toBe(200);
      // prom-client survives bundling: the scrape the chart annotates answers.
      expect(await (await fetch(`http://127.0.0.1:${port}/metrics`)).text()).toMatch(/^sb_/m);
    }
  });
});
