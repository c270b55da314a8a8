// Envoy at the edge, checked without an Envoy binary: the rendered bootstrap
// parses as the pinned release's API (charts/envoy-api/), every typed_config
// included, with no deprecated field; the edge rules hold (TLS names its
// host, logs keep tokens out, a bucket per client, overload and connection
// ceilings, header/body/stream limits, a drain before exit); and each check
// notices the bug it is there for.
import { beforeAll, describe, expect, it } from "vitest";
import { parse, stringify } from "yaml";
import { findObject, lintChart, renderChart, type K8sObject } from "../scripts/check-chart.js";
import { checkEnvoyBootstrap, checkEnvoyConfig, renderedBootstrap } from "../scripts/check-envoy-config.js";
import {
  checkAccessLogs,
  checkClientLimits,
  checkEnvoyDeployment,
  checkEnvoyEdge,
  checkOverload,
  checkRateLimits,
  checkUpstreamTls,
} from "../scripts/check-envoy-edge.js";
import { checkEnvoyRoutes } from "../scripts/check-envoy-routes.js";

const production = ["values-production.yaml"];
const hcmOf = (bootstrap: any) => bootstrap.static_resources.listeners[0].filter_chains[0].filters[0].typed_config;
const filterOf = (bootstrap: any, name: string) => hcmOf(bootstrap).http_filters.find((f: any) => f.name === name)?.typed_config;

