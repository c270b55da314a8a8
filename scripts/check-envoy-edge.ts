// The rules an edge proxy facing hostile clients must keep, checked on the
// rendered Envoy config by class rather than by the one place each was once
// broken: every upstream TLS context verifies the host name; no access log
// writes a query string or a credential; every local rate limit has a bucket
// per client; the overload manager bounds heap and connections; every
// client-facing HTTP connection manager limits headers, bodies, streams and
// idle time; the Deployment drains before it exits. check-envoy-config.ts
// checks the same config against Envoy's API, check-envoy-routes.ts the
// routes against the gateway.
import type { JsonValue } from "@bufbuild/protobuf";
import type { K8sObject } from "./check-chart.js";
import { renderedBootstrap } from "./check-envoy-config.js";

type Json = any;

/** Every object in a JSON tree, with its path. */
function* objectsIn(value: JsonValue, path = ""): Generator<[Json, string]> {
  if (Array.isArray(value)) {
    for (const [i, item] of value.entries()) yield* objectsIn(item, `${path}[${i}]`);
  } else if (value && typeof value === "object") {
    yield [value, path];
    for (const [key, item] of Object.entries(value)) yield* objectsIn(item as JsonValue, path ? `${path}.${key}` : key);
  }
}

const typeIs = (object: Json, name: string) => typeof object?.["@type"] === "string" && object["@type"].endsWith(`.${name}`);

/** TLS to an upstream verifies the chain and the name: without a SAN match any certificate a public CA issued passes. */
export function checkUpstreamTls(bootstrap: JsonValue): string[] {
  const problems: string[] = [];
  for (const [tls, path] of objectsIn(bootstrap)) {
    if (!typeIs(tls, "UpstreamTlsContext")) continue;
    const validation = tls.common_tls_context?.validation_context;
    if (!tls.sni) problems.push(`${path}: upstream TLS without sni`);
    if (!validation?.trusted_ca) problems.push(`${path}: upstream TLS does not verify the certificate chain (no trusted_ca)`);
    const names = (validation?.match_typed_subject_alt_names ?? []) as Array<{ san_type?: string; matcher?: { exact?: string; suffix?: string } }>;
    const namesHost = names.some(
      (n) => n.san_type === "DNS" && (n.matcher?.exact === tls.sni || (n.matcher?.suffix && String(tls.sni).endsWith(n.matcher.suffix))),
    );
    if (!namesHost) problems.push(`${path}: upstream TLS does not check that the certificate names ${tls.sni ?? "the host"} (match_typed_subject_alt_names)`);
  }
  const clusters = new Map<string, Json>(((bootstrap as Json)?.static_resources?.clusters ?? []).map((c: Json) => [c.name, c]));
  for (const [jwks, path] of objectsIn(bootstrap)) {
    if (!jwks.http_uri || !("cache_duration" in jwks || "async_fetch" in jwks)) continue;
    if (!String(jwks.http_uri.uri).startsWith("https://")) problems.push(`${path}: JWKS fetched without TLS (${jwks.http_uri.uri})`);
    if (!typeIs(clusters.get(jwks.http_uri.cluster)?.transport_socket?.typed_config, "UpstreamTlsContext"))
      problems.push(`${path}: JWKS cluster ${jwks.http_uri.cluster} has no TLS`);
  }
  return problems;
}

// Headers that carry credentials, by name or by their look.
const credentialHeader = /^(authorization|proxy-authorization|cookie|set-cookie|x-api-key)$|token|secret|jwt|session|password/i;
const pathHeader = /^(:path|x-envoy-original-path)$/i;

/** Access logs keep queries (?access_token=) and credential headers out. */
export function checkAccessLogs(bootstrap: JsonValue): string[] {
  const problems: string[] = [];
  for (const [holder, path] of objectsIn(bootstrap)) {
    for (const [i, log] of ((Array.isArray(holder.access_log) ? holder.access_log : []) as Json[]).entries()) {
      const where = `${path ? `${path}.` : ""}access_log[${i}]`;
      const formats = [...objectsIn(log)].flatMap(([o]) => Object.values(o).filter((v): v is string => typeof v === "string" && v.includes("%")));
      if (formats.length === 0) problems.push(`${where}: no explicit format (Envoy's default logs the path with its query)`);
      for (const format of formats) {
        for (const [, operator, args = ""] of format.matchAll(/%([A-Z_]+)(?:\(([^)]*)\))?(?::\d+)?%/g)) {
          const headers = args.split("?");
          if (["REQ", "RESP", "TRAILER", "REQ_WITHOUT_QUERY"].includes(operator!) && headers.some((h) => credentialHeader.test(h))) {
            problems.push(`${where}: logs the credential header ${args} (${format})`);
          }
          if (operator === "REQ" && headers.some((h) => pathHeader.test(h)))
            problems.push(`${where}: logs the path with its query string (${format}); use REQ_WITHOUT_QUERY`);
          if (operator === "PATH" && !/\bNQ\b/.test(args)) problems.push(`${where}: %PATH% keeps the query string unless NQ (${format})`);
          if (operator === "DYNAMIC_METADATA" && /jwt_authn/.test(args)) problems.push(`${where}: logs the JWT's payload (${format})`);
        }
      }
    }
  }
  return problems;
}

