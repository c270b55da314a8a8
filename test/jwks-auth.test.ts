// Access tokens from an IdP's JWKS, end to end: a JWKS served from this
// process, the real score service fetching it (JWT_JWKS_URL), REST through
// the gateway. The mesh sets JWT_SECRET too, so HS256 dev tokens keep working.
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { SignJWT, exportJWK, exportSPKI, generateKeyPair, type CryptoKey, type JWK } from "jose";
import { Scopes } from "@scoreboard/platform/auth";
import { startMesh, type Mesh } from "./harness/mesh.js";

let mesh: Mesh;
let jwksServer: Server;
let jwksStatus = 200;
let jwksRequests = 0;
/** JWKS fetches once every process that verifies tokens (score, and the gateway if it does) holds the keys. */
let fetchesWhenWarm = 0;
let idp: { privateKey: CryptoKey; publicKey: CryptoKey };
let attacker: { privateKey: CryptoKey; publicKey: CryptoKey };
let idpJwk: JWK;

beforeAll(async () => {
  [idp, attacker] = await Promise.all([generateKeyPair("RS256"), generateKeyPair("RS256")]);
  idpJwk = { ...(await exportJWK(idp.publicKey)), kid: "idp-1", alg: "RS256", use: "sig" };
  jwksServer = createServer((_req, res) => {
    jwksRequests++;
    res.writeHead(jwksStatus, { "content-type": "application/json" });
    res.end(jwksStatus === 200 ? JSON.stringify({ keys: [idpJwk] }) : "{}");
  });
  await new Promise<void>((resolve) => jwksServer.listen(0, "127.0.0.1", resolve));
  const jwksUrl = `http://127.0.0.1:${(jwksServer.address() as AddressInfo).port}/.well-known/jwks.json`;
  mesh = await startMesh(inject("infra"), { JWT_JWKS_URL: jwksUrl });
  await mesh.sql(`INSERT INTO actions (action_id, points) VALUES ('x', 5)`);
});

afterAll(async () => {
  await mesh?.stop();
  jwksServer?.closeAllConnections();
  await new Promise((resolve) => jwksServer?.close(resolve));
});

/** An access token as an IdP would issue it (scope as an scp array, as some IdPs do). */
function idpToken(userId: string, key: CryptoKey = idp.privateKey, header: { alg: string; kid?: string } = { alg: "RS256", kid: "idp-1" }) {
  return new SignJWT({ scp: [Scopes.updateScore, Scopes.readLeaderboard], name: userId })
    .setProtectedHeader({ ...header, typ: "JWT" })
    .setSubject(userId)
    .setIssuer(mesh.auth.issuer)
    .setAudience(mesh.auth.audience)
    .setIssuedAt()
    .setExpirationTime("5m")
    .sign(key);
}

async function postAction(token: string, actionId = "x") {
  const res = await fetch(`${mesh.urls.gateway}/api/actions`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
    body: JSON.stringify({ actionId }),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

describe("tokens verified with a remote JWKS", () => {
  // First, before any key is cached: the JWKS failing is a retryable 503,
  // not a 401 that would make the client throw its token away.
  it("answers 503 while the JWKS fails, then accepts once it is back", async () => {
    jwksStatus = 500;
    const token = await idpToken("dave");
    const down = await postAction(token);
    expect(down).toMatchObject({ status: 503, body: { success: false, code: "unavailable", message: "cannot verify token: key set unavailable" } });
    jwksStatus = 200;
    expect(await postAction(token)).toMatchObject({ status: 200, body: { success: true, newScore: 5 } });
    fetchesWhenWarm = jwksRequests;
  });

  it("grants an action to an RS256 token from the JWKS", async () => {
    const granted = await postAction(await idpToken("alice"));
    expect(granted).toMatchObject({ status: 200, body: { success: true, message: "Score Updated", newScore: 5, points: 5 } });
    const rows = await mesh.sql<{ score: string | number }>(`SELECT score FROM scores WHERE user_id = 'alice'`);
    expect(rows.map((r) => Number(r.score))).toEqual([5]);
  });

  it("refuses an attacker's RSA key claiming the IdP's kid with 401", async () => {
    const forged = await postAction(await idpToken("mallory", attacker.privateKey));
    expect(forged).toMatchObject({ status: 401, body: { success: false, message: "token signature is invalid" } });
  });

  it("refuses a kid the JWKS does not have with 401", async () => {
    const unknown = await postAction(await idpToken("mallory", attacker.privateKey, { alg: "RS256", kid: "attacker-1" }));
    expect(unknown).toMatchObject({ status: 401, body: { message: expect.stringContaining("signing key is unknown") } });
  });

  it("refuses HS256 keyed with the IdP's public key (algorithm confusion) with 401", async () => {
    const pem = new TextEncoder().encode(await exportSPKI(idp.publicKey));
    const confused = await new SignJWT({ scope: Scopes.updateScore })
      .setProtectedHeader({ alg: "HS256", kid: "idp-1" })
      .setSubject("mallory")
      .setIssuer(mesh.auth.issuer)
      .setAudience(mesh.auth.audience)
      .setExpirationTime("5m")
      .sign(pem);
    expect(await postAction(confused)).toMatchObject({ status: 401, body: { message: "token signature is invalid" } });
  });

  it("still accepts HS256 dev tokens from JWT_SECRET", async () => {
    expect(await postAction(await mesh.token("carol"))).toMatchObject({ status: 200, body: { success: true, newScore: 5 } });
  });

  it("served every later token from cached keys: no refetch, not even for the unknown kid", () => {
    expect(fetchesWhenWarm).toBeGreaterThanOrEqual(2);
    expect(jwksRequests).toBe(fetchesWhenWarm);
  });
});
