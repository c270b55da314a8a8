// CPU time of processes and their descendants, from /proc: what a benchmark
// divides by its work to say where each unit of work spent its CPU.
import { readdirSync, readFileSync } from "node:fs";

const TICKS_PER_S = 100; // USER_HZ on Linux

/** A process's parent, its own CPU ticks (utime + stime) and its reaped children's (cutime + cstime). */
function stat(pid: number | "self"): { ppid: number; own: number; reaped: number } | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, "utf8");
    // Fields after the command name, which may contain spaces: state is field 3.
    const fields = text.slice(text.lastIndexOf(")") + 2).split(" ");
    return { ppid: Number(fields[1]), own: Number(fields[11]) + Number(fields[12]), reaped: Number(fields[13]) + Number(fields[14]) };
  } catch {
    return undefined;
  }
}

/** CPU milliseconds used so far by `root`, every live process below it, and the children they reaped. */
export function treeCpuMs(root: number): number {
  const children = new Map<number, number[]>();
  const ticks = new Map<number, number>();
  for (const entry of readdirSync("/proc")) {
    const pid = Number(entry);
    if (!Number.isInteger(pid)) continue;
    const s = stat(pid);
    if (!s) continue;
    // Reaped children (PostgreSQL's backends of closed connections) stay counted.
    ticks.set(pid, s.own + s.reaped);
    children.set(s.ppid, [...(children.get(s.ppid) ?? []), pid]);
  }
  let total = 0;
  const pending = [root];
  while (pending.length > 0) {
    const pid = pending.pop()!;
    total += ticks.get(pid) ?? 0;
    pending.push(...(children.get(pid) ?? []));
  }
  return (total * 1000) / TICKS_PER_S;
}

/** This process's own CPU milliseconds (its children, the processes it started, are not in it). */
export function ownCpuMs(): number {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1000;
}

/** CPU milliseconds of this process's children that have exited and been waited for (e.g. a finished execFile). */
export function exitedChildrenCpuMs(): number {
  return (stat("self")!.reaped * 1000) / TICKS_PER_S;
}

/**
 * Snapshots several named process trees and named measures (ownCpuMs,
 * exitedChildrenCpuMs); `since` answers each one's CPU ms since the snapshot.
 */
export function cpuSnapshot(pids: Record<string, number | undefined>, measures: Record<string, () => number> = {}): { since(): Record<string, number> } {
  const measure = () => ({
    ...Object.fromEntries(Object.entries(pids).map(([name, pid]) => [name, pid ? treeCpuMs(pid) : 0])),
    ...Object.fromEntries(Object.entries(measures).map(([name, ms]) => [name, ms()])),
  });
  const before = measure();
  return {
    since: () => Object.fromEntries(Object.entries(measure()).map(([name, ms]) => [name, ms - before[name]!])),
  };
}

/** "name 0.12, other 0.30; all 0.42" per unit of work, and the share of one core over `seconds`. */
export function perUnit(cpu: Record<string, number>, units: number, seconds: number): string {
  const share = Object.entries(cpu)
    .map(([name, ms]) => `${name} ${(ms / units).toFixed(2)}`)
    .join(", ");
  const total = Object.values(cpu).reduce((a, b) => a + b, 0);
  return `${share}; all ${(total / units).toFixed(2)} (machine: ${(total / (seconds * 10)).toFixed(0)}% of one core)`;
}

/**
 * Waits until the trees of `pids` together use less than `idleShare` of one
 * core over a quarter second (work queued behind a phase, such as the outbox
 * relay and the ranking consumer catching up, is then counted in it), or
 * until `timeoutMs`.
 */
export async function settled(pids: number[], { idleShare = 0.1, timeoutMs = 15_000 } = {}): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const total = () => pids.reduce((sum, pid) => sum + treeCpuMs(pid), 0);
  while (Date.now() < deadline) {
    const before = total();
    await new Promise((r) => setTimeout(r, 250));
    if (total() - before < 250 * idleShare) return;
  }
}
