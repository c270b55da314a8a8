// Runs h2load with one fixed gRPC request (the body file, the same headers
// every time) and reads its summary. h2load sees HTTP statuses only: a gRPC
// error is a 200 with grpc-status in the trailers, so callers check results
// by other means (a real client call, the server's own counters).
import { execFile } from "node:child_process";
import { promisify } from "node:util";

const run = promisify(execFile);

export interface H2loadResult {
  seconds: number;
  done: number;
  /** Answers with an HTTP 2xx status. */
  ok: number;
  /** requests that failed, errored or timed out, and non-2xx answers, as h2load counts them. */
  failures: string[];
}

export async function runH2load(options: {
  url: string;
  bodyFile: string;
  headers: Record<string, string>;
  calls: number;
  clients: number;
  streamsPerClient: number;
}): Promise<H2loadResult> {
  const args = ["-n", String(options.calls), "-c", String(options.clients), "-m", String(options.streamsPerClient), "-d", options.bodyFile];
  for (const [name, value] of Object.entries(options.headers)) args.push("-H", `${name}: ${value}`);
  args.push(options.url);
  const { stdout } = await run("h2load", args, { maxBuffer: 16 << 20 });
  const finished = /finished in ([\d.]+)(ms|s)/.exec(stdout);
  const requests = /requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout/.exec(stdout);
  const codes = /status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx/.exec(stdout);
  if (!finished || !requests || !codes) throw new Error(`unexpected h2load output:\n${stdout}`);
  const failures: string[] = [];
  const [, , , , , failed, errored, timeout] = requests.map(Number);
  if (failed) failures.push(`${failed} failed`);
  if (errored) failures.push(`${errored} errored`);
  if (timeout) failures.push(`${timeout} timed out`);
  const [, , s3, s4, s5] = codes.map(Number);
  if (s3 || s4 || s5) failures.push(`HTTP ${s3} 3xx, ${s4} 4xx, ${s5} 5xx`);
  return {
    seconds: Number(finished[1]) / (finished[2] === "ms" ? 1000 : 1),
    done: Number(requests[3]),
    ok: Number(codes[1]),
    failures,
  };
}
