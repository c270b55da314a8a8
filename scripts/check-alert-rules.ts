// Checks the chart's PrometheusRule as promtool would, and against the code
// (promtool itself is not reachable here): every expression parses with
// Prometheus's own PromQL grammar (@prometheus-io/lezer-promql); every metric
// it names is one a process exports (ProcessMetrics, the one home of the sb_*
// families, and a getter some process feeds), a series the rules record, or
// one of the few external names below; label matchers use labels the metric
// has, `le` a bucket it has, and a `code=~` the codes the shared error
// mapping answers with a 5xx; every alert has a severity, a summary and a
// runbook_url whose #anchor is a heading of docs/operations.md.
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { Code } from "@connectrpc/connect";
import { parser } from "@prometheus-io/lezer-promql";
import { codeName, httpStatusOf } from "@scoreboard/platform/errors";
import { ProcessMetrics } from "@scoreboard/platform/metrics";
import { root, type K8sObject } from "./check-chart.js";

/**
 * Series the rules may name that no Scoreboard process exports. Kept short on
 * purpose: each is a dependency of the alerts on something the chart does not
 * install, and docs/operations.md says so.
 */
export const EXTERNAL_METRICS: Readonly<Record<string, string>> = {
  // kube-state-metrics (kube-prometheus-stack ships it): a pod's Ready condition.
  kube_pod_status_ready: "kube-state-metrics",
  kube_pod_container_status_ready: "kube-state-metrics",
};

// Labels Prometheus adds to every series scraped through the ServiceMonitor.
const TARGET_LABELS = new Set(["namespace", "job", "pod", "container", "service", "endpoint", "instance"]);
const SEVERITIES = new Set(["critical", "warning", "info"]);

/** The Connect codes answered with an HTTP 5xx (httpStatusOf): what a `code=~` selector of server errors must list. */
export const serverErrorCodes: string[] = Object.values(Code)
  .filter((c): c is Code => typeof c === "number")
  .filter((c) => httpStatusOf(c) >= 500)
  .map(codeName);

/** One series name a process exposes: its labels, buckets for a histogram's _bucket, and the ProcessMetrics getter behind it. */
export interface ExportedSeries {
  labels: Set<string>;
  buckets?: readonly number[];
  /** undefined for Node's default process metrics. */
  getter?: string;
}

/**
 * Every series name ProcessMetrics can register, from prom-client's own
 * registry: each getter is called once and the families it adds are noted.
 */
export function exportedMetrics(): Map<string, ExportedSeries> {
  const metrics = new ProcessMetrics();
  const series = new Map<string, ExportedSeries>();
  const collect = (getter?: string) => {
    for (const family of metrics.registry.getMetricsAsArray() as unknown as Array<{
      name: string;
      type: string;
      labelNames: string[];
      upperBounds?: number[];
    }>) {
      const labels = new Set(family.labelNames);
      const base = family.type === "histogram" || family.type === "summary";
      const names = base ? [`${family.name}_sum`, `${family.name}_count`] : [family.name];
      for (const name of names) if (!series.has(name)) series.set(name, { labels, getter });
      if (family.type === "histogram" && !series.has(`${family.name}_bucket`)) {
        series.set(`${family.name}_bucket`, { labels: new Set([...labels, "le"]), buckets: family.upperBounds, getter });
      }
      if (family.type === "summary" && !series.has(family.name)) series.set(family.name, { labels: new Set([...labels, "quantile"]), getter });
    }
  };
  collect();
  for (const [getter, descriptor] of Object.entries(Object.getOwnPropertyDescriptors(ProcessMetrics.prototype))) {
    if (!descriptor.get) continue;
    void (metrics as unknown as Record<string, unknown>)[getter];
    collect(getter);
  }
  return series;
}

/** Non-test sources of the processes, where a getter must be used for its series to be fed. */
function processSources(): string {
  const dirs = ["packages/platform/src", "gateway/src", ...readdirSync(join(root, "services")).map((s) => `services/${s}/src`)];
  return dirs
    .flatMap((dir) => (readdirSync(join(root, dir), { recursive: true }) as string[]).map((f) => join(dir, f)))
    .filter((f) => f.endsWith(".ts") && !f.endsWith(".test.ts") && !f.endsWith("platform/src/metrics.ts"))
    .map((f) => readFileSync(join(root, f), "utf8"))
    .join("\n");
}

