import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Code, ConnectError } from "@connectrpc/connect";
import { SignJWT, createLocalJWKSet, exportJWK, exportSPKI, generateKeyPair, type CryptoKey, type JWK, type JWTHeaderParameters, type JWTPayload } from "jose";
import { Scopes, TokenVerifier, isValidId, mintToken, requireRole, requireScope, requireSelfOrScope, type Principal } from "./auth.js";
import type { AuthConfig } from "./config.js";

const config: AuthConfig = {
  jwtSecret: "0123456789abcdef0123456789abcdef-test-secret",
  issuer: "scoreboard",
  audience: "scoreboard-api",
};
const verifier = new TokenVerifier(config);
const secret = new TextEncoder().encode(config.jwtSecret);
const now = () => Math.floor(Date.now() / 1000);

const b64url = (value: unknown) => Buffer.from(JSON.stringify(value)).toString("base64url");

/** Claims of a token the verifier should accept; tests override what they attack. */
function goodClaims(overrides: JWTPayload = {}): JWTPayload {
  return {
    sub: "alice",
    iss: config.issuer,
    aud: config.audience,
    iat: now(),
    exp: now() + 600,
    scope: "update:score read:leaderboard",
    roles: ["player", "admin"],
    name: "Alice A.",
    ...overrides,
  };
}

/** Signs claims exactly as given (no defaults added), so a test can leave out exp. */
function sign(claims: JWTPayload, key: Uint8Array | CryptoKey = secret, alg = "HS256"): Promise<string> {
  return new SignJWT(claims).setProtectedHeader({ alg, typ: "JWT" }).sign(key);
}

async function expectUnauthenticated(authorization: string | null | undefined): Promise<ConnectError> {
  const err = await verifier.authenticate(authorization).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ConnectError);
  expect((err as ConnectError).code).toBe(Code.Unauthenticated);
  return err as ConnectError;
}