const clientKeys = ["remote_address", "masked_remote_address"];

/** A local rate limit gives each client address its own bucket, so one abuser cannot get everyone refused. */
export function checkRateLimits(bootstrap: JsonValue): string[] {
  const problems: string[] = [];
  const routeActions = [...objectsIn(bootstrap)].flatMap(([o]) => (Array.isArray(o.rate_limits) && !typeIs(o, "LocalRateLimit") ? o.rate_limits : []));
  for (const [limit, path] of objectsIn(bootstrap)) {
    if (!typeIs(limit, "LocalRateLimit")) continue;
    const perClient = ((limit.descriptors ?? []) as Json[]).find(
      (d) => (d.entries ?? []).some((e: Json) => clientKeys.includes(e.key) && !e.value) && d.token_bucket,
    );
    if (!perClient) {
      problems.push(`${path}: one bucket for every client (add a descriptor keyed on ${clientKeys.join(" or ")} without a value)`);
      continue;
    }
    const key = perClient.entries.find((e: Json) => clientKeys.includes(e.key)).key;
    const actions = (limit.rate_limits ?? routeActions) as Json[];
    if (!actions.some((r) => (r.actions ?? []).some((a: Json) => key in a)))
      problems.push(`${path}: no rate_limits action produces the ${key} descriptor, so the per-client bucket is never used`);
    if (!(Number(limit.max_dynamic_descriptors) > 0)) problems.push(`${path}: max_dynamic_descriptors unset (Envoy keeps 20 clients' buckets)`);
  }
  return problems;
}

/** The overload manager bounds the heap and the open client connections. */
export function checkOverload(bootstrap: JsonValue): string[] {
  const overload = (bootstrap as Json)?.overload_manager;
  const monitors = (overload?.resource_monitors ?? []) as Json[];
  const problems: string[] = [];
  const heap = monitors.find((m) => typeIs(m.typed_config, "FixedHeapConfig"));
  if (!(Number(heap?.typed_config.max_heap_size_bytes) > 0)) problems.push("overload_manager: no fixed_heap monitor with max_heap_size_bytes");
  const connections = monitors.find((m) => typeIs(m.typed_config, "DownstreamConnectionsConfig"));
  if (!(Number(connections?.typed_config.max_active_downstream_connections) > 0)) problems.push("overload_manager: no global downstream connection limit");
  const triggered = (action: string) =>
    ((overload?.actions ?? []) as Json[]).some((a) => a.name === action && (a.triggers ?? []).some((t: Json) => t.name === heap?.name));
  for (const action of ["envoy.overload_actions.shrink_heap", "envoy.overload_actions.stop_accepting_requests"]) {
    if (!triggered(action)) problems.push(`overload_manager: ${action} is not triggered by the heap`);
  }
  return problems;
}

const seconds = (d: unknown) => (typeof d === "string" && /^\d+(\.\d+)?s$/.test(d) ? Number(d.slice(0, -1)) : Number.NaN);

