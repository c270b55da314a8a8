// The chart's alerting rules, checked as promtool would and against the code
// (scripts/check-alert-rules.ts): rendered with the Prometheus operator's
// resources on, every expression parses, names only metrics the processes
// export, and each alert links to its runbook section in docs/operations.md.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { analyseExpr, checkAlertRules, exportedMetrics, headingAnchors, serverErrorCodes } from "../scripts/check-alert-rules.js";
import { chartDir, renderChart, type K8sObject } from "../scripts/check-chart.js";

const operatorOn = ["metrics.serviceMonitor.enabled=true", "metrics.prometheusRule.enabled=true"];

interface Rule {
  alert?: string;
  record?: string;
  expr: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

const rulesOf = (objects: K8sObject[]): Rule[] =>
  objects.filter((o) => o.kind === "PrometheusRule").flatMap((o) => (o.spec as { groups: Array<{ rules: Rule[] }> }).groups.flatMap((g) => g.rules));

/** A copy of the objects with one alert's rule changed. */
function withRule(objects: K8sObject[], alert: string, change: (rule: Rule) => void): K8sObject[] {
  const copy = structuredClone(objects);
  const rule = rulesOf(copy).find((r) => r.alert === alert);
  if (!rule) throw new Error(`no alert ${alert}`);
  change(rule);
  return copy;
}

describe("alert rules", () => {
  let dev: K8sObject[];
  let prod: K8sObject[];
  beforeAll(() => {
    dev = renderChart([], operatorOn);
    prod = renderChart(["values-production.yaml"]);
  });

  it("parse, name only exported metrics and labels, and link each alert to its runbook section", () => {
    expect(checkAlertRules(dev)).toEqual([]);
    expect(checkAlertRules(prod)).toEqual([]);
  });

  it("cover what the issue asks to page on, each with a severity", () => {
    const alerts = rulesOf(prod).filter((r) => r.alert);
    expect(alerts.map((r) => r.alert).sort()).toEqual([
      "ScoreboardDeadLetters",
      "ScoreboardHighServerErrorRatio",
      "ScoreboardOutboxStalled",
      "ScoreboardPodNotReady",
      "ScoreboardRankingConsumerLag",
      "ScoreboardRankingDegraded",
      "ScoreboardRateLimiterDegraded",
      "ScoreboardWriteErrorBudgetBurn",
      "ScoreboardWriteLatencyBudgetBurn",
    ]);
    const metricsOf = (alert: string) => analyseExpr(alerts.find((r) => r.alert === alert)!.expr).selectors.map((s) => s.name);
    expect(metricsOf("ScoreboardOutboxStalled")).toEqual(["sb_outbox_oldest_unpublished_age_seconds"]);
    expect(metricsOf("ScoreboardRankingConsumerLag")).toEqual(["sb_jetstream_consumer_pending"]);
    expect(metricsOf("ScoreboardDeadLetters")).toEqual(["sb_dead_letter_stream_messages"]);
    expect(metricsOf("ScoreboardRateLimiterDegraded")).toEqual(["sb_degraded"]);
    expect(metricsOf("ScoreboardPodNotReady")).toEqual(["kube_pod_status_ready"]);
    // Each links to its own section, not just any heading.
    for (const rule of alerts) expect(rule.annotations!.runbook_url).toMatch(new RegExp(`operations\\.md#${rule.alert!.toLowerCase()}$`));
    expect(new Set(alerts.map((r) => r.labels!.severity))).toEqual(new Set(["critical", "warning"]));
  });

  it("burn the write SLO's budgets over the SRE workbook's 1h/5m and 6h/30m windows", () => {
    const rules = rulesOf(prod);
    for (const [alert, ratio, target] of [
      ["ScoreboardWriteErrorBudgetBurn", "scoreboard:write_errors", "0.999"],
      ["ScoreboardWriteLatencyBudgetBurn", "scoreboard:write_slow", "0.99"],
    ] as const) {
      const expr = rules.find((r) => r.alert === alert)!.expr.replace(/\s+/g, " ");
      expect(expr).toMatch(
        new RegExp(
          `${ratio}:ratio_rate1h\\{[^}]*\\} > \\(14\\.4 \\* \\(1 - ${target}\\)\\) and ${ratio}:ratio_rate5m\\{[^}]*\\} > \\(14\\.4 \\* \\(1 - ${target}\\)\\)`,
        ),
      );
      expect(expr).toMatch(
        new RegExp(
          `${ratio}:ratio_rate6h\\{[^}]*\\} > \\(6 \\* \\(1 - ${target}\\)\\) and ${ratio}:ratio_rate30m\\{[^}]*\\} > \\(6 \\* \\(1 - ${target}\\)\\)`,
        ),
      );
      for (const window of ["5m", "30m", "1h", "6h"]) {
        const recorded = rules.find((r) => r.record === `${ratio}:ratio_rate${window}`);
        expect(recorded?.expr, `${ratio} over ${window}`).toContain(`[${window}]`);
      }
    }
    // The latency threshold the SLO states is a bucket the histograms have, and the schema offers exactly those.
    const buckets = exportedMetrics().get("sb_rpc_duration_seconds_bucket")!.buckets;
    expect(exportedMetrics().get("sb_http_duration_seconds_bucket")!.buckets).toEqual(buckets);
    const schema = JSON.parse(readFileSync(join(chartDir, "values.schema.json"), "utf8"));
    expect(schema.properties.metrics.properties.prometheusRule.properties.writeSlo.properties.latencySeconds.enum).toEqual(buckets);
    expect([...serverErrorCodes].sort()).toEqual(["data_loss", "deadline_exceeded", "internal", "unavailable", "unimplemented", "unknown"]);
  });

  it("fail on a misspelt metric, a parse error, an unknown label or bucket, and a missing runbook section", () => {
    const misspelt = withRule(
      prod,
      "ScoreboardOutboxStalled",
      (r) => (r.expr = r.expr.replace("sb_outbox_oldest_unpublished_age_seconds", "sb_outbox_oldest_unpublished_age_second")),
    );
    expect(checkAlertRules(misspelt)).toEqual([expect.stringContaining("ScoreboardOutboxStalled: sb_outbox_oldest_unpublished_age_second is not exported")]);

    const broken = withRule(prod, "ScoreboardDeadLetters", (r) => (r.expr = r.expr.replace(") > 0", " > 0")));
    expect(checkAlertRules(broken)).toEqual([expect.stringContaining("ScoreboardDeadLetters: expr does not parse")]);

    const wrongLabel = withRule(prod, "ScoreboardRankingDegraded", (r) => (r.expr = r.expr.replace("dependency=", "dependancy=")));
    expect(checkAlertRules(wrongLabel)).toEqual(['ScoreboardRankingDegraded: sb_degraded has no label "dependancy"']);

    const offBucket = structuredClone(prod);
    for (const rule of rulesOf(offBucket)) rule.expr = rule.expr.replaceAll('le="0.25"', 'le="0.3"');
    expect(checkAlertRules(offBucket)).toContainEqual(
      expect.stringMatching(/scoreboard:write_slow:ratio_rate5m: sb_http_duration_seconds_bucket\{le="0.3"\} is not one of its buckets/),
    );

    const noSection = withRule(
      prod,
      "ScoreboardPodNotReady",
      (r) => (r.annotations!.runbook_url = r.annotations!.runbook_url!.replace("#scoreboardpodnotready", "#scoreboardpodsnotready")),
    );
    expect(checkAlertRules(noSection)).toEqual(["ScoreboardPodNotReady: runbook_url #scoreboardpodsnotready is no heading of docs/operations.md"]);

    const noSeverity = withRule(prod, "ScoreboardPodNotReady", (r) => delete r.labels!.severity);
    expect(checkAlertRules(noSeverity)).toEqual([expect.stringContaining("ScoreboardPodNotReady: severity label must be")]);
  });

  it("render only with the operator's resources on, and refuse rules without the ServiceMonitor they rely on", () => {
    expect(renderChart().some((o) => o.kind === "PrometheusRule")).toBe(false);
    expect(() => renderChart([], ["metrics.prometheusRule.enabled=true"])).toThrow(/needs metrics.serviceMonitor.enabled/);
  });

  it("reads headings as GitHub anchors them, skipping code blocks", () => {
    expect(headingAnchors("# Operations\n```\n# not a heading\n```\n### ScoreboardOutboxStalled\n## When Redis goes away\n")).toEqual(
      new Set(["operations", "scoreboardoutboxstalled", "when-redis-goes-away"]),
    );
  });
});