describe("TokenVerifier.authenticate", () => {
  it("accepts a valid HS256 token and builds the principal from its claims", async () => {
    const principal = await verifier.authenticate(`Bearer ${await sign(goodClaims())}`);
    expect(principal.userId).toBe("alice");
    expect(principal.username).toBe("Alice A.");
    expect([...principal.scopes].sort()).toEqual(["read:leaderboard", "update:score"]);
    expect(principal.roles).toEqual(["player", "admin"]);
  });

  it("accepts a lower-case scheme and surrounding whitespace", async () => {
    const token = await sign(goodClaims());
    await expect(verifier.authenticate(`bearer   ${token}  `)).resolves.toMatchObject({ userId: "alice" });
  });

  it("falls back to the user id when name is missing or not a valid display name", async () => {
    for (const name of [undefined, "", " leading", "a\u0007b", 42]) {
      const principal = await verifier.authenticate(`Bearer ${await sign(goodClaims({ name }))}`);
      expect(principal.username, `name=${JSON.stringify(name)}`).toBe("alice");
    }
  });

  it("ignores non-string roles and a non-string scope", async () => {
    const token = await sign(goodClaims({ roles: ["player", 7, null], scope: ["update:score"] }));
    const principal = await verifier.authenticate(`Bearer ${token}`);
    expect(principal.roles).toEqual(["player"]);
    expect(principal.scopes.size).toBe(0);
  });

  describe("rejects with UNAUTHENTICATED", () => {
    const attacks: Array<[string, () => Promise<string | null | undefined>, RegExp?]> = [
      ["no header (undefined)", async () => undefined, /missing bearer token/],
      ["no header (null)", async () => null, /missing bearer token/],
      ["empty header", async () => "", /missing bearer token/],
      ["Bearer without a token", async () => "Bearer ", /missing bearer token/],
      ["another scheme", async () => `Basic ${await sign(goodClaims())}`, /missing bearer token/],
      ["token glued to the scheme", async () => `Bearer${await sign(goodClaims())}`, /missing bearer token/],
      ["two tokens", async () => `Bearer ${await sign(goodClaims())} extra`, /missing bearer token/],
      ["garbage", async () => "Bearer not-a-jwt", /malformed/],
      ["three garbage segments", async () => "Bearer a.b.c", /malformed/],
      ['alg "none" with an empty signature', async () => `Bearer ${b64url({ alg: "none", typ: "JWT" })}.${b64url(goodClaims())}.`],
      ["signed with another secret", async () => `Bearer ${await sign(goodClaims(), new TextEncoder().encode("x".repeat(48)))}`, /signature/],
      ["HS512 with the right secret", async () => `Bearer ${await sign(goodClaims(), secret, "HS512")}`, /algorithm not allowed/],
      [
        "RS256 with an RSA key",
        async () => {
          const { privateKey } = await generateKeyPair("RS256");
          return `Bearer ${await sign(goodClaims(), privateKey, "RS256")}`;
        },
        /algorithm not allowed/,
      ],
      ["expired beyond the 30 s tolerance", async () => `Bearer ${await sign(goodClaims({ exp: now() - 31 }))}`, /expired/],
      ["not yet valid beyond the tolerance", async () => `Bearer ${await sign(goodClaims({ nbf: now() + 31 }))}`, /nbf/],
      ["no exp claim", async () => `Bearer ${await sign(goodClaims({ exp: undefined }))}`, /exp/],
      ["issued in the future beyond the tolerance", async () => `Bearer ${await sign(goodClaims({ iat: now() + 120 }))}`, /issued in the future/],
      ["a ten-year lifetime", async () => `Bearer ${await sign(goodClaims({ exp: now() + 10 * 365 * 86_400 }))}`, /lives longer than the allowed 86400 s/],
      [
        "no iat and an exp beyond the maximum lifetime",
        async () => `Bearer ${await sign(goodClaims({ iat: undefined, exp: now() + 86_400 + 3_600 }))}`,
        /lives longer/,
      ],
      ["a non-numeric iat", async () => `Bearer ${await sign(goodClaims({ iat: "soon" as unknown as number }))}`, /iat/],
      ["no sub claim", async () => `Bearer ${await sign(goodClaims({ sub: undefined }))}`, /sub/],
      ["wrong issuer", async () => `Bearer ${await sign(goodClaims({ iss: "evil" }))}`, /iss/],
      ["no issuer", async () => `Bearer ${await sign(goodClaims({ iss: undefined }))}`, /iss/],
      ["wrong audience", async () => `Bearer ${await sign(goodClaims({ aud: "other-api" }))}`, /aud/],
      [
        "tampered payload",
        async () => {
          const [header, payload, signature] = (await sign(goodClaims())).split(".") as [string, string, string];
          const claims = JSON.parse(Buffer.from(payload, "base64url").toString()) as JWTPayload;
          const forged = b64url({ ...claims, sub: "mallory" });
          expect(forged).not.toBe(payload);
          return `Bearer ${header}.${forged}.${signature}`;
        },
        /signature/,
      ],
      [
        "one character of the payload segment changed",
        async () => {
          const [header, payload, signature] = (await sign(goodClaims())).split(".") as [string, string, string];
          const i = Math.floor(payload.length / 2);
          const flipped = payload.slice(0, i) + (payload[i] === "A" ? "B" : "A") + payload.slice(i + 1);
          return `Bearer ${header}.${flipped}.${signature}`;
        },
      ],
      ["sub with a control character", async () => `Bearer ${await sign(goodClaims({ sub: "ali\u0000ce" }))}`, /subject/],
      ["sub with a newline", async () => `Bearer ${await sign(goodClaims({ sub: "alice\n" }))}`, /subject/],
      ["sub of 65 characters", async () => `Bearer ${await sign(goodClaims({ sub: "a".repeat(65) }))}`, /subject/],
      ["empty sub", async () => `Bearer ${await sign(goodClaims({ sub: "" }))}`],
    ];

    it.each(attacks)("%s", async (_name, header, message) => {
      const err = await expectUnauthenticated(await header());
      if (message) expect(err.rawMessage).toMatch(message);
    });
  });

  it("accepts exp and nbf within the 30 s clock tolerance", async () => {
    const token = await sign(goodClaims({ exp: now() - 20, nbf: now() + 20 }));
    await expect(verifier.authenticate(`Bearer ${token}`)).resolves.toMatchObject({ userId: "alice" });
  });

  it("accepts an iat within the clock tolerance and a lifetime of exactly the maximum", async () => {
    const iat = now();
    const token = await sign(goodClaims({ iat: iat + 20, exp: iat + 20 + 86_400 }));
    await expect(verifier.authenticate(`Bearer ${token}`)).resolves.toMatchObject({ userId: "alice" });
  });

  it("accepts a sub of exactly 64 characters", async () => {
    const sub = "u".repeat(64);
    await expect(verifier.authenticate(`Bearer ${await sign(goodClaims({ sub }))}`)).resolves.toMatchObject({ userId: sub });
  });
});

