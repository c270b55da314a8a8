// The package as an app gets it: `npm pack` (prepack runs build.ts), unpacked
// into a folder of its own with only the peer dependencies beside it, then
// imported by Node and type-checked by tsc the way an app's tooling would,
// including the README's example.
import { execFile } from "node:child_process";
import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const run = promisify(execFile);
const packageDir = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const root = resolve(packageDir, "../..");
// npm and the prepack's node: the same Node.js as this test.
const env = { ...process.env, PATH: `${dirname(process.execPath)}:${process.env.PATH ?? ""}` };

const manifest = JSON.parse(await readFile(join(packageDir, "package.json"), "utf8")) as {
  version: string;
  peerDependencies: Record<string, string>;
};

/** The ```ts blocks after the client-example markers in a README, in order. */
async function readmeExamples(file: string): Promise<string[]> {
  const text = await readFile(file, "utf8");
  const blocks = [...text.matchAll(/<!-- client-example[^>]*-->\n```ts\n([\s\S]*?)```/g)].map((match) => match[1]!);
  if (blocks.length === 0) throw new Error(`${file}: no client-example block`);
  return blocks;
}

describe("the packed @scoreboard/client", () => {
  let app: string;
  let installed: string;
  let files: string[];

  beforeAll(async () => {
    app = await mkdtemp(join(tmpdir(), "sb-client-app-"));
    await run("npm", ["pack", "--pack-destination", app], { cwd: packageDir, env });
    const tarball = join(app, `scoreboard-client-${manifest.version}.tgz`);
    files = (await run("tar", ["tzf", tarball])).stdout.split("\n").filter(Boolean).sort();
    installed = join(app, "node_modules/@scoreboard/client");
    await mkdir(installed, { recursive: true });
    await run("tar", ["xzf", tarball, "-C", installed, "--strip-components=1"]);
    for (const peer of Object.keys(manifest.peerDependencies)) {
      await mkdir(dirname(join(app, "node_modules", peer)), { recursive: true });
      await symlink(join(root, "node_modules", peer), join(app, "node_modules", peer));
    }
    await writeFile(join(app, "package.json"), JSON.stringify({ name: "an-app", private: true, type: "module" }));
  }, 120_000);

  afterAll(async () => {
    if (app) await rm(app, { recursive: true, force: true });
  });

  it("holds the built files only, at the project's version, naming no private workspace", async () => {
    const rootManifest = JSON.parse(await readFile(join(root, "package.json"), "utf8")) as { version: string };
    expect(manifest.version).toBe(rootManifest.version);
    expect(files).toContain("package/package.json");
    expect(files).toContain("package/dist/index.js");
    expect(files).toContain("package/dist/index.d.ts");
    expect(files).toContain("package/dist/gen/scoreboard/v1/push_pb.d.ts");
    expect(files).toContain("package/dist/gen/scoreboard/v1/boards_pb.d.ts");
    expect(files).toContain("package/dist/gen/scoreboard/v1/live_pb.d.ts");
    expect(files.filter((f) => !/^package\/(package\.json|README\.md|dist\/.*\.(js|d\.ts))$/.test(f))).toEqual([]);
    expect(files.some((f) => f.includes("test"))).toBe(false);
    for (const file of files.filter((f) => f.startsWith("package/dist/"))) {
      expect(await readFile(join(installed, file.slice("package/".length)), "utf8"), file).not.toContain("@scoreboard/gen");
    }
  });

  it("runs in an app: messages, services, numbers, a live board and a live standing that resumes over a transport", async () => {
    await writeFile(
      join(app, "consumer.mjs"),
      `import { create, toBinary, fromBinary, toJson } from "@bufbuild/protobuf";
import { createRouterTransport } from "@connectrpc/connect";
import { createScoreboardClient, formatScore, LeaderboardEntrySchema, LeaderboardUpdateSchema, LiveService, PushService, standingSubscription } from "@scoreboard/client";
const big = 2n ** 62n + 1n;
const entry = create(LeaderboardEntrySchema, { rank: 1n, userId: "u1", username: "Una", score: big });
const requests = [];
const transport = createRouterTransport(({ service }) => {
  service(PushService, { async *watchLeaderboard(req) { yield { entries: [entry] }; await new Promise(() => {}); } });
  service(LiveService, { async *watch(req) {
    requests.push(req);
    yield { subscription: req.subscriptions[0].id, position: { epoch: "1.all", version: 7n }, state: { case: "standing", value: { entry } } };
    if (requests.length === 1) throw new Error("dropped");
    await new Promise(() => {});
  } });
});
const stop = new AbortController();
let update;
await createScoreboardClient({ transport }).watchBoard({ signal: stop.signal, onBoard: (u) => { update = u; stop.abort(); } });
const stopLive = new AbortController();
const ranks = [];
await createScoreboardClient({ transport }).watchLive([standingSubscription("global", 2)], {
  onUpdate: (u) => { ranks.push(String(u.state.value.entry.rank)); if (ranks.length === 2) stopLive.abort(); },
}, { signal: stopLive.signal, backoff: { initialMs: 1, jitter: 0 } });
createScoreboardClient({ baseUrl: "https://scores.example.com" });
console.log(JSON.stringify({
  live: { ranks, resumedFrom: requests.map((r) => r.subscriptions[0].resume?.version?.toString() ?? "none"), id: requests[0].subscriptions[0].id },
  service: PushService.typeName,
  roundTrip: fromBinary(LeaderboardEntrySchema, toBinary(LeaderboardEntrySchema, entry)).score === big,
  formatted: formatScore(update.entries[0].score, "en-US"),
  json: toJson(LeaderboardUpdateSchema, update),
}));
`,
    );
    const { stdout } = await run(process.execPath, ["consumer.mjs"], { cwd: app, env });
    expect(JSON.parse(stdout)).toEqual({
      live: { ranks: ["1", "1"], resumedFrom: ["none", "7"], id: "standing:global" },
      service: "scoreboard.v1.PushService",
      roundTrip: true,
      formatted: "4,611,686,018,427,387,905",
      json: { entries: [{ rank: "1", userId: "u1", username: "Una", score: "4611686018427387905" }] },
    });
  });

  it("type-checks the README's examples as an app would (NodeNext and bundler resolution, library types checked)", async () => {
    const examples = await readmeExamples(join(root, "README.md"));
    expect(await readmeExamples(join(packageDir, "README.md"))).toEqual(examples);
    const pages = examples.map((_example, i) => `page-${i + 1}.ts`);
    const misuse = `import type { LeaderboardEntry } from "@scoreboard/client";
export function total(entry: LeaderboardEntry): number {
  // @ts-expect-error int64 is bigint, never a plain number
  return entry.score;
}
`;
    for (const [i, example] of examples.entries()) await writeFile(join(app, pages[i]!), example);
    await writeFile(join(app, "misuse.ts"), misuse);
    const tsc = join(root, "node_modules/typescript/bin/tsc");
    for (const [module, moduleResolution] of [
      ["NodeNext", "NodeNext"],
      ["ESNext", "Bundler"],
    ] as const) {
      const compilerOptions = {
        target: "ES2022",
        lib: ["ES2023", "DOM", "DOM.Iterable"],
        module,
        moduleResolution,
        strict: true,
        noEmit: true,
        skipLibCheck: false,
        types: [],
      };
      await writeFile(join(app, "tsconfig.json"), JSON.stringify({ compilerOptions, files: [...pages, "misuse.ts"] }));
      const result = await run(process.execPath, [tsc, "-p", "tsconfig.json"], { cwd: app, env }).catch((err: { stdout: string }) => err);
      expect(result.stdout, `${moduleResolution}`).toBe("");
    }
  }, 60_000);
});
