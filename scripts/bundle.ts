// Bundles one deployable into a self-contained folder for its container image:
//   node --import tsx scripts/bundle.ts <gateway|score|ranking|push> <outdir>
// Each Dockerfile runs exactly this, and test/chart.test.ts runs it too, so
// the image's build step is exercised without Docker.
import { cp, mkdir, rm, writeFile } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

export type Deployable = "gateway" | "score" | "ranking" | "push";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");

/** Entry points per image: the process itself, plus the one-shot jobs the chart runs from that image. */
export const bundleEntries: Record<Deployable, Record<string, string>> = {
  gateway: { main: "gateway/src/main.ts" },
  // The operator CLI rides in the images whose pods hold the datastores'
  // addresses (`kubectl exec deploy/scoreboard-score -- node scoreboard.mjs`).
  // The chart's one-shot jobs run it too: the migration Job from score's image
  // (`scoreboard.mjs migrate`, score owns the schema), the reconciliation
  // CronJob from ranking's (`scoreboard.mjs reconcile`, ranking's repair).
  score: { main: "services/score/src/main.ts", scoreboard: "cli/main.ts" },
  ranking: { main: "services/ranking/src/main.ts", scoreboard: "cli/main.ts" },
  push: { main: "services/push/src/main.ts" },
};

// CommonJS dependencies (pg, ioredis, pino...) call require() for Node's
// built-ins; an ESM bundle has no require of its own, so give it one.
const banner = 'import { createRequire as __sbCreateRequire } from "node:module"; const require = __sbCreateRequire(import.meta.url);';

// What the demo page's runtime build (gateway/src/demo-page.ts bundles
// public/app.ts at start) must find next to the bundle: esbuild itself (a
// native binary, not bundleable) and the browser client's imports (with
// @scoreboard/gen and @scoreboard/client, copied below).
const gatewayRuntimePackages = ["esbuild", "@esbuild", "@connectrpc/connect", "@connectrpc/connect-web", "@bufbuild/protobuf"];

export async function bundleDeployable(name: Deployable, outdir: string): Promise<string[]> {
  await rm(outdir, { recursive: true, force: true });
  await mkdir(outdir, { recursive: true });
  const entryPoints = Object.entries(bundleEntries[name]).map(([out, entry]) => ({ out, in: join(root, entry) }));
  const result = await build({
    entryPoints,
    outdir,
    outExtension: { ".js": ".mjs" },
    bundle: true,
    platform: "node",
    format: "esm",
    target: "node24",
    banner: { js: banner },
    // pg's optional native binding is never installed; demo-page's esbuild is shipped beside the bundle.
    external: ["pg-native", "esbuild"],
    sourcemap: "linked",
    legalComments: "linked",
    logLevel: "warning",
    metafile: true,
  });
  // The ESM marker makes `node main.mjs` and any .js helper agree on the module type.
  await writeFile(join(outdir, "package.json"), `${JSON.stringify({ type: "module", private: true })}\n`);
  if (name === "gateway") {
    await cp(join(root, "gateway/src/public"), join(outdir, "public"), { recursive: true });
    for (const pkg of gatewayRuntimePackages) {
      await cp(join(root, "node_modules", pkg), join(outdir, "node_modules", pkg), { recursive: true, dereference: true });
    }
    // The generated code and the browser client are workspace links in
    // node_modules; copy the real files (the client's sources: the page is
    // bundled with its @scoreboard/source condition, never from a dist/).
    await cp(join(root, "gen"), join(outdir, "node_modules/@scoreboard/gen"), {
      recursive: true,
      filter: (src) => !src.includes("/node_modules"),
    });
    const client = join(root, "packages/client");
    await cp(client, join(outdir, "node_modules/@scoreboard/client"), {
      recursive: true,
      filter: (src) => src === client || src === join(client, "package.json") || (src.startsWith(join(client, "src")) && !src.endsWith(".test.ts")),
    });
  }
  return Object.keys(result.metafile.outputs).filter((f) => f.endsWith(".mjs"));
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const [name, outdir] = process.argv.slice(2);
  if (!name || !(name in bundleEntries) || !outdir) {
    console.error(`usage: bundle.ts <${Object.keys(bundleEntries).join("|")}> <outdir>`);
    process.exit(2);
  }
  const outputs = await bundleDeployable(name as Deployable, resolve(outdir));
  console.log(`bundled ${name}: ${outputs.join(", ")}`);
}
