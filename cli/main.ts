// The `scoreboard` process: cli/scoreboard runs this file from a checkout,
// and the score and ranking images carry it bundled as scoreboard.mjs. The
// chart's Job and CronJob run `node migrate.mjs` and `node reconcile.mjs`:
// this same program bundled under a subcommand's name (scripts/bundle.ts),
// which then runs that subcommand, as a multi-call binary does.
import { basename } from "node:path";
import { commands, runCli } from "./dispatch.js";

const calledAs = basename(process.argv[1] ?? "", ".mjs");
const preset = commands.some((c) => c.name === calledAs) ? [calledAs] : [];
const code = await runCli([...preset, ...process.argv.slice(2)], {
  out: (s) => process.stdout.write(s),
  err: (s) => process.stderr.write(s),
});
// Exit once stdout has taken the output: a handle a client library left open
// (a pool draining, a reconnect timer) must not keep a finished command alive.
process.stdout.write("", () => process.exit(code));
