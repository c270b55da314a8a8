// skaffold.yaml's own check. No npm package ships Skaffold's JSON schema and
// nothing else may be downloaded here, so this is a strict check of the
// fields we use, with the names and types of skaffold/v4beta11: an unknown or
// misspelt field fails, as it would in `skaffold diagnose`. It also checks
// what the schema cannot: the files exist, every artifact is one of our
// images, and the chart values that setValueTemplates/setValues name exist.
import { existsSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parse } from "yaml";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const chartDir = join(root, "charts/scoreboard");

type Shape = "string" | "boolean" | "integer" | "scalar" | "empty" | { object: Record<string, Shape>; required?: string[] } | { list: Shape } | { map: Shape };

const obj = (object: Record<string, Shape>, required: string[] = []): Shape => ({ object, required });
const artifact = obj({ image: "string", context: "string", docker: obj({ dockerfile: "string", buildArgs: { map: "string" }, target: "string" }) }, ["image"]);
const build = obj({
  tagPolicy: obj({ gitCommit: obj({ variant: "string", prefix: "string", ignoreChanges: "boolean" }), sha256: "empty", inputDigest: "empty" }),
  local: obj({ push: "boolean", useBuildkit: "boolean", useDockerCLI: "boolean", concurrency: "integer", tryImportMissing: "boolean" }),
  artifacts: { list: artifact },
});
const release = obj(
  {
    name: "string",
    chartPath: "string",
    namespace: "string",
    createNamespace: "boolean",
    valuesFiles: { list: "string" },
    setValues: { map: "scalar" },
    setValueTemplates: { map: "string" },
    wait: "boolean",
    upgradeOnChange: "boolean",
    skipBuildDependencies: "boolean",
  },
  ["name"],
);
const deploy = obj({ helm: obj({ releases: { list: release } }), statusCheck: "boolean", statusCheckDeadlineSeconds: "integer" });
const portForward = obj({ resourceType: "string", resourceName: "string", namespace: "string", port: "integer", localPort: "integer", address: "string" }, [
  "resourceType",
  "resourceName",
  "port",
]);
const config = obj(
  {
    apiVersion: "string",
    kind: "string",
    metadata: obj({ name: "string" }),
    build,
    deploy,
    portForward: { list: portForward },
    profiles: {
      list: obj(
        {
          name: "string",
          activation: { list: obj({ env: "string", kubeContext: "string", command: "string" }) },
          build,
          deploy,
          portForward: { list: portForward },
        },
        ["name"],
      ),
    },
  },
  ["apiVersion", "kind"],
);

function checkShape(value: unknown, shape: Shape, path: string, problems: string[]): void {
  const is = (ok: boolean, what: string) => ok || problems.push(`${path}: expected ${what}, got ${JSON.stringify(value)}`);
  if (shape === "string") return void is(typeof value === "string", "a string");
  if (shape === "boolean") return void is(typeof value === "boolean", "a boolean");
  if (shape === "integer") return void is(Number.isInteger(value), "an integer");
  if (shape === "scalar") return void is(["string", "number", "boolean"].includes(typeof value), "a scalar");
  if (shape === "empty") return void is(typeof value === "object" && value !== null && Object.keys(value).length === 0, "{}");
  if ("list" in shape) {
    if (!is(Array.isArray(value), "a list")) return;
    for (const [i, item] of (value as unknown[]).entries()) checkShape(item, shape.list, `${path}[${i}]`, problems);
    return;
  }
  if (!is(typeof value === "object" && value !== null && !Array.isArray(value), "a mapping")) return;
  const entries = Object.entries(value as Record<string, unknown>);
  if ("map" in shape) {
    for (const [k, v] of entries) checkShape(v, shape.map, `${path}.${k}`, problems);
    return;
  }
  for (const [key, item] of entries) {
    const field = shape.object[key];
    if (!field) problems.push(`${path}.${key}: not a field of skaffold/v4beta11 here (allowed: ${Object.keys(shape.object).join(", ")})`);
    else checkShape(item, field, `${path}.${key}`, problems);
  }
  for (const key of shape.required ?? []) if (!(key in (value as object))) problems.push(`${path}.${key} is required`);
}

