// The `scoreboard` process: cli/scoreboard runs this file from a checkout,
// and the score and ranking images carry it bundled as scoreboard.mjs, which
// the chart's Job and CronJob run (`node scoreboard.mjs migrate|reconcile`).
import { runCli } from "./dispatch.js";

const code = await runCli(process.argv.slice(2), {
  out: (s) => process.stdout.write(s),
  err: (s) => process.stderr.write(s),
});
// Exit once stdout has taken the output: a handle a client library left open
// (a pool draining, a reconnect timer) must not keep a finished command alive.
process.stdout.write("", () => process.exit(code));
