// Builds the publishable package into dist/ (npm pack runs it as prepack):
//   dist/index.js       one ESM file for browsers, the generated scoreboard.v1
//                       code bundled in; protobuf-es and Connect stay imports
//                       (peer dependencies, shared with the app)
//   dist/**/*.d.ts      declarations, the generated ones under dist/gen/
// The bundled gen/ is a private workspace, so no published file may name
// @scoreboard/gen: the declarations point at their copies instead.
import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";
import ts from "typescript";

const packageDir = dirname(fileURLToPath(import.meta.url));
const root = resolve(packageDir, "../..");
const entry = join(packageDir, "src/index.ts");

export async function buildClient(outdir = join(packageDir, "dist")): Promise<string[]> {
  await rm(outdir, { recursive: true, force: true });
  await mkdir(outdir, { recursive: true });
  const manifest = JSON.parse(await readFile(join(packageDir, "package.json"), "utf8")) as { peerDependencies: Record<string, string> };
  await build({
    entryPoints: [entry],
    outfile: join(outdir, "index.js"),
    bundle: true,
    format: "esm",
    platform: "browser",
    target: "es2022",
    // A package name also covers its subpaths (@bufbuild/protobuf/codegenv2).
    external: Object.keys(manifest.peerDependencies),
    legalComments: "none",
    logLevel: "warning",
  });
  return [join(outdir, "index.js"), ...(await emitDeclarations(outdir))];
}

/** tsc's declarations for src/ and the gen/ files it imports, laid out under outdir. */
async function emitDeclarations(outdir: string): Promise<string[]> {
  const staging = "/sb-client-declarations";
  const options: ts.CompilerOptions = {
    target: ts.ScriptTarget.ES2022,
    lib: ["lib.es2023.d.ts", "lib.dom.d.ts", "lib.dom.iterable.d.ts"],
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    customConditions: ["@scoreboard/source"],
    strict: true,
    skipLibCheck: true,
    types: [],
    declaration: true,
    emitDeclarationOnly: true,
    rootDir: root,
    outDir: staging,
  };
  // tsc emits nothing for files it reached through node_modules (the gen
  // workspace link), so name the generated files the client uses as roots.
  const first = ts.createProgram([entry], options);
  const genDir = `${join(root, "gen")}/`;
  const generated = first
    .getSourceFiles()
    .map((f) => f.fileName)
    .filter((f) => f.startsWith(genDir));
  const program = ts.createProgram([entry, ...generated], options, undefined, first);
  const problems = ts.getPreEmitDiagnostics(program);
  if (problems.length > 0) {
    const host = { getCanonicalFileName: (f: string) => f, getCurrentDirectory: () => root, getNewLine: () => "\n" };
    throw new Error(`client declarations:\n${ts.formatDiagnostics(problems, host)}`);
  }
  const files = new Map<string, string>();
  program.emit(undefined, (file, text) => {
    const from = relative(staging, file);
    if (from.startsWith("gen/")) files.set(join(outdir, from), text);
    else if (from.startsWith("packages/client/src/")) {
      const to = join(outdir, relative("packages/client/src", from));
      files.set(
        to,
        text.replace(/(["'])@scoreboard\/gen\/([^"']+)\1/g, (_m, q: string, path: string) => `${q}./gen/${path}.js${q}`),
      );
    } else throw new Error(`unexpected declaration ${from}`);
  });
  for (const [file, text] of files) {
    await mkdir(dirname(file), { recursive: true });
    await writeFile(file, text);
  }
  return [...files.keys()];
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const files = await buildClient();
  console.log(`built @scoreboard/client: ${files.map((f) => relative(packageDir, f)).join(", ")}`);
}
