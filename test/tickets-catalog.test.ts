// The action catalog over RPC (admin only) and proof-of-action tickets: an
// entry that requires a ticket is granted only with a valid, unused one.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { inject } from "vitest";
import { Code, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { exportJWK, generateKeyPair } from "jose";
import { CatalogService } from "@scoreboard/gen/scoreboard/v1/catalog_pb";
import { mintActionTicket } from "@scoreboard/platform/action-ticket";
import { Scopes } from "@scoreboard/platform/auth";
import { startMesh, type Mesh } from "./harness/mesh.js";
import { codeOf } from "./harness/rpc-errors.js";

let mesh: Mesh;
let gameServerKey: CryptoKey;
let catalog: ReturnType<typeof createClient<typeof CatalogService>>;

beforeAll(async () => {
  const pair = await generateKeyPair("ES256", { extractable: true });
  gameServerKey = pair.privateKey;
  const publicJwk = { ...(await exportJWK(pair.publicKey)), kid: "game-1", alg: "ES256" };
  mesh = await startMesh(inject("infra"), { GAME_SERVER_PUBLIC_KEYS: JSON.stringify([publicJwk]) });
  catalog = createClient(CatalogService, createConnectTransport({ baseUrl: mesh.urls.gateway, httpVersion: "1.1" }));
});
afterAll(async () => {
  await mesh?.stop();
});

const as = async (userId: string, scopes: string[]) => ({ headers: { authorization: `Bearer ${await mesh.token(userId, { scopes })}` } });
const admin = () => as("ops", [Scopes.adminScore, Scopes.updateScore]);

async function submit(userId: string, actionId: string, actionTicket?: string) {
  const res = await fetch(`${mesh.urls.gateway}/api/actions`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${await mesh.token(userId)}` },
    body: JSON.stringify({ actionId, ...(actionTicket ? { actionTicket } : {}) }),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

describe("CatalogService", () => {
  it("lets an admin put, list and delete actions", async () => {
    await catalog.putAction({ action: { actionId: "boss-kill", points: 500n, description: "Killed the boss", requiresTicket: true } }, await admin());
    await catalog.putAction({ action: { actionId: "tutorial", points: 10n } }, await admin());
    const listed = await catalog.listActions({}, await admin());
    expect(listed.actions.map((a) => [a.actionId, a.points, a.requiresTicket])).toEqual([
      ["boss-kill", 500n, true],
      ["tutorial", 10n, false],
    ]);
    await catalog.putAction({ action: { actionId: "temp", points: 1n } }, await admin());
    await catalog.deleteAction({ actionId: "temp" }, await admin());
    expect(await codeOf(catalog.deleteAction({ actionId: "temp" }, await admin()))).toBe(Code.NotFound);
  });

  it("refuses players and bad entries", async () => {
    const player = await as("eve", [Scopes.updateScore]);
    expect(await codeOf(catalog.putAction({ action: { actionId: "free-points", points: 1_000_000n } }, player))).toBe(Code.PermissionDenied);
    expect(await codeOf(catalog.putAction({ action: { actionId: "x", points: 0n } }, await admin()))).toBe(Code.InvalidArgument);
    expect(await codeOf(catalog.putAction({ action: { actionId: "x".repeat(65), points: 1n } }, await admin()))).toBe(Code.InvalidArgument);
    expect(await codeOf(catalog.listActions({}, player))).toBe(Code.PermissionDenied);
    expect(await codeOf(catalog.listActions({}))).toBe(Code.Unauthenticated);
  });

  it("keeps an action that was granted", async () => {
    expect((await submit("kim", "tutorial")).status).toBe(200);
    expect(await codeOf(catalog.deleteAction({ actionId: "tutorial" }, await admin()))).toBe(Code.FailedPrecondition);
  });
});

describe("signed action tickets", () => {
  it("refuses an action that needs a ticket without one", async () => {
    expect(await submit("ann", "boss-kill")).toMatchObject({ status: 403, body: { message: 'action "boss-kill" requires a signed action ticket' } });
  });

  it("grants with a valid ticket, once", async () => {
    const ticket = await mintActionTicket(gameServerKey, { userId: "ann", actionId: "boss-kill", kid: "game-1" });
    expect(await submit("ann", "boss-kill", ticket)).toMatchObject({ status: 200, body: { newScore: 500 } });
    expect((await submit("ann", "boss-kill", ticket)).status).toBe(400); // already granted; the ticket is spent too
    const [row] = await mesh.sql<{ ticket_jti: string | null }>("SELECT ticket_jti FROM ledger WHERE user_id = 'ann'");
    expect(row?.ticket_jti).toBeTruthy();
  });

  it("refuses a ticket for someone else, another action, expired or forged", async () => {
    const forOther = await mintActionTicket(gameServerKey, { userId: "ann", actionId: "boss-kill", kid: "game-1" });
    expect((await submit("bob", "boss-kill", forOther)).status).toBe(403);
    const otherAction = await mintActionTicket(gameServerKey, { userId: "bob", actionId: "tutorial", kid: "game-1" });
    expect((await submit("bob", "boss-kill", otherAction)).status).toBe(403);
    const expired = await mintActionTicket(gameServerKey, { userId: "bob", actionId: "boss-kill", kid: "game-1", ttlS: -120 });
    expect((await submit("bob", "boss-kill", expired)).status).toBe(403);
    const attacker = (await generateKeyPair("ES256")).privateKey;
    const forged = await mintActionTicket(attacker, { userId: "bob", actionId: "boss-kill", kid: "game-1" });
    expect((await submit("bob", "boss-kill", forged)).status).toBe(403);
    expect(await mesh.sql("SELECT 1 FROM ledger WHERE user_id = 'bob'")).toHaveLength(0);
    const refusals = await mesh.sql<{ n: number }>("SELECT count(*)::int AS n FROM audit_log WHERE user_id = 'bob' AND outcome = 'refused'");
    expect(refusals[0]!.n).toBe(4);
  });
});
