// What the mesh's Node processes say of themselves: memory, resident (VmRSS
// from /proc) and the V8 heap used (nodejs_heap_size_used_bytes from their
// /metrics), and their counters.
import { readFileSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";

export interface ProcessMemory {
  rssMiB: number;
  heapMiB: number;
}

const HEAP_SAMPLES = 6;
const SAMPLE_EVERY_MS = 400;

/**
 * Each process's VmRSS and V8 heap used. The heap is the least of a few
 * samples over ~2 s: heap used includes garbage not yet collected, and the
 * least is the nearest to what is live.
 */
export async function processMemory<N extends string>(processes: Record<N, { pid: number; url: string }>): Promise<Record<N, ProcessMemory>> {
  const names = Object.keys(processes) as N[];
  const heaps = new Map<N, number[]>(names.map((n) => [n, []]));
  for (let i = 0; i < HEAP_SAMPLES; i++) {
    if (i > 0) await sleep(SAMPLE_EVERY_MS);
    for (const name of names) heaps.get(name)!.push(await heapMiB(processes[name].url));
  }
  return Object.fromEntries(names.map((name) => [name, { rssMiB: rssMiB(processes[name].pid), heapMiB: Math.min(...heaps.get(name)!) }])) as Record<
    N,
    ProcessMemory
  >;
}

function rssMiB(pid: number): number {
  return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))![1]) / 1024;
}

async function heapMiB(baseUrl: string): Promise<number> {
  const metrics = await (await fetch(`${baseUrl}/metrics`)).text();
  const heap = /^nodejs_heap_size_used_bytes(?:\{[^}]*\})? ([\d.e+]+)/m.exec(metrics)?.[1];
  return heap ? Number(heap) / 2 ** 20 : Number.NaN;
}

/** A counter's value (summed over its labels) in a process's /metrics. */
export async function counterValue(baseUrl: string, name: string): Promise<number> {
  const text = await (await fetch(`${baseUrl}/metrics`)).text();
  let sum = 0;
  for (const match of text.matchAll(new RegExp(`^${name}(?:\\{[^}]*\\})? ([\\d.e+]+)$`, "gm"))) sum += Number(match[1]);
  return sum;
}
