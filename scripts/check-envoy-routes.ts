// Checks the rendered Envoy config against the gateway's code: every route the
// gateway serves (gateway/src/routes.ts, its WebSocket streams in ws.ts, the
// demo page's assets in demo-page.ts, and every RPC it proxies in
// rpc-proxy.ts, live-service.ts) reaches the gateway; streams have no route timeout and an
// idle timeout longer than their heartbeats, unary routes a bound on their
// whole life; every request body is capped at Envoy at no more than the
// gateway's own limit for it, and a WebSocket's is never buffered; writes
// carry the JWT requirement when edge checks are on; /metrics stays private.
import { readFileSync, readdirSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import ts from "typescript";
import { parse } from "yaml";
import type { DescService } from "@bufbuild/protobuf";
import { EnvReader } from "@scoreboard/platform/config";
import { MAX_REQUEST_BYTES } from "@scoreboard/platform/rpc-server";
import { loadGatewayConfig } from "../gateway/src/config.js";
import { MAX_BODY_BYTES } from "../gateway/src/http.js";
import { loadPushConfig } from "../services/push/src/config.js";
import type { K8sObject } from "./check-chart.js";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");

export interface GatewayRoute {
  method: string;
  path: string;
  kind: "rest" | "stream" | "websocket" | "page" | "rpc" | "rpc-stream";
  /** Needs a token (a write): Envoy's JWT requirement applies when enabled. */
  write: boolean;
}

function sourceOf(path: string): ts.SourceFile {
  return ts.createSourceFile(path, readFileSync(join(root, path), "utf8"), ts.ScriptTarget.ES2022, true);
}

function walk(node: ts.Node, visit: (node: ts.Node) => void): void {
  visit(node);
  node.forEachChild((child) => walk(child, visit));
}

function stringProperty(literal: ts.ObjectLiteralExpression, name: string): string | undefined {
  for (const property of literal.properties) {
    if (ts.isPropertyAssignment(property) && property.name.getText() === name && ts.isStringLiteral(property.initializer)) {
      return property.initializer.text;
    }
  }
  return undefined;
}

/** Whether an object literal sets `name: true`. */
function isTrue(literal: ts.ObjectLiteralExpression, name: string): boolean {
  return literal.properties.some(
    (property) => ts.isPropertyAssignment(property) && property.name.getText() === name && property.initializer.kind === ts.SyntaxKind.TrueKeyword,
  );
}

/** The REST table in routes.ts: every `{ method, path, handler }` literal, SSE routes marked `stream: true`. */
function restRoutes(): GatewayRoute[] {
  const routes: GatewayRoute[] = [];
  walk(sourceOf("gateway/src/routes.ts"), (node) => {
    if (!ts.isObjectLiteralExpression(node)) return;
    const method = stringProperty(node, "method");
    const path = stringProperty(node, "path");
    if (!method || !path) return;
    const stream = isTrue(node, "stream");
    routes.push({ method, path: path.replace(/:[A-Za-z]+/g, "alice"), kind: stream ? "stream" : "rest", write: method === "POST" });
  });
  return routes;
}

/** The WebSocket dialects in ws.ts, keyed by path, and its other paths (every *_STREAM_PATH, its :boardId any id). */
function websocketRoutes(): GatewayRoute[] {
  const routes: GatewayRoute[] = [];
  walk(sourceOf("gateway/src/streaming/ws.ts"), (node) => {
    if (ts.isVariableDeclaration(node) && node.name.getText().endsWith("_STREAM_PATH") && node.initializer && ts.isStringLiteral(node.initializer)) {
      routes.push({ method: "GET", path: node.initializer.text.replace(/:[A-Za-z]+/g, "alice"), kind: "websocket", write: false });
    }
    if (ts.isVariableDeclaration(node) && node.name.getText() === "dialects" && node.initializer && ts.isObjectLiteralExpression(node.initializer)) {
      for (const property of node.initializer.properties) {
        if (property.name && ts.isStringLiteral(property.name)) routes.push({ method: "GET", path: property.name.text, kind: "websocket", write: false });
      }
    }
  });
  return routes;
}

/** The demo page's assets: the keys of the `assets` Map in demo-page.ts. */
function pageRoutes(): GatewayRoute[] {
  const routes: GatewayRoute[] = [];
  walk(sourceOf("gateway/src/demo-page.ts"), (node) => {
    if (ts.isArrayLiteralExpression(node) && node.elements.length === 2) {
      const first = node.elements[0]!;
      if (ts.isStringLiteral(first) && first.text.startsWith("/")) routes.push({ method: "GET", path: first.text, kind: "page", write: false });
    }
  });
  return routes;
}

/** The gateway's files that register services on its connect-node router. */
const RPC_REGISTRARS = ["gateway/src/rpc-proxy.ts", "gateway/src/streaming/live-service.ts"];

/** Every method of every service the gateway registers (RPC_REGISTRARS), from the generated descriptors. */
async function rpcRoutes(): Promise<GatewayRoute[]> {
  const registered = new Set<string>();
  for (const file of RPC_REGISTRARS) {
    walk(sourceOf(file), (node) => {
      if (ts.isCallExpression(node) && node.expression.getText().endsWith(".service") && node.arguments[0]) registered.add(node.arguments[0].getText());
    });
  }
  const services: DescService[] = [];
  const genDir = "gen/scoreboard/v1";
  for (const file of readdirSync(join(root, genDir)).filter((f) => f.endsWith("_pb.ts"))) {
    const module = (await import(`../${genDir}/${file}`)) as Record<string, unknown>;
    for (const name of registered) {
      const value = module[name] as DescService | undefined;
      if (value?.kind === "service") services.push(value);
    }
  }
  if (services.length !== registered.size)
    throw new Error(`${RPC_REGISTRARS.join(" and ")} register ${[...registered].join(", ")}; found descriptors for ${services.map((s) => s.name).join(", ")}`);
  return services.flatMap((service) =>
    service.methods.map((method) => ({
      method: "POST",
      path: `/${service.typeName}/${method.name}`,
      kind: method.methodKind === "unary" ? ("rpc" as const) : ("rpc-stream" as const),
      // ScoreService grants and BoardScoreService submissions; CatalogService's and BoardAdminService's changes
      // need admin:score. Reads and streams are public by default.
      write:
        service.name === "ScoreService" ||
        service.name === "BoardScoreService" ||
        ((service.name === "CatalogService" || service.name === "BoardAdminService") && !/^(List|Get)/.test(method.name)),
    })),
  );
}

export async function gatewayRoutes(): Promise<GatewayRoute[]> {
  return [...restRoutes(), ...websocketRoutes(), ...pageRoutes(), ...(await rpcRoutes())];
}

interface EnvoyRoute {
  name?: string;
  match: { path?: string; prefix?: string; safe_regex?: { regex: string }; headers?: Array<{ name: string; string_match?: { exact?: string } }> };
  route?: {
    cluster?: string;
    timeout?: string;
    idle_timeout?: string;
    max_stream_duration?: { max_stream_duration?: string };
    upgrade_configs?: Array<{ upgrade_type: string; enabled?: boolean }>;
  };
  direct_response?: unknown;
  typed_per_filter_config?: Record<string, { requirement_name?: string; disabled?: boolean; buffer?: { max_request_bytes?: number } }>;
}

/** The public listener's HTTP connection manager in the rendered Envoy ConfigMap. */
export function envoyConfig(objects: K8sObject[]): { hcm: any; routes: EnvoyRoute[]; config: any } {
  const configMap = objects.find((o) => o.kind === "ConfigMap" && o.metadata.name.endsWith("-envoy"));
  if (!configMap) throw new Error("no Envoy ConfigMap rendered");
  const config = parse((configMap as any).data["envoy.yaml"], { uniqueKeys: true, strict: true });
  const listener = config.static_resources.listeners.find((l: any) => l.name === "public");
  const hcm = listener.filter_chains[0].filters.find((f: any) => f.name === "envoy.filters.network.http_connection_manager").typed_config;
  return { hcm, routes: hcm.route_config.virtual_hosts.flatMap((v: any) => v.routes), config };
}

/** Envoy's first-match semantics for the matchers the chart uses (path, prefix, RE2 full match, exact :method). */
export function matchRoute(routes: EnvoyRoute[], method: string, path: string): EnvoyRoute | undefined {
  return routes.find(({ match }) => {
    const pathOk =
      match.path !== undefined
        ? match.path === path
        : match.prefix !== undefined
          ? path.startsWith(match.prefix)
          : match.safe_regex !== undefined
            ? new RegExp(`^(?:${match.safe_regex.regex})$`).test(path)
            : false;
    const headersOk = (match.headers ?? []).every((h) => h.name !== ":method" || h.string_match?.exact === undefined || h.string_match.exact === method);
    return pathOk && headersOk;
  });
}

function seconds(duration: string | undefined): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/.exec(duration ?? "");
  if (!m) return Number.NaN;
  return Number(m[1]) * { ms: 0.001, s: 1, m: 60, h: 3600 }[m[2] as "ms" | "s" | "m" | "h"];
}