/** Every listener that reaches the gateway limits what one client may make it hold. */
export function checkClientLimits(bootstrap: JsonValue): string[] {
  const problems: string[] = [];
  for (const listener of ((bootstrap as Json)?.static_resources?.listeners ?? []) as Json[]) {
    const hcms = ((listener.filter_chains ?? []) as Json[]).flatMap((c) =>
      (c.filters ?? []).map((f: Json) => f.typed_config).filter((t: Json) => typeIs(t, "HttpConnectionManager")),
    );
    const clusters = hcms.flatMap((h) => [...objectsIn(h.route_config ?? {})].map(([o]) => o.cluster).filter(Boolean));
    if (clusters.every((c) => c === "envoy_admin")) continue;
    const where = `listener ${listener.name}`;
    if (listener.ignore_global_conn_limit) problems.push(`${where}: ignores the global connection limit`);
    if (!(listener.per_connection_buffer_limit_bytes > 0)) problems.push(`${where}: no per_connection_buffer_limit_bytes (1 MiB default per connection)`);
    if (listener.drain_type === "MODIFY_ONLY") problems.push(`${where}: drain_type MODIFY_ONLY never drains on shutdown`);
    for (const hcm of hcms) {
      const common = hcm.common_http_protocol_options ?? {};
      if (!(hcm.max_request_headers_kb > 0)) problems.push(`${where}: max_request_headers_kb unset`);
      if (!["REJECT_REQUEST", "DROP_HEADER"].includes(common.headers_with_underscores_action))
        problems.push(`${where}: headers with underscores are let through (they alias dashed ones upstream)`);
      if (!(common.max_headers_count > 0)) problems.push(`${where}: max_headers_count unset`);
      for (const [name, value] of [
        ["request_headers_timeout", hcm.request_headers_timeout],
        ["stream_idle_timeout", hcm.stream_idle_timeout],
        ["idle_timeout", common.idle_timeout],
      ]) {
        if (!(seconds(value) > 0)) problems.push(`${where}: ${name} unset or 0 (a silent client holds its slot for good)`);
      }
      if (!(hcm.http2_protocol_options?.max_concurrent_streams > 0)) problems.push(`${where}: http2 max_concurrent_streams unset`);
      if (hcm.use_remote_address !== true)
        problems.push(`${where}: use_remote_address is off, so the client address (rate limits, logs) is whatever X-Forwarded-For claims`);
      const filters = ((hcm.http_filters ?? []) as Json[]).map((f) => f.name);
      const buffer = ((hcm.http_filters ?? []) as Json[]).find((f) => f.name === "envoy.filters.http.buffer");
      if (!(buffer?.typed_config?.max_request_bytes > 0)) problems.push(`${where}: no request body limit (buffer filter with max_request_bytes)`);
      else if (filters.indexOf("envoy.filters.http.buffer") > filters.indexOf("envoy.filters.http.router"))
        problems.push(`${where}: the buffer filter must come before the router`);
    }
  }
  return problems;
}

/** Kubernetes quantity to bytes (the forms the chart's schema allows). */
function bytesOf(quantity: string | number | undefined): number {
  const m = /^(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|k|M|G|T)?$/.exec(String(quantity ?? ""));
  if (!m) return Number.NaN;
  const unit = { Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40, k: 1e3, M: 1e6, G: 1e9, T: 1e12 }[m[2] as string] ?? 1;
  return Number(m[1]) * unit;
}

/** The Deployment drains before Envoy exits, and the heap ceiling fits the container. */
export function checkEnvoyDeployment(objects: K8sObject[], bootstrap: JsonValue): string[] {
  const deployment = objects.find((o) => o.kind === "Deployment" && o.metadata.name.endsWith("-envoy")) as Json;
  if (!deployment) return ["no Envoy Deployment rendered"];
  const spec = deployment.spec.template.spec;
  const container = spec.containers.find((c: Json) => c.name === "envoy");
  const args: string[] = container.args ?? [];
  const arg = (name: string) => (args.includes(name) ? args[args.indexOf(name) + 1] : undefined);
  const problems: string[] = [];
  const drainS = Number(arg("--drain-time-s"));
  if (!(drainS > 0)) problems.push("envoy: no --drain-time-s (Envoy's default is 600 s)");
  if (!arg("--drain-strategy")) problems.push("envoy: no --drain-strategy");
  const preStop = JSON.stringify(container.lifecycle?.preStop ?? {});
  if (!preStop.includes("POST /drain_listeners?graceful")) problems.push("envoy: the preStop hook does not start a graceful drain");
  if (!preStop.includes(`sleep ${drainS}`)) problems.push(`envoy: the preStop hook does not wait the drain time (${drainS} s)`);
  if (!(spec.terminationGracePeriodSeconds > drainS))
    problems.push(`envoy: terminationGracePeriodSeconds ${spec.terminationGracePeriodSeconds} cuts the ${drainS} s drain short`);
  const heap = Number(
    (bootstrap as Json)?.overload_manager?.resource_monitors?.find((m: Json) => typeIs(m.typed_config, "FixedHeapConfig"))?.typed_config.max_heap_size_bytes,
  );
  const limit = bytesOf(container.resources?.limits?.memory);
  if (!(heap <= limit * 0.9))
    problems.push(
      `envoy: max_heap_size_bytes ${heap} leaves under 10 % of the ${container.resources?.limits?.memory} memory limit (the kernel kills Envoy before it sheds load)`,
    );
  return problems;
}

/** Every edge rule on the rendered chart; [] when Envoy is not rendered. */
export function checkEnvoyEdge(objects: K8sObject[]): string[] {
  const bootstrap = renderedBootstrap(objects);
  if (bootstrap === undefined) return [];
  return [
    ...checkUpstreamTls(bootstrap),
    ...checkAccessLogs(bootstrap),
    ...checkRateLimits(bootstrap),
    ...checkOverload(bootstrap),
    ...checkClientLimits(bootstrap),
    ...checkEnvoyDeployment(objects, bootstrap),
  ];
}
