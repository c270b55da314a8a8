// Score's own view of its calls: the buckets of its sb_rpc_duration_seconds
// histogram, scraped before and after a phase, without the load generator's
// client and scheduling in the figure.

/** Cumulative count per bucket bound (ms) of one method's histogram. */
export async function rpcBuckets(metricsUrl: string, method: string): Promise<Map<number, number>> {
  const text = await (await fetch(metricsUrl)).text();
  const buckets = new Map<number, number>();
  for (const m of text.matchAll(/^sb_rpc_duration_seconds_bucket\{([^}]*)\} (\d+)/gm)) {
    if (!m[1]!.includes(`method="${method}"`)) continue;
    const le = /le="([^"]+)"/.exec(m[1]!)![1]!;
    buckets.set(le === "+Inf" ? Infinity : Number(le) * 1000, Number(m[2]));
  }
  return buckets;
}

/** The bucket bound under which a share of the calls between two scrapes were answered. */
export function bucketPercentile(before: Map<number, number>, after: Map<number, number>, p: number): string {
  const bounds = [...after.keys()].sort((a, b) => a - b);
  const total = (after.get(Infinity) ?? 0) - (before.get(Infinity) ?? 0);
  if (total === 0) return "no calls recorded";
  const bound = bounds.find((b) => (after.get(b) ?? 0) - (before.get(b) ?? 0) >= p * total);
  return bound === undefined || bound === Infinity ? "> 10 s" : `≤ ${bound} ms`;
}