/** The longest silence a healthy stream may have: heartbeats (the gateway's also paces WebSocket pings) from the code's defaults and the chart's values. */
function longestStreamSilenceS(chartHeartbeatMs: number | undefined): number {
  const push = loadPushConfig(new EnvReader({})).heartbeatMs;
  const gateway = loadGatewayConfig(new EnvReader({ JWT_SECRET: "x".repeat(32) })).streamHeartbeatMs;
  return Math.max(push, gateway, chartHeartbeatMs ?? 0) / 1000;
}

/** The body limit Envoy applies on a route: the gateway's own at most; none on a WebSocket (an upgrade never ends, so buffering holds it). */
function bodyLimitProblems(label: string, gatewayRoute: GatewayRoute, route: EnvoyRoute, filterLimit: number | undefined): string[] {
  const perRoute = route.typed_per_filter_config?.["envoy.filters.http.buffer"];
  if (gatewayRoute.kind === "websocket") return perRoute?.disabled === true ? [] : [`${label}: a WebSocket route must disable the buffer filter`];
  const limit = perRoute?.disabled ? undefined : (perRoute?.buffer?.max_request_bytes ?? filterLimit);
  const gatewayLimit = gatewayRoute.kind === "rpc" || gatewayRoute.kind === "rpc-stream" ? MAX_REQUEST_BYTES : MAX_BODY_BYTES;
  if (limit === undefined) return [`${label}: no request body limit at Envoy`];
  return limit > gatewayLimit ? [`${label}: Envoy lets ${limit}-byte bodies through, the gateway takes ${gatewayLimit}`] : [];
}