describe("envoy config", () => {
  let dev: K8sObject[];
  let prod: K8sObject[];
  let devBootstrap: any;
  let prodBootstrap: any;
  beforeAll(() => {
    dev = renderChart();
    prod = renderChart(production);
    devBootstrap = renderedBootstrap(dev);
    prodBootstrap = renderedBootstrap(prod);
  });

  it("parses as the pinned Envoy release's Bootstrap, every typed_config included, with no deprecated field", () => {
    expect(checkEnvoyConfig(dev)).toEqual([]);
    expect(checkEnvoyConfig(prod)).toEqual([]);
    // Production turns on what dev leaves off: TLS, edge JWT with its JWKS cluster, tracing.
    expect(prodBootstrap.static_resources.clusters.map((c: any) => c.name)).toEqual(expect.arrayContaining(["jwks", "otel_collector"]));
  });

  it("notices a misspelt field, a wrong type, an unknown @type, a deprecated field and a missing required one", () => {
    const broken = (change: (b: any) => void) => {
      const copy = structuredClone(devBootstrap);
      change(copy);
      return checkEnvoyBootstrap(copy);
    };
    expect(broken((b) => (hcmOf(b).stream_idle_timout = "60s"))).toEqual([expect.stringContaining('key "stream_idle_timout" is unknown')]);
    expect(broken((b) => (hcmOf(b).use_remote_address = "yes"))).toEqual([expect.stringContaining("expected boolean")]);
    expect(broken((b) => (filterOf(b, "envoy.filters.http.buffer")["@type"] += "s"))).toEqual([
      expect.stringContaining("envoy.extensions.filters.http.buffer.v3.Buffers is not in the type registry"),
    ]);
    // Deprecated in the API (Envoy warns now, refuses later): text_format, match_subject_alt_names.
    const mapper = (b: any) => hcmOf(b).local_reply_config.mappers[0];
    expect(broken((b) => (mapper(b).body_format_override = { text_format: "%LOCAL_REPLY_BODY%" }))).toEqual([
      expect.stringMatching(/local_reply_config\.mappers\[0\]\.body_format_override\.text_format is deprecated/),
    ]);
    const prodCopy = structuredClone(prodBootstrap);
    const jwks = prodCopy.static_resources.clusters.find((c: any) => c.name === "jwks").transport_socket.typed_config.common_tls_context.validation_context;
    jwks.match_subject_alt_names = [{ exact: "auth.example.com" }];
    expect(checkEnvoyBootstrap(prodCopy)).toEqual([
      expect.stringMatching(/clusters\[\d\]\.transport_socket\.typed_config\.common_tls_context\.validation_context\.match_subject_alt_names is deprecated/),
    ]);
    // protoc-gen-validate rules Envoy enforces at load: a stat_prefix must not be empty.
    expect(broken((b) => delete hcmOf(b).stat_prefix)).toEqual([expect.stringContaining("typed_config.stat_prefix must have at least 1 character")]);
  });

  it("pins a release the vendored API describes, by tag and optionally by digest", () => {
    const image = (objects: K8sObject[]) => (findObject(objects, "Deployment", "scoreboard-envoy") as any).spec.template.spec.containers[0].image;
    expect(image(dev)).toMatch(/^envoyproxy\/envoy:v1\.37\.\d+$/);
    const digest = `sha256:${"a".repeat(64)}`;
    expect(image(renderChart([], [`envoy.image.digest=${digest}`]))).toMatch(new RegExp(`^envoyproxy/envoy:v1\\.37\\.\\d+@${digest}$`));
    expect(checkEnvoyConfig(renderChart([], ["envoy.image.tag=v1.38.2"]))).toContainEqual(
      expect.stringContaining("is not a release charts/envoy-api/envoy-api-2026-01.binpb describes"),
    );
    for (const bad of [
      "envoy.image.tag=latest",
      "envoy.image.digest=sha256:abc",
      "envoy.limits.restBodyBytes=1048576",
      "envoy.jwtAuthn.enabled=true,envoy.jwtAuthn.remoteJwksUri=http://idp.internal/jwks",
    ]) {
      expect(lintChart([], [bad]).code, bad).not.toBe(0);
    }
  });

  it("keeps the edge rules with the dev and the production values", async () => {
    expect(checkEnvoyEdge(dev)).toEqual([]);
    expect(checkEnvoyEdge(prod)).toEqual([]);
    expect(await checkEnvoyRoutes(prod)).toEqual([]);
    // The JWKS host is checked by name, not only by chain, and asked for by SNI.
    const tls = prodBootstrap.static_resources.clusters.find((c: any) => c.name === "jwks").transport_socket.typed_config;
    expect(tls.sni).toBe("auth.example.com");
    expect(tls.common_tls_context.validation_context.match_typed_subject_alt_names).toEqual([{ san_type: "DNS", matcher: { exact: "auth.example.com" } }]);
    // A bucket per client address and one safety bucket for all.
    const limit = filterOf(devBootstrap, "envoy.filters.http.local_ratelimit");
    expect(limit.descriptors[0].entries).toEqual([{ key: "masked_remote_address" }]);
    expect(limit.rate_limits[0].actions[0].masked_remote_address).toEqual({ v4_prefix_mask_len: 32, v6_prefix_mask_len: 64 });
    expect(limit.always_consume_default_token_bucket).toBe(true);
    expect(hcmOf(devBootstrap).access_log[0].typed_config.log_format.json_format.path).toBe("%REQ_WITHOUT_QUERY(X-ENVOY-ORIGINAL-PATH?:PATH)%");
  });

  it("notices each class of edge bug", () => {
    const withChange = (source: any, change: (b: any) => void) => {
      const copy = structuredClone(source);
      change(copy);
      return copy;
    };
    const log = (b: any) => hcmOf(b).access_log[0].typed_config.log_format.json_format;
    expect(checkAccessLogs(withChange(devBootstrap, (b) => (log(b).path = "%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%")))).toEqual([
      expect.stringContaining("logs the path with its query string"),
    ]);
    expect(checkAccessLogs(withChange(devBootstrap, (b) => (log(b).auth = "%REQ(AUTHORIZATION)%")))).toEqual([
      expect.stringContaining("logs the credential header AUTHORIZATION"),
    ]);
    expect(checkAccessLogs(withChange(devBootstrap, (b) => delete hcmOf(b).access_log[0].typed_config.log_format))).toEqual([
      expect.stringContaining("no explicit format"),
    ]);
    const jwksTls = (b: any) => b.static_resources.clusters.find((c: any) => c.name === "jwks").transport_socket.typed_config;
    expect(checkUpstreamTls(withChange(prodBootstrap, (b) => delete jwksTls(b).common_tls_context.validation_context.match_typed_subject_alt_names))).toEqual([
      expect.stringContaining("does not check that the certificate names auth.example.com"),
    ]);
    expect(checkRateLimits(withChange(devBootstrap, (b) => delete filterOf(b, "envoy.filters.http.local_ratelimit").descriptors))).toEqual([
      expect.stringContaining("one bucket for every client"),
    ]);
    expect(checkRateLimits(withChange(devBootstrap, (b) => delete filterOf(b, "envoy.filters.http.local_ratelimit").rate_limits))).toEqual([
      expect.stringContaining("the per-client bucket is never used"),
    ]);
    expect(checkOverload(withChange(devBootstrap, (b) => delete b.overload_manager))).toHaveLength(4);
    const limits = checkClientLimits(
      withChange(devBootstrap, (b) => {
        delete hcmOf(b).max_request_headers_kb;
        hcmOf(b).common_http_protocol_options.headers_with_underscores_action = "ALLOW";
        hcmOf(b).http_filters = hcmOf(b).http_filters.filter((f: any) => f.name !== "envoy.filters.http.buffer");
        b.static_resources.listeners[0].ignore_global_conn_limit = true;
      }),
    );
    expect(limits).toEqual([
      expect.stringContaining("ignores the global connection limit"),
      expect.stringContaining("max_request_headers_kb unset"),
      expect.stringContaining("headers with underscores are let through"),
      expect.stringContaining("no request body limit"),
    ]);
    const objects = structuredClone(dev);
    const spec = (findObject(objects, "Deployment", "scoreboard-envoy") as any).spec.template.spec;
    spec.terminationGracePeriodSeconds = 10;
    spec.containers[0].lifecycle.preStop.exec.command = ["sleep", "5"];
    spec.containers[0].resources.limits.memory = "128Mi";
    expect(checkEnvoyDeployment(objects, devBootstrap)).toEqual([
      expect.stringContaining("does not start a graceful drain"),
      expect.stringContaining("does not wait the drain time"),
      expect.stringContaining("cuts the 15 s drain short"),
      expect.stringContaining("leaves under 10 % of the 128Mi memory limit"),
    ]);
  });

  it("caps every route's body at the gateway's own limit, and never buffers a WebSocket", async () => {
    const objects = structuredClone(dev);
    const configMap = findObject(objects, "ConfigMap", "scoreboard-envoy") as any;
    const config = parse(configMap.data["envoy.yaml"]);
    const routes = hcmOf(config).route_config.virtual_hosts[0].routes;
    const route = (name: string) => routes.find((r: any) => r.name === name);
    expect(route("write-score").typed_per_filter_config["envoy.filters.http.buffer"].buffer.max_request_bytes).toBe(16384);
    delete route("write-score").typed_per_filter_config["envoy.filters.http.buffer"];
    delete route("ws-scoreboard").typed_per_filter_config["envoy.filters.http.buffer"];
    delete route("write-actions").route.max_stream_duration;
    route("sse-leaderboard").route.max_stream_duration = { max_stream_duration: "30s" };
    configMap.data["envoy.yaml"] = stringify(config);
    const problems = await checkEnvoyRoutes(objects);
    expect(problems).toContainEqual("POST /api/score/alice: Envoy lets 65536-byte bodies through, the gateway takes 16384");
    expect(problems).toContainEqual("GET /ws/scoreboard: a WebSocket route must disable the buffer filter");
    expect(problems).toContainEqual(expect.stringContaining("POST /api/actions: a unary route needs a max_stream_duration"));
    expect(problems).toContainEqual(expect.stringContaining("GET /api/leaderboard/stream: a stream with max_stream_duration 30s is cut while healthy"));
  });

  it("drains before it exits, within the grace period", () => {
    for (const [objects, drainS] of [
      [dev, 15],
      [prod, 20],
    ] as const) {
      const spec = (findObject(objects, "Deployment", "scoreboard-envoy") as any).spec.template.spec;
      const args: string[] = spec.containers[0].args;
      expect(args.slice(args.indexOf("--drain-time-s"), args.indexOf("--drain-time-s") + 4)).toEqual([
        "--drain-time-s",
        String(drainS),
        "--drain-strategy",
        "gradual",
      ]);
      expect(spec.containers[0].lifecycle.preStop.exec.command.at(-1)).toContain(`sleep ${drainS}`);
      expect(spec.terminationGracePeriodSeconds).toBe(drainS + 10);
    }
  });
});