describe("requireScope", () => {
  const principal: Principal = { userId: "u", username: "u", scopes: new Set([Scopes.readLeaderboard]), roles: [] };

  it("passes when the scope is present", () => {
    expect(() => requireScope(principal, Scopes.readLeaderboard)).not.toThrow();
  });

  it("throws PERMISSION_DENIED naming the missing scope", () => {
    const err = (() => {
      try {
        requireScope(principal, Scopes.updateScore);
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(ConnectError);
    expect((err as ConnectError).code).toBe(Code.PermissionDenied);
    expect((err as ConnectError).rawMessage).toContain("update:score");
  });
});

describe("isValidId", () => {
  it.each([
    ["a", true],
    ["user-42", true],
    ["x".repeat(64), true],
    ["x".repeat(65), false],
    ["é".repeat(64), true], // 64 characters, 128 bytes
    ["é".repeat(65), false],
    ["😀".repeat(64), true], // astral characters count once each
    ["😀".repeat(65), false],
    ["", false],
    ["\u0000", false],
    ["a\u0000b", false],
    ["a\tb", false],
    ["a\u007f", false],
    [" alice", false],
    ["\talice", false],
    ["Alice Smith", true],
  ])("%j → %s", (value, valid) => {
    expect(isValidId(value)).toBe(valid);
  });
});

describe("mintToken", () => {
  it("round-trips through authenticate", async () => {
    const token = await mintToken(config, "bob", { scopes: [Scopes.adminScore], roles: ["admin"], name: "Bobby" });
    const principal = await verifier.authenticate(`Bearer ${token}`);
    expect(principal).toEqual({ userId: "bob", username: "Bobby", scopes: new Set([Scopes.adminScore]), roles: ["admin"] });
  });

  it("defaults to the player scopes and role", async () => {
    const principal = await verifier.authenticate(`Bearer ${await mintToken(config, "carol")}`);
    expect(principal.username).toBe("carol");
    expect(principal.scopes).toEqual(new Set([Scopes.updateScore, Scopes.readLeaderboard]));
    expect(principal.roles).toEqual(["player"]);
  });

  it("mints a token another deployment's verifier refuses", async () => {
    const token = await mintToken({ ...config, audience: "elsewhere" }, "bob");
    await expectUnauthenticated(`Bearer ${token}`);
  });

  it("mints a token that is refused once expired", async () => {
    const token = await mintToken(config, "bob", { expiresIn: "-1m" });
    const err = await expectUnauthenticated(`Bearer ${token}`);
    expect(err.rawMessage).toBe("token expired");
  });
});

describe("scopes and roles from other claim shapes", () => {
  const scopesOf = async (claims: JWTPayload) =>
    [...(await verifier.authenticate(`Bearer ${await sign(goodClaims({ scope: undefined, ...claims }))}`)).scopes].sort();

  it("reads an scp array (Okta style)", async () => {
    expect(await scopesOf({ scp: ["update:score", "read:leaderboard"] })).toEqual(["read:leaderboard", "update:score"]);
  });

  it("reads a space-separated scp string (Entra ID style)", async () => {
    expect(await scopesOf({ scp: "update:score  read:leaderboard" })).toEqual(["read:leaderboard", "update:score"]);
  });

  it("merges scope and scp, dropping non-strings", async () => {
    expect(await scopesOf({ scope: "admin:score", scp: ["update:score", 3, null, ""] })).toEqual(["admin:score", "update:score"]);
  });

  it("has no scopes and no roles when the claims are absent", async () => {
    const principal = await verifier.authenticate(`Bearer ${await sign(goodClaims({ scope: undefined, roles: undefined }))}`);
    expect(principal.scopes.size).toBe(0);
    expect(principal.roles).toEqual([]);
  });
});

describe("maximum lifetime from the config", () => {
  it("JWT_MAX_LIFETIME_S of 1 h refuses a 2 h token and accepts a 1 h one", async () => {
    const short = new TokenVerifier({ ...config, maxLifetimeS: 3_600 });
    const long = await sign(goodClaims({ exp: now() + 7_200 }));
    await expect(short.authenticate(`Bearer ${long}`)).rejects.toMatchObject({ code: Code.Unauthenticated });
    await expect(short.authenticate(`Bearer ${await sign(goodClaims({ exp: now() + 3_600 }))}`)).resolves.toMatchObject({ userId: "alice" });
  });
});

describe("clock tolerance from the config", () => {
  it("0 s refuses a token that expired 5 s ago", async () => {
    const strict = new TokenVerifier({ ...config, clockToleranceS: 0 });
    const token = await sign(goodClaims({ exp: now() - 5 }));
    await expect(strict.authenticate(`Bearer ${token}`)).rejects.toMatchObject({ code: Code.Unauthenticated, rawMessage: "token expired" });
  });

  it("120 s accepts exp and nbf 100 s off", async () => {
    const lenient = new TokenVerifier({ ...config, clockToleranceS: 120 });
    const token = await sign(goodClaims({ exp: now() - 100, nbf: now() + 100 }));
    await expect(lenient.authenticate(`Bearer ${token}`)).resolves.toMatchObject({ userId: "alice" });
  });
});

// ---------------------------------------------------------------------------
// JWKS: a real JWKS over HTTP from an in-process server on 127.0.0.1.

interface JwksServer {
  url: string;
  keys: JWK[];
  /** Status to answer with; 200 serves the keys. */
  status: number;
  /** Accept requests and never answer (to hit the fetch timeout). */
  hang: boolean;
  requests: number;
  close(): Promise<void>;
}

async function startJwksServer(keys: JWK[]): Promise<JwksServer> {
  const server: Server = createServer((_req, res) => {
    state.requests++;
    if (state.hang) return;
    res.writeHead(state.status, { "content-type": "application/json" });
    res.end(state.status === 200 ? JSON.stringify({ keys: state.keys }) : '{"error":"down"}');
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  const state: JwksServer = {
    url: `http://127.0.0.1:${port}/.well-known/jwks.json`,
    keys,
    status: 200,
    hang: false,
    requests: 0,
    close: () => {
      server.closeAllConnections();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  return state;
}

/** A URL where nothing listens: a port that was free a moment ago. */
async function deadUrl(): Promise<string> {
  const server = await startJwksServer([]);
  await server.close();
  return server.url;
}

type KeyPair = { privateKey: CryptoKey; publicKey: CryptoKey };
const publicJwk = async (key: CryptoKey, kid: string, alg: string): Promise<JWK> => ({ ...(await exportJWK(key)), kid, alg, use: "sig" });

let rsa: KeyPair;
let ec: KeyPair;
let ed: KeyPair;
let attacker: KeyPair;
let rsaJwk: JWK;
let jwks: JwksServer;
/** HS256 secret and the JWKS, as a deployment migrating to an IdP would run. */
let dual: TokenVerifier;
/** The JWKS alone, as production with an IdP runs. */
let jwksOnly: TokenVerifier;

beforeAll(async () => {
  [rsa, ec, ed, attacker] = await Promise.all([generateKeyPair("RS256"), generateKeyPair("ES256"), generateKeyPair("EdDSA"), generateKeyPair("RS256")]);
  rsaJwk = await publicJwk(rsa.publicKey, "rsa-1", "RS256");
  jwks = await startJwksServer([rsaJwk, await publicJwk(ec.publicKey, "ec-1", "ES256"), await publicJwk(ed.publicKey, "ed-1", "EdDSA")]);
  dual = new TokenVerifier({ ...config, jwksUrl: jwks.url });
  jwksOnly = new TokenVerifier({ issuer: config.issuer, audience: config.audience, jwksUrl: jwks.url });
});

afterAll(async () => {
  await jwks?.close();
});

/** Signs claims exactly as given with any key and header. */
function signAs(claims: JWTPayload, key: CryptoKey | Uint8Array, header: JWTHeaderParameters): Promise<string> {
  return new SignJWT(claims).setProtectedHeader(header).sign(key);
}
const rs256 = (claims = goodClaims(), header: Partial<JWTHeaderParameters> = {}) =>
  signAs(claims, rsa.privateKey, { alg: "RS256", kid: "rsa-1", typ: "JWT", ...header });

/** Replaces a token's header segment, keeping payload and signature. */
function withHeader(token: string, header: Record<string, unknown>): string {
  const [, payload, signature] = token.split(".") as [string, string, string];
  return `${b64url(header)}.${payload}.${signature}`;
}

async function refusal(v: TokenVerifier, authorization: string): Promise<ConnectError> {
  const err = await v.authenticate(authorization).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err, "should have been refused").toBeInstanceOf(ConnectError);
  return err as ConnectError;
}

describe("TokenVerifier with a JWKS", () => {
  it.each([
    ["RS256", () => rs256()],
    ["ES256", () => signAs(goodClaims(), ec.privateKey, { alg: "ES256", kid: "ec-1" })],
    ["EdDSA", () => signAs(goodClaims(), ed.privateKey, { alg: "EdDSA", kid: "ed-1" })],
    ["RS256 without a kid (one RSA key matches)", () => signAs(goodClaims(), rsa.privateKey, { alg: "RS256" })],
  ])("accepts a valid %s token from the JWKS", async (_name, token) => {
    for (const v of [dual, jwksOnly]) {
      const principal = await v.authenticate(`Bearer ${await token()}`);
      expect(principal).toEqual({
        userId: "alice",
        username: "Alice A.",
        scopes: new Set(["update:score", "read:leaderboard"]),
        roles: ["player", "admin"],
      });
    }
  });

  it("still accepts HS256 tokens when a secret is configured too", async () => {
    await expect(dual.authenticate(`Bearer ${await sign(goodClaims())}`)).resolves.toMatchObject({ userId: "alice" });
  });

  it("accepts exp and nbf within the tolerance on an RS256 token", async () => {
    const token = await rs256(goodClaims({ exp: now() - 20, nbf: now() + 20 }));
    await expect(jwksOnly.authenticate(`Bearer ${token}`)).resolves.toMatchObject({ userId: "alice" });
  });

  describe("attack table: rejects with UNAUTHENTICATED", () => {
    const pem = () => exportSPKI(rsa.publicKey);
    const utf8 = (s: string) => new TextEncoder().encode(s);
    // [name, verifier, token, message]
    const attacks: Array<[string, () => TokenVerifier, () => Promise<string>, RegExp]> = [
      ['alg "none"', () => dual, async () => `${b64url({ alg: "none", typ: "JWT" })}.${b64url(goodClaims())}.`, /algorithm not allowed/],
      [
        'alg "none" with a kid from the JWKS',
        () => jwksOnly,
        async () => `${b64url({ alg: "none", kid: "rsa-1" })}.${b64url(goodClaims())}.`,
        /algorithm not allowed/,
      ],
      [
        "HS/RS confusion: HS256 keyed with the RSA public key's PEM (secret configured)",
        () => dual,
        async () => signAs(goodClaims(), utf8(await pem()), { alg: "HS256", kid: "rsa-1", typ: "JWT" }),
        /signature is invalid/,
      ],
      [
        "HS/RS confusion: HS256 keyed with the RSA public key's PEM (JWKS only)",
        () => jwksOnly,
        async () => signAs(goodClaims(), utf8(await pem()), { alg: "HS256", kid: "rsa-1", typ: "JWT" }),
        /algorithm not allowed/,
      ],
      [
        "HS/RS confusion: HS256 keyed with the published JWK's JSON",
        () => dual,
        async () => signAs(goodClaims(), utf8(JSON.stringify(rsaJwk)), { alg: "HS256", kid: "rsa-1" }),
        /signature is invalid/,
      ],
      ["HS256 with the right secret when only the JWKS is configured", () => jwksOnly, () => sign(goodClaims()), /algorithm not allowed/],
      ["HS512", () => dual, () => sign(goodClaims(), secret, "HS512"), /algorithm not allowed/],
      [
        "RS512 (not an accepted algorithm)",
        () => dual,
        async () => signAs(goodClaims(), (await generateKeyPair("RS512")).privateKey, { alg: "RS512", kid: "rsa-1" }),
        /algorithm not allowed/,
      ],
      ["RS256 whose kid is unknown", () => dual, () => rs256(goodClaims(), { kid: "rotated-away" }), /signing key is unknown/],
      ["RS256 naming the EC key's kid", () => dual, () => rs256(goodClaims(), { kid: "ec-1" }), /signing key is unknown/],
      [
        "RS256 signed by an attacker's RSA key, claiming our kid",
        () => dual,
        () => signAs(goodClaims(), attacker.privateKey, { alg: "RS256", kid: "rsa-1" }),
        /signature is invalid/,
      ],
      [
        "RS256 signed by an attacker's RSA key, no kid",
        () => jwksOnly,
        () => signAs(goodClaims(), attacker.privateKey, { alg: "RS256" }),
        /signature is invalid/,
      ],
      [
        "ES256 signed by an attacker, claiming the RSA kid",
        () => jwksOnly,
        async () => signAs(goodClaims(), (await generateKeyPair("ES256")).privateKey, { alg: "ES256", kid: "rsa-1" }),
        /signing key is unknown/,
      ],
      [
        "attacker's key embedded in the header (jwk) is ignored",
        () => jwksOnly,
        async () =>
          signAs(goodClaims(), attacker.privateKey, {
            alg: "RS256",
            kid: "rsa-1",
            jwk: { ...(await exportJWK(attacker.publicKey)), kid: "rsa-1" },
          }),
        /signature is invalid/,
      ],
      [
        "attacker's key set named in the header (jku) is ignored",
        () => jwksOnly,
        () => signAs(goodClaims(), attacker.privateKey, { alg: "RS256", kid: "rsa-1", jku: "http://127.0.0.1:1/attacker-jwks.json" }),
        /signature is invalid/,
      ],
      ["expired beyond the tolerance", () => jwksOnly, () => rs256(goodClaims({ exp: now() - 31 })), /^token expired$/],
      ["nbf beyond the tolerance", () => jwksOnly, () => rs256(goodClaims({ nbf: now() + 31 })), /not valid yet.*nbf/],
      ["no exp", () => jwksOnly, () => rs256(goodClaims({ exp: undefined })), /lacks the "exp" claim/],
      ["exp not a number", () => jwksOnly, () => rs256(goodClaims({ exp: "tomorrow" as never })), /claim "exp" is invalid/],
      ["no sub", () => jwksOnly, () => rs256(goodClaims({ sub: undefined })), /lacks the "sub" claim/],
      ["wrong iss", () => jwksOnly, () => rs256(goodClaims({ iss: "https://evil.example" })), /claim "iss" must be "scoreboard"/],
      ["no iss", () => jwksOnly, () => rs256(goodClaims({ iss: undefined })), /lacks the "iss" claim/],
      ["wrong aud", () => jwksOnly, () => rs256(goodClaims({ aud: "other-api" })), /claim "aud" must include "scoreboard-api"/],
      ["aud list without ours", () => jwksOnly, () => rs256(goodClaims({ aud: ["a", "b"] })), /claim "aud"/],
      [
        "tampered payload (sub changed)",
        () => jwksOnly,
        async () => {
          const [header, , signature] = (await rs256()).split(".") as [string, string, string];
          return `${header}.${b64url(goodClaims({ sub: "mallory" }))}.${signature}`;
        },
        /signature is invalid/,
      ],
      [
        "tampered payload (scope widened)",
        () => dual,
        async () => {
          const [header, , signature] = (await rs256()).split(".") as [string, string, string];
          return `${header}.${b64url(goodClaims({ scope: "admin:score" }))}.${signature}`;
        },
        /signature is invalid/,
      ],
      [
        "tampered header (extra member)",
        () => jwksOnly,
        async () => withHeader(await rs256(), { alg: "RS256", kid: "rsa-1", typ: "JWT", x: 1 }),
        /signature is invalid/,
      ],
      [
        "tampered header (RS256 → HS256, RSA signature kept)",
        () => dual,
        async () => withHeader(await rs256(), { alg: "HS256", kid: "rsa-1", typ: "JWT" }),
        /signature is invalid/,
      ],
      ["tampered header (RS256 → none)", () => dual, async () => withHeader(await rs256(), { alg: "none", typ: "JWT" }), /algorithm not allowed/],
      [
        "tampered header (kid switched to the EC key)",
        () => jwksOnly,
        async () => withHeader(await signAs(goodClaims(), ec.privateKey, { alg: "ES256", kid: "ec-1" }), { alg: "ES256", kid: "ed-1" }),
        /signing key is unknown/,
      ],
      [
        "ES256 signature truncated",
        () => jwksOnly,
        async () => (await signAs(goodClaims(), ec.privateKey, { alg: "ES256", kid: "ec-1" })).slice(0, -4),
        /signature is invalid|malformed/,
      ],
    ];

    it.each(attacks)("%s", async (_name, pick, makeToken, message) => {
      const token = await makeToken();
      const err = await refusal(pick(), `Bearer ${token}`);
      expect(err.code).toBe(Code.Unauthenticated);
      expect(err.rawMessage).toMatch(message);
      for (const segment of token.split(".")) {
        if (segment.length > 8) expect(err.rawMessage).not.toContain(segment);
      }
    });
  });

  describe("when the JWKS cannot be fetched", () => {
    // Decision: UNAVAILABLE (HTTP 503), not UNAUTHENTICATED: the token may be
    // fine and a retry can succeed; see TokenVerifier.authenticate.
    const unavailable = async (v: TokenVerifier, token: string) => {
      const err = await refusal(v, `Bearer ${token}`);
      expect(err.code).toBe(Code.Unavailable);
      expect(err.rawMessage).toBe("cannot verify token: key set unavailable");
    };

    it("answers UNAVAILABLE when nothing listens", async () => {
      await unavailable(new TokenVerifier({ ...config, jwksUrl: await deadUrl() }), await rs256());
    });

    it("answers UNAVAILABLE on a 500, and recovers once the JWKS is back", async () => {
      const flaky = await startJwksServer([rsaJwk]);
      try {
        flaky.status = 500;
        const v = new TokenVerifier({ ...config, jwksUrl: flaky.url });
        await unavailable(v, await rs256());
        flaky.status = 200;
        await expect(v.authenticate(`Bearer ${await rs256()}`)).resolves.toMatchObject({ userId: "alice" });
      } finally {
        await flaky.close();
      }
    });

    it("answers UNAVAILABLE when the JWKS is not JSON or not a key set", async () => {
      const odd = await startJwksServer([]);
      try {
        odd.keys = "nope" as never;
        await unavailable(new TokenVerifier({ ...config, jwksUrl: odd.url }), await rs256());
      } finally {
        await odd.close();
      }
    });

    it("answers UNAVAILABLE after the fetch timeout", async () => {
      const slow = await startJwksServer([rsaJwk]);
      try {
        slow.hang = true;
        const v = new TokenVerifier({ ...config, jwksUrl: slow.url }, { jwks: { timeoutMs: 200 } });
        const started = Date.now();
        await unavailable(v, await rs256());
        expect(Date.now() - started).toBeLessThan(2_000);
      } finally {
        await slow.close();
      }
    });

    it("still verifies HS256 tokens and refuses bad algorithms without the JWKS", async () => {
      const v = new TokenVerifier({ ...config, jwksUrl: await deadUrl() });
      await expect(v.authenticate(`Bearer ${await sign(goodClaims())}`)).resolves.toMatchObject({ userId: "alice" });
      const none = await refusal(v, `Bearer ${b64url({ alg: "none" })}.${b64url(goodClaims())}.`);
      expect(none.code).toBe(Code.Unauthenticated);
      const forged = await refusal(v, `Bearer ${await sign(goodClaims(), new TextEncoder().encode("y".repeat(40)))}`);
      expect(forged.code).toBe(Code.Unauthenticated);
    });
  });

  describe("fetching", () => {
    it("fetches once, and unknown kids do not refetch within the cooldown", async () => {
      const server = await startJwksServer([rsaJwk]);
      try {
        const v = new TokenVerifier({ ...config, jwksUrl: server.url });
        await v.authenticate(`Bearer ${await rs256()}`);
        await v.authenticate(`Bearer ${await rs256()}`);
        expect(server.requests).toBe(1);
        for (let i = 0; i < 5; i++) {
          const err = await refusal(v, `Bearer ${await rs256(goodClaims(), { kid: `random-${i}` })}`);
          expect(err.code).toBe(Code.Unauthenticated);
        }
        expect(server.requests).toBe(1);
      } finally {
        await server.close();
      }
    });

    it("picks up a rotated-in key once the cooldown has passed", async () => {
      const server = await startJwksServer([rsaJwk]);
      try {
        const v = new TokenVerifier({ ...config, jwksUrl: server.url }, { jwks: { cooldownMs: 0 } });
        await v.authenticate(`Bearer ${await rs256()}`);
        const next = await generateKeyPair("ES256");
        server.keys = [rsaJwk, await publicJwk(next.publicKey, "ec-2", "ES256")];
        const token = await signAs(goodClaims(), next.privateKey, { alg: "ES256", kid: "ec-2" });
        await expect(v.authenticate(`Bearer ${token}`)).resolves.toMatchObject({ userId: "alice" });
        expect(server.requests).toBe(2);
      } finally {
        await server.close();
      }
    });
  });

  it("takes an injected key set (createLocalJWKSet) instead of a URL", async () => {
    const v = new TokenVerifier({ issuer: config.issuer, audience: config.audience }, { keySet: createLocalJWKSet({ keys: [rsaJwk] }) });
    await expect(v.authenticate(`Bearer ${await rs256()}`)).resolves.toMatchObject({ userId: "alice" });
    const err = await refusal(v, `Bearer ${await sign(goodClaims())}`);
    expect(err.rawMessage).toBe("token algorithm not allowed");
  });

  it("refuses to construct without a secret or a JWKS", () => {
    expect(() => new TokenVerifier({ issuer: "i", audience: "a" })).toThrow(/jwtSecret or AuthConfig.jwksUrl/);
  });
});

describe("mintToken without a secret", () => {
  it("explains that JWKS tokens come from the IdP", async () => {
    await expect(mintToken({ issuer: "i", audience: "a", jwksUrl: "https://idp.example/jwks" }, "bob")).rejects.toThrow(/JWT_SECRET/);
  });
});

function thrown(fn: () => void): ConnectError | undefined {
  try {
    fn();
  } catch (err) {
    return err as ConnectError;
  }
  return undefined;
}

describe("requireRole", () => {
  const principal: Principal = { userId: "u", username: "u", scopes: new Set(), roles: ["player", "moderator"] };

  it("passes when the role is present", () => {
    expect(() => requireRole(principal, "moderator")).not.toThrow();
  });

  it("throws PERMISSION_DENIED naming the missing role", () => {
    const err = thrown(() => requireRole(principal, "admin"));
    expect(err).toBeInstanceOf(ConnectError);
    expect(err!.code).toBe(Code.PermissionDenied);
    expect(err!.rawMessage).toBe('token lacks the role "admin"');
  });

  it("matches roles exactly, not by prefix or case", () => {
    expect(thrown(() => requireRole(principal, "Player"))?.code).toBe(Code.PermissionDenied);
    expect(thrown(() => requireRole(principal, "mod"))?.code).toBe(Code.PermissionDenied);
  });
});

describe("requireSelfOrScope", () => {
  const player: Principal = { userId: "alice", username: "Alice", scopes: new Set([Scopes.updateScore]), roles: ["player"] };
  const admin: Principal = { userId: "ops", username: "ops", scopes: new Set([Scopes.adminScore]), roles: [] };

  it("lets a user act for itself without the scope", () => {
    expect(() => requireSelfOrScope(player, "alice", Scopes.adminScore)).not.toThrow();
    expect(() => requireSelfOrScope(player, "alice")).not.toThrow();
  });

  it("refuses acting for another user without admin:score", () => {
    const err = thrown(() => requireSelfOrScope(player, "bob"));
    expect(err).toBeInstanceOf(ConnectError);
    expect(err!.code).toBe(Code.PermissionDenied);
    expect(err!.rawMessage).toBe('acting for another user requires the scope "admin:score"');
  });

  it("lets admin:score act for anyone", () => {
    expect(() => requireSelfOrScope(admin, "bob", Scopes.adminScore)).not.toThrow();
    expect(() => requireSelfOrScope(admin, "bob")).not.toThrow();
  });

  it("compares user ids exactly", () => {
    expect(thrown(() => requireSelfOrScope(player, "Alice"))?.code).toBe(Code.PermissionDenied);
    expect(thrown(() => requireSelfOrScope(player, "alice "))?.code).toBe(Code.PermissionDenied);
  });
});