/** Whether a dotted helm value path (a.b.c) exists in the chart's values.yaml. */
function valueExists(values: unknown, dotted: string): boolean {
  let node = values;
  for (const key of dotted.split(".")) {
    if (typeof node !== "object" || node === null || !(key in node)) return false;
    node = (node as Record<string, unknown>)[key];
  }
  return true;
}

export function checkSkaffold(text = readFileSync(join(root, "skaffold.yaml"), "utf8")): string[] {
  const problems: string[] = [];
  const doc = parse(text, { uniqueKeys: true, strict: true }) as Record<string, any>;
  checkShape(doc, config, "skaffold", problems);
  if (doc.apiVersion !== "skaffold/v4beta11") problems.push(`apiVersion ${doc.apiVersion}: these checks know skaffold/v4beta11`);
  if (doc.kind !== "Config") problems.push("kind must be Config");

  const values = parse(readFileSync(join(chartDir, "values.yaml"), "utf8"));
  const ours = ["gateway", "score", "ranking", "push"];
  const sections = [
    { at: "skaffold", build: doc.build, deploy: doc.deploy },
    ...(doc.profiles ?? []).map((p: any) => ({ at: `profile ${p.name}`, build: p.build, deploy: p.deploy })),
  ];
  for (const { at, build, deploy } of sections) {
    const images = new Set<string>();
    for (const a of build?.artifacts ?? []) {
      images.add(a.image);
      if (!ours.some((c) => a.image === `scoreboard-${c}`)) problems.push(`${at}: artifact ${a.image} is not one of the chart's images`);
      if ((a.context ?? ".") !== ".") problems.push(`${at}: ${a.image} must build from the repository root (one npm workspace)`);
      if (!existsSync(join(root, a.docker?.dockerfile ?? "Dockerfile"))) problems.push(`${at}: ${a.docker?.dockerfile} does not exist`);
    }
    if (build && images.size !== ours.length) problems.push(`${at}: builds ${[...images].join(", ")}; needs all four images`);
    for (const r of deploy?.helm?.releases ?? []) {
      if (!existsSync(join(root, r.chartPath ?? ""))) problems.push(`${at}: chartPath ${r.chartPath} does not exist`);
      for (const f of r.valuesFiles ?? []) if (!existsSync(join(root, f))) problems.push(`${at}: values file ${f} does not exist`);
      for (const [key, template] of Object.entries<string>(r.setValueTemplates ?? {})) {
        if (!valueExists(values, key)) problems.push(`${at}: setValueTemplates ${key} is not a chart value`);
        for (const [, name] of template.matchAll(/\.IMAGE_(?:REPO|TAG|DIGEST|FULLY_QUALIFIED)_([A-Za-z0-9_]+)/g)) {
          const artifacts = [...(doc.build?.artifacts ?? [])].map((a: any) => String(a.image).replace(/[^A-Za-z0-9]/g, "_"));
          if (!artifacts.includes(name!)) problems.push(`${at}: ${key} refers to image ${name}, which is not built`);
        }
      }
      for (const key of Object.keys(r.setValues ?? {})) if (!valueExists(values, key)) problems.push(`${at}: setValues ${key} is not a chart value`);
    }
  }
  const profiles = new Map<string, any>((doc.profiles ?? []).map((p: any) => [p.name, p]));
  for (const name of ["dev", "prod"]) if (!profiles.has(name)) problems.push(`profile ${name} is missing`);
  const dev = profiles.get("dev");
  if (dev && !dev.portForward?.some((f: any) => f.resourceName?.endsWith("-gateway") && f.localPort === 8080))
    problems.push("profile dev must forward the gateway to localhost:8080");
  const prod = profiles.get("prod");
  const prodFiles: string[] = prod?.deploy?.helm?.releases?.[0]?.valuesFiles ?? [];
  if (prod && !prodFiles.some((f) => f.endsWith("values-production.yaml"))) problems.push("profile prod must use values-production.yaml");
  return problems;
}
