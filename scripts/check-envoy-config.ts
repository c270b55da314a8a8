// Checks the rendered Envoy bootstrap against Envoy's own API, without an
// Envoy binary (none can be installed here): the YAML is parsed as
// envoy.config.bootstrap.v3.Bootstrap with @bufbuild/protobuf's fromJson and a
// registry built from the vendored descriptor set (charts/envoy-api/), so a
// misspelt field, a wrong type or an unknown typed_config @type fails the
// parse, every Any included. The parsed message is then walked for fields and
// enum values the API marks deprecated (Envoy warns on them today and drops
// them later) and for the protoc-gen-validate rules Envoy enforces at load
// that a parse does not: required messages and oneofs, non-empty strings and
// lists. Semantic checks (a cluster a route names exists, a regex compiles)
// still need `envoy --mode validate`; the routes are checked against the
// gateway by check-envoy-routes.ts, the edge rules by check-envoy-edge.ts.
// Run by test/envoy-config.test.ts, and by hand:
//   node --import tsx scripts/check-envoy-config.ts
import { readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { createFileRegistry, fromBinary, fromJson, getOption, type DescExtension, type DescField, type JsonValue, type Registry } from "@bufbuild/protobuf";
import { reflect, type ReflectMessage } from "@bufbuild/protobuf/reflect";
import { anyUnpack, FileDescriptorSetSchema, type Any } from "@bufbuild/protobuf/wkt";
import { parse } from "yaml";
import { renderChart, root, type K8sObject } from "./check-chart.js";
// Edge imports renderedBootstrap from here: a cycle ES modules resolve, as neither uses the other while loading.
import { checkEnvoyEdge } from "./check-envoy-edge.js";
import { checkEnvoyRoutes } from "./check-envoy-routes.js";

/**
 * The vendored API and the Envoy releases it describes (provenance in
 * charts/envoy-api/README.md). The chart's Envoy image must be one of them:
 * a newer Envoy needs a newer descriptor set, or fields it added (and
 * deprecations it made) go unseen.
 */
export const envoyApi = {
  file: "charts/envoy-api/envoy-api-2026-01.binpb",
  /** Envoy image tags whose configuration API this set covers. */
  imageTags: /^v1\.37\.\d+$/,
};

let cached: Registry | undefined;

export function envoyRegistry(): Registry {
  cached ??= createFileRegistry(fromBinary(FileDescriptorSetSchema, readFileSync(join(root, envoyApi.file))));
  return cached;
}

/** The envoy.yaml of the rendered Envoy ConfigMap, as plain JSON. */
export function renderedBootstrap(objects: K8sObject[]): JsonValue | undefined {
  const configMap = objects.find((o) => o.kind === "ConfigMap" && o.metadata.name.endsWith("-envoy")) as { data?: Record<string, string> } | undefined;
  const text = configMap?.data?.["envoy.yaml"];
  return text === undefined ? undefined : (parse(text, { uniqueKeys: true, strict: true }) as JsonValue);
}

/** Every problem with the bootstrap as Envoy's API sees it; [] when it parses clean. */
export function checkEnvoyBootstrap(bootstrap: JsonValue): string[] {
  const registry = envoyRegistry();
  const schema = registry.getMessage("envoy.config.bootstrap.v3.Bootstrap");
  if (!schema) throw new Error(`${envoyApi.file} has no envoy.config.bootstrap.v3.Bootstrap`);
  let message: ReturnType<typeof fromJson<typeof schema>>;
  try {
    message = fromJson(schema, bootstrap, { registry });
  } catch (err) {
    return [`not a valid Bootstrap: ${err instanceof Error ? err.message : String(err)}`];
  }
  const problems: string[] = [];
  walk(reflect(schema, message), "", registry, problems);
  return problems;
}

/** checkEnvoyBootstrap on the rendered chart; [] when Envoy is not rendered. */
export function checkEnvoyConfig(objects: K8sObject[]): string[] {
  const bootstrap = renderedBootstrap(objects);
  if (bootstrap === undefined) return [];
  const problems = checkEnvoyBootstrap(bootstrap);
  const deployment = objects.find((o) => o.kind === "Deployment" && o.metadata.name.endsWith("-envoy")) as any;
  const image: string | undefined = deployment?.spec.template.spec.containers.find((c: { name: string }) => c.name === "envoy")?.image;
  const tag = /:([^:@/]+)(@sha256:[a-f0-9]{64})?$/.exec(image ?? "")?.[1];
  if (!tag || !envoyApi.imageTags.test(tag)) {
    problems.push(`the Envoy image ${image} is not a release ${envoyApi.file} describes (${envoyApi.imageTags}): vendor the matching descriptor set`);
  }
  return problems;
}

interface Rules {
  required: DescExtension;
  fieldRules: DescExtension;
}

function validateRules(registry: Registry): Rules {
  const required = registry.getExtension("validate.required");
  const fieldRules = registry.getExtension("validate.rules");
  if (!required || !fieldRules) throw new Error(`${envoyApi.file} lacks protoc-gen-validate's validate.proto`);
  return { required, fieldRules };
}

/** Walks a parsed message, through every Any, reporting deprecated and invalid fields by path. */
function walk(message: ReflectMessage, path: string, registry: Registry, problems: string[]): void {
  const where = path || "(bootstrap)";
  if (message.desc.typeName === "google.protobuf.Any") {
    const inner = anyUnpack(message.message as Any, registry);
    const desc = inner && registry.getMessage(inner.$typeName);
    if (inner && desc) {
      if (desc.deprecated) problems.push(`${where}: ${desc.typeName} is deprecated`);
      walk(reflect(desc, inner), path, registry, problems);
    }
    return;
  }
  const rules = validateRules(registry);
  for (const oneof of message.desc.oneofs) {
    if (getOption(oneof, rules.required) === true && !oneof.fields.some((f) => message.isSet(f))) {
      problems.push(`${where}: one of ${oneof.fields.map((f) => f.name).join(", ")} is required`);
    }
  }
  for (const field of message.fields) {
    const at = path ? `${path}.${field.name}` : field.name;
    problems.push(...fieldRuleProblems(message, field, at, rules));
    if (!message.isSet(field)) continue;
    if (field.deprecated) problems.push(`${at} is deprecated (${message.desc.typeName})`);
    const value = message.get(field) as unknown;
    if (field.fieldKind === "enum") problems.push(...deprecatedEnum(field, [value as number], at));
    if (field.fieldKind === "message") walk(value as ReflectMessage, at, registry, problems);
    if (field.fieldKind === "list") {
      const items = [...(value as Iterable<unknown>)];
      if (field.listKind === "enum") problems.push(...deprecatedEnum(field, items as number[], at));
      if (field.listKind === "message") {
        for (const [i, item] of items.entries()) walk(item as ReflectMessage, `${at}[${i}]`, registry, problems);
      }
    }
    if (field.fieldKind === "map" && field.mapKind === "message") {
      for (const [key, item] of value as Iterable<[unknown, unknown]>) walk(item as ReflectMessage, `${at}[${String(key)}]`, registry, problems);
    }
  }
}

function deprecatedEnum(field: DescField, values: number[], at: string): string[] {
  const desc = field.fieldKind === "enum" ? field.enum : field.fieldKind === "list" && field.listKind === "enum" ? field.enum : undefined;
  if (!desc) return [];
  return values.flatMap((number) => {
    const value = desc.values.find((v) => v.number === number);
    return value?.deprecated ? [`${at}: ${value.name} is deprecated (${desc.typeName})`] : [];
  });
}

/**
 * The protoc-gen-validate rules a JSON parse cannot see and Envoy's loader
 * refuses: required messages, non-empty strings, lists with a minimum length.
 */
function fieldRuleProblems(message: ReflectMessage, field: DescField, at: string, rules: Rules): string[] {
  const fieldRules = getOption(field, rules.fieldRules) as { type?: { case?: string; value?: any } } | undefined;
  const rule = fieldRules?.type;
  if (!rule?.case) return [];
  if (field.oneof && !message.isSet(field)) return [];
  if (rule.case === "message" && rule.value?.required && !message.isSet(field)) return [`${at} is required`];
  if (rule.case === "string" && field.fieldKind === "scalar" && !rule.value?.ignoreEmpty) {
    const min = Number(rule.value?.minLen ?? 0n);
    if (min > 0 && String(message.get(field)).length < min) return [`${at} must have at least ${min} character(s)`];
  }
  if (rule.case === "repeated" && field.fieldKind === "list") {
    const min = Number(rule.value?.minItems ?? 0n);
    if (min > 0 && (message.get(field) as { size: number }).size < min) return [`${at} needs at least ${min} item(s)`];
  }
  return [];
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  let failed = false;
  for (const [label, files] of [
    ["values.yaml", []],
    ["values-production.yaml", ["values-production.yaml"]],
  ] as const) {
    const objects = renderChart([...files]);
    for (const [check, problems] of [
      ["Envoy API", checkEnvoyConfig(objects)],
      ["edge rules", checkEnvoyEdge(objects)],
      ["routes", await checkEnvoyRoutes(objects)],
    ] as const) {
      failed ||= problems.length > 0;
      console.log(`${problems.length === 0 ? "ok  " : "FAIL"} ${check} (${label})`);
      for (const p of problems) console.log(`     - ${p}`);
    }
  }
  process.exitCode = failed ? 1 : 0;
}