export async function checkEnvoyRoutes(objects: K8sObject[], chartHeartbeatMs?: number): Promise<string[]> {
  if (!objects.some((o) => o.kind === "ConfigMap" && o.metadata.name.endsWith("-envoy"))) return [];
  const { hcm, routes, config } = envoyConfig(objects);
  const problems: string[] = [];
  const jwtOn = (hcm.http_filters as Array<{ name: string }>).some((f) => f.name === "envoy.filters.http.jwt_authn");
  const filters = (hcm.http_filters as Array<{ name: string }>).map((f) => f.name);
  if (filters.at(-1) !== "envoy.filters.http.router") problems.push("the router must be the last HTTP filter");
  const clusters = new Set((config.static_resources.clusters as Array<{ name: string }>).map((c) => c.name));
  const protocolOf = (name: string) =>
    (config.static_resources.clusters as Array<{ name: string; typed_extension_protocol_options?: any }>).find((c) => c.name === name)
      ?.typed_extension_protocol_options?.["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]?.explicit_http_config;
  if (!protocolOf("gateway")?.http2_protocol_options) problems.push("the gateway cluster must speak HTTP/2 (streams multiplexed per connection)");
  if (!protocolOf("gateway_websocket")?.http_protocol_options) problems.push("the gateway_websocket cluster must speak HTTP/1.1 (WebSocket upgrades)");
  for (const route of routes) {
    if (route.route?.cluster && !clusters.has(route.route.cluster)) problems.push(`route ${route.name} goes to undefined cluster ${route.route.cluster}`);
  }

  const idleS = seconds(hcm.stream_idle_timeout);
  const silenceS = longestStreamSilenceS(chartHeartbeatMs);
  if (!(idleS > silenceS)) problems.push(`stream_idle_timeout ${hcm.stream_idle_timeout} must exceed the longest stream silence (${silenceS} s)`);
  const bufferFilter = (hcm.http_filters as Array<{ name: string; typed_config?: { max_request_bytes?: number } }>).find(
    (f) => f.name === "envoy.filters.http.buffer",
  );
  const hcmWebsocket = (hcm.upgrade_configs ?? []).find((u: any) => u.upgrade_type === "websocket");
  if (hcmWebsocket?.enabled !== false) problems.push("WebSocket upgrades should be off by default and on only for the gateway's WebSocket routes");

  for (const gatewayRoute of await gatewayRoutes()) {
    const label = `${gatewayRoute.method} ${gatewayRoute.path}`;
    const route = matchRoute(routes, gatewayRoute.method, gatewayRoute.path);
    // WebSocket upgrades need an HTTP/1.1 upstream; everything else goes over HTTP/2.
    const cluster = gatewayRoute.kind === "websocket" ? "gateway_websocket" : "gateway";
    if (!route || route.route?.cluster !== cluster) {
      problems.push(`${label} (${gatewayRoute.kind}) does not reach the gateway through Envoy's ${cluster} cluster`);
      continue;
    }
    const streaming = ["stream", "websocket", "rpc-stream"].includes(gatewayRoute.kind);
    if (streaming && route.route.timeout !== "0s") problems.push(`${label}: a stream needs route timeout 0s, has ${route.route.timeout}`);
    if (streaming && route.route.idle_timeout && !(seconds(route.route.idle_timeout) > silenceS))
      problems.push(`${label}: idle_timeout ${route.route.idle_timeout} is shorter than a heartbeat`);
    if (!streaming && !(seconds(route.route.timeout) > 0)) problems.push(`${label}: a unary route needs a finite timeout`);
    const lifetime = route.route.max_stream_duration?.max_stream_duration;
    if (!streaming && !(seconds(lifetime) > seconds(route.route.timeout)))
      problems.push(`${label}: a unary route needs a max_stream_duration above its timeout (a trickled upload holds it otherwise), has ${lifetime}`);
    if (streaming && lifetime && seconds(lifetime) > 0) problems.push(`${label}: a stream with max_stream_duration ${lifetime} is cut while healthy`);
    problems.push(...bodyLimitProblems(label, gatewayRoute, route, bufferFilter?.typed_config?.max_request_bytes));
    const websocket = route.route.upgrade_configs?.some((u) => u.upgrade_type === "websocket" && u.enabled !== false);
    if (gatewayRoute.kind === "websocket" && !websocket) problems.push(`${label}: WebSocket upgrade is not enabled on its route`);
    if (gatewayRoute.kind !== "websocket" && websocket) problems.push(`${label}: WebSocket upgrade enabled where the gateway serves none`);
    const requirement = route.typed_per_filter_config?.["envoy.filters.http.jwt_authn"]?.requirement_name;
    if (jwtOn && gatewayRoute.write && !requirement) problems.push(`${label}: a write without Envoy's JWT requirement`);
    if (!gatewayRoute.write && requirement) problems.push(`${label}: a public route requires a JWT at the edge`);
  }
  for (const privatePath of ["/metrics", "/grpc.health.v1.Health/Check", "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"]) {
    const route = matchRoute(routes, privatePath.startsWith("/grpc.") ? "POST" : "GET", privatePath);
    if (route?.route?.cluster) problems.push(`${privatePath} is exposed publicly through route ${route.name}`);
  }
  return problems;
}
