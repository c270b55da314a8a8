// Defined boards from the outside, on the real mesh: the CLI applies
// definitions to score, the gateway's REST and Connect surfaces submit and
// read them, ranking answers the pages once the events arrive.
import { execFile } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { Scopes } from "@scoreboard/platform/auth";
import { startMesh, type Mesh } from "./harness/mesh.js";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
let mesh: Mesh;
let dir: string;

beforeAll(async () => {
  mesh = await startMesh(inject("infra"));
  dir = mkdtempSync(join(tmpdir(), "sb-boards-"));
});
afterAll(async () => {
  await mesh?.stop();
});

function scoreboard(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ["--import", "tsx", "cli/main.ts", ...args],
      { cwd: root, env: { ...mesh.env, SCORE_URL: mesh.grpcUrls.score, RANKING_URL: mesh.grpcUrls.ranking, DATASTORE_WAIT_S: "10" }, timeout: 60_000 },
      (err, stdout, stderr) => resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

// biome-ignore lint/suspicious/noExplicitAny: JSON answers, checked field by field
type Json = Record<string, any>;
async function call(method: string, path: string, options: { body?: unknown; token?: string; headers?: Record<string, string> } = {}) {
  const res = await fetch(`${mesh.urls.gateway}${path}`, {
    method,
    headers: {
      ...(options.body !== undefined ? { "content-type": "application/json" } : {}),
      ...(options.token ? { authorization: `Bearer ${options.token}` } : {}),
      ...options.headers,
    },
    body: options.body === undefined ? undefined : JSON.stringify(options.body),
  });
  return { status: res.status, body: (await res.json()) as Json };
}

const until = async <T>(read: () => Promise<T>, done: (value: T) => boolean): Promise<T> => {
  for (let i = 0; i < 100; i++) {
    const value = await read();
    if (done(value)) return value;
    await new Promise((r) => setTimeout(r, 100));
  }
  return read();
};

describe("boards through the CLI and the gateway", () => {
  it("applies a definitions file idempotently", async () => {
    const file = join(dir, "boards.json");
    const laps = {
      boardId: "laps",
      title: "Best lap",
      sortOrder: "ascending",
      operator: "best",
      resetSchedule: "weekly",
      metadataMaxBytes: 256,
      retainedSeasons: 4,
    };
    writeFileSync(file, JSON.stringify([laps, { boardId: "points", title: "Points" }]));
    const first = await scoreboard(["boards", "apply", file, "--json"]);
    expect(first.code, first.stderr).toBe(0);
    expect(JSON.parse(first.stdout).map((r: Json) => [r.boardId, r.result])).toEqual([
      ["laps", "created"],
      ["points", "created"],
    ]);
    const again = await scoreboard(["boards", "apply", file]);
    expect(again.stdout).toContain("unchanged laps");
    expect(again.stdout).toContain("unchanged points");
    writeFileSync(file, JSON.stringify([{ ...laps, title: "Best lap (ms)" }]));
    const changed = await scoreboard(["boards", "apply", file, "--json"]);
    expect(JSON.parse(changed.stdout)).toEqual([{ boardId: "laps", result: "updated", revision: 2 }]);
    // A builtin board's rules cannot be changed: reported, exit 1, nothing else stops.
    writeFileSync(file, JSON.stringify([{ boardId: "global", title: "Mine" }]));
    const builtin = await scoreboard(["boards", "apply", file]);
    expect(builtin.code).toBe(1);
    expect(builtin.stdout).toContain("failed global");

    const shown = JSON.parse((await scoreboard(["boards", "show", "laps", "--json"])).stdout);
    expect(shown.board).toMatchObject({ boardId: "laps", title: "Best lap (ms)", sortOrder: "ascending", operator: "best", revision: 2 });
    expect(shown.season.current).toBe(true);
    const seasons = JSON.parse((await scoreboard(["boards", "seasons", "laps", "--json"])).stdout);
    expect(seasons[0]).toMatchObject({ id: shown.season.id, current: true });
  });

  it("submits, pages by cursor, ranks around, reads friends and the season by id", async () => {
    const submit = async (user: string, score: number, extra: Json = {}, headers: Record<string, string> = {}) =>
      call("POST", "/api/boards/laps/scores", { body: { score, ...extra }, token: await mesh.token(user), headers });
    const first = await submit("alice", 90_000, { metadata: { car: "red" } }, { "idempotency-key": "alice-lap-1" });
    expect(first.status, JSON.stringify(first.body)).toBe(200);
    expect(first.body).toMatchObject({ changed: true, replayed: false, entry: { userId: "alice", score: 90_000, metadata: { car: "red" } } });
    const replay = await submit("alice", 90_000, { metadata: { car: "red" } }, { "idempotency-key": "alice-lap-1" });
    expect(replay.body).toMatchObject({ replayed: true, requestId: first.body.requestId });
    // A worse "best" (slower, on an ascending board) changes nothing.
    expect((await submit("alice", 95_000)).body).toMatchObject({ changed: false, entry: { score: 90_000 } });
    await submit("bob", 85_000);
    await submit("carol", 99_000);

    const page = await until(
      () => call("GET", "/api/boards/laps/entries?limit=2"),
      (answer) => answer.body.total === 3,
    );
    expect(page.body.entries.map((e: Json) => [e.rank, e.userId, e.score])).toEqual([
      [1, "bob", 85_000],
      [2, "alice", 90_000],
    ]);
    const rest = await call("GET", `/api/boards/laps/entries?limit=2&cursor=${encodeURIComponent(page.body.nextCursor)}`);
    expect(rest.body.entries.map((e: Json) => e.userId)).toEqual(["carol"]);
    expect(rest.body.nextCursor).toBeNull();

    const around = await call("GET", "/api/boards/laps/rank/alice?around=1");
    expect(around.body.entry).toMatchObject({ rank: 2, userId: "alice" });
    expect(around.body.neighbourhood.map((e: Json) => e.userId)).toEqual(["bob", "alice", "carol"]);
    const friends = await call("GET", "/api/boards/laps/users?ids=carol,alice,nobody");
    expect(friends.body.entries.map((e: Json) => e.userId)).toEqual(["alice", "carol"]);
    const season = page.body.season.id as string;
    const bySeason = await call("GET", `/api/boards/laps/seasons/${season}?limit=2`);
    expect(bySeason.body.entries).toEqual(page.body.entries);
    expect((await call("GET", "/api/boards/laps/seasons")).body.seasons[0]).toMatchObject({ id: season, current: true });
  });

  it("lists definitions for a reader, refuses submissions a board does not take, keeps UpdateBoard's ABORTED", async () => {
    const reader = await mesh.token("reader", { scopes: [Scopes.readLeaderboard] });
    const list = await call("GET", "/api/boards", { token: reader });
    expect(list.body.boards.map((b: Json) => b.boardId)).toEqual(expect.arrayContaining(["global", "laps", "points"]));
    expect((await call("GET", "/api/boards/laps", { token: reader })).body.board.title).toBe("Best lap (ms)");
    expect((await call("GET", "/api/boards/nope", { token: reader })).status).toBe(404);

    const global = await call("POST", "/api/boards/global/scores", { body: { score: 5 }, token: await mesh.token("dave") });
    expect(global.body.code).toBe("failed_precondition");
    const metadata = await call("POST", "/api/boards/points/scores", { body: { score: 5, metadata: { a: 1 } }, token: await mesh.token("dave") });
    expect([metadata.status, metadata.body.code]).toEqual([400, "invalid_argument"]);

    const admin = await mesh.token("ops", { scopes: [Scopes.adminScore] });
    const stale = await fetch(`${mesh.urls.gateway}/scoreboard.v1.BoardAdminService/UpdateBoard`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${admin}` },
      body: JSON.stringify({ board: { boardId: "points", title: "Points!" }, expectedRevision: "7" }),
    });
    expect(((await stale.json()) as Json).code).toBe("aborted");
  });
});
