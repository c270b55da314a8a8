// Unknown fields in rendered objects. The OpenAPI validators check types and
// enums but let an unknown key through, and so does the API server unless
// asked for strict validation: a misspelt `readinesProbe` would deploy with no
// probe at all. TypeScript's excess-property check does catch it, so each
// object becomes an object literal typed by its kind's interface (from the
// same kubernetes-models packages) and is type-checked in memory.
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import ts from "typescript";
import type { K8sObject } from "./check-chart.js";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");

function typeModule(apiVersion: string, kind: string): string {
  if (apiVersion.startsWith("monitoring.coreos.com/")) return `@kubernetes-models/prometheus-operator/${apiVersion}/${kind}`;
  return `kubernetes-models/${apiVersion}/${kind}`;
}

export function findUnknownFields(objects: K8sObject[]): string[] {
  // A virtual file inside the repository, so node_modules and "type": "module" resolve as for our own code.
  const file = join(root, "scripts/__rendered-objects__.ts");
  const lines: string[] = [];
  const owner: string[] = [];
  objects.forEach((object, i) => {
    const start = lines.length;
    lines.push(`import type { I${object.kind} as T${i} } from "${typeModule(object.apiVersion, object.kind)}";`);
    lines.push(`export const o${i}: T${i} = ${JSON.stringify(object, null, 1)};`);
    const text = lines.slice(start).join("\n");
    for (let n = text.split("\n").length; n > 0; n--) owner.push(`${object.kind}/${object.metadata.name}`);
  });
  const source = lines.join("\n");
  const options: ts.CompilerOptions = {
    strict: true,
    noEmit: true,
    skipLibCheck: true,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    target: ts.ScriptTarget.ES2022,
    lib: ["lib.es2022.d.ts"],
    types: [],
  };
  const host = ts.createCompilerHost(options);
  const readFile = host.readFile.bind(host);
  const getSourceFile = host.getSourceFile.bind(host);
  host.readFile = (name) => (name === file ? source : readFile(name));
  host.fileExists = (
    (exists) => (name: string) =>
      name === file || exists(name)
  )(host.fileExists.bind(host));
  host.getSourceFile = (name, language, onError, create) =>
    name === file ? ts.createSourceFile(name, source, language, true) : getSourceFile(name, language, onError, create);
  const program = ts.createProgram([file], options, host);
  const sourceFile = program.getSourceFile(file)!;
  return [...program.getSyntacticDiagnostics(sourceFile), ...program.getSemanticDiagnostics(sourceFile)].map((d) => {
    const line = d.start === undefined ? 0 : sourceFile.getLineAndCharacterOfPosition(d.start).line;
    return `${owner[line] ?? "?"}: ${ts.flattenDiagnosticMessageText(d.messageText, " ")}`;
  });
}