/** GitHub's heading anchors of a Markdown text (lower case, punctuation dropped, spaces to hyphens), code blocks skipped. */
export function headingAnchors(markdown: string): Set<string> {
  const anchors = new Set<string>();
  let fenced = false;
  for (const line of markdown.split("\n")) {
    if (/^\s*```/.test(line)) fenced = !fenced;
    const heading = !fenced && /^#{1,6}\s+(.*?)\s*#*\s*$/.exec(line);
    if (heading)
      anchors.add(
        heading[1]!
          .toLowerCase()
          .replace(/[^\p{L}\p{N}\s_-]/gu, "")
          .replace(/\s/g, "-"),
      );
  }
  return anchors;
}

interface Selector {
  name: string | undefined;
  matchers: Array<{ label: string; op: string; value: string }>;
}

/** Parse errors (offsets) and the vector selectors of one PromQL expression. */
export function analyseExpr(expr: string): { errorsAt: number[]; selectors: Selector[] } {
  const errorsAt: number[] = [];
  const selectors: Selector[] = [];
  const text = (node: { from: number; to: number }) => expr.slice(node.from, node.to);
  const unquote = (literal: string) => (literal.startsWith('"') ? (JSON.parse(literal) as string) : literal.slice(1, -1));
  parser.parse(expr).iterate({
    enter(ref) {
      if (ref.type.isError) errorsAt.push(ref.from);
      if (ref.name !== "VectorSelector") return;
      const node = ref.node;
      const selector: Selector = { name: undefined, matchers: [] };
      const identifier = node.getChild("Identifier");
      if (identifier) selector.name = text(identifier);
      for (const matcher of node.getChild("LabelMatchers")?.getChildren("UnquotedLabelMatcher") ?? []) {
        const [label, op, value] = [matcher.getChild("LabelName"), matcher.getChild("MatchOp"), matcher.getChild("StringLiteral")];
        if (!label || !op || !value) continue;
        const m = { label: text(label), op: text(op), value: unquote(text(value)) };
        if (m.label === "__name__" && m.op === "=") selector.name = m.value;
        else selector.matchers.push(m);
      }
      selectors.push(selector);
    },
  });
  return { errorsAt, selectors };
}

interface Rule {
  alert?: string;
  record?: string;
  expr?: unknown;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

export interface AlertRuleContext {
  /** docs/operations.md's text (read from the tree by default). */
  docs?: string;
  exported?: Map<string, ExportedSeries>;
}

/** Every problem found in the rendered PrometheusRules; empty when all is well. */
export function checkAlertRules(objects: K8sObject[], context: AlertRuleContext = {}): string[] {
  const problems: string[] = [];
  const rules = objects
    .filter((o) => o.kind === "PrometheusRule")
    .flatMap((o) => ((o.spec as { groups?: Array<{ rules?: Rule[] }> }).groups ?? []).flatMap((g) => g.rules ?? []));
  if (rules.length === 0) return ["no PrometheusRule with rules is rendered"];
  const exported = context.exported ?? exportedMetrics();
  const anchors = headingAnchors(context.docs ?? readFileSync(join(root, "docs/operations.md"), "utf8"));
  const recorded = new Set(rules.flatMap((r) => (r.record ? [r.record] : [])));
  const sources = processSources();
  const unfed = new Set<string>();

  for (const rule of rules) {
    const id = rule.alert ?? rule.record ?? "a rule without alert or record";
    if (typeof rule.expr !== "string" || rule.expr.trim() === "") {
      problems.push(`${id}: no expr`);
      continue;
    }
    const { errorsAt, selectors } = analyseExpr(rule.expr);
    if (errorsAt.length > 0) problems.push(`${id}: expr does not parse at "${rule.expr.slice(errorsAt[0], errorsAt[0]! + 20)}"`);
    for (const { name, matchers } of selectors) {
      if (!name) {
        problems.push(`${id}: a selector without a metric name`);
        continue;
      }
      if (recorded.has(name) || name in EXTERNAL_METRICS) continue;
      const series = exported.get(name);
      if (!series) {
        problems.push(`${id}: ${name} is not exported by any process (packages/platform/src/metrics.ts) nor an allowed external metric`);
        continue;
      }
      if (series.getter && !unfed.has(series.getter) && !sources.includes(`metrics.${series.getter}`)) {
        unfed.add(series.getter);
        problems.push(`${id}: ${name} is declared (ProcessMetrics.${series.getter}) but no process feeds it`);
      }
      for (const { label, op, value } of matchers) {
        if (!series.labels.has(label) && !TARGET_LABELS.has(label)) problems.push(`${id}: ${name} has no label "${label}"`);
        if (label === "le" && series.buckets && !(op === "=" && series.buckets.includes(Number(value)))) {
          problems.push(`${id}: ${name}{le${op}"${value}"} is not one of its buckets (${series.buckets.join(", ")})`);
        }
        if (label === "code" && op === "=~" && [...new Set(value.split("|"))].sort().join("|") !== [...serverErrorCodes].sort().join("|")) {
          problems.push(`${id}: code=~"${value}" is not the codes answered with a 5xx (${serverErrorCodes.join("|")})`);
        }
      }
    }
    if (!rule.alert) continue;
    if (!SEVERITIES.has(rule.labels?.severity ?? "")) problems.push(`${id}: severity label must be one of ${[...SEVERITIES].join(", ")}`);
    if (!rule.annotations?.summary) problems.push(`${id}: no summary annotation`);
    const anchor = /operations\.md#([^#]+)$/.exec(rule.annotations?.runbook_url ?? "")?.[1];
    if (!anchor) problems.push(`${id}: runbook_url must point to a section of docs/operations.md`);
    else if (!anchors.has(anchor)) problems.push(`${id}: runbook_url #${anchor} is no heading of docs/operations.md`);
  }
  return problems;
}
