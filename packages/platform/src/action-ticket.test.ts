import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { generateKeyPairSync } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Code, ConnectError } from "@connectrpc/connect";
import { SignJWT, decodeJwt, decodeProtectedHeader, exportJWK, generateKeyPair, type CryptoKey, type JWK, type JWTPayload } from "jose";
import { ActionTicketVerifier, mintActionTicket, readTicketConfig, type TicketConfig } from "./action-ticket.js";
import { ConfigError, EnvReader } from "./config.js";

type KeyPair = { privateKey: CryptoKey; publicKey: CryptoKey };
const now = () => Math.floor(Date.now() / 1000);
const b64url = (value: unknown) => Buffer.from(JSON.stringify(value)).toString("base64url");
const expected = { userId: "alice", actionId: "defeat-boss" };

let game: KeyPair;
let gameJwk: JWK;
let stranger: KeyPair;
let config: TicketConfig;
let verifier: ActionTicketVerifier;

beforeAll(async () => {
  [game, stranger] = await Promise.all([generateKeyPair("ES256"), generateKeyPair("ES256")]);
  gameJwk = { ...(await exportJWK(game.publicKey)), kid: "game-1", alg: "ES256", use: "sig" };
  config = { publicKeys: [gameJwk], audience: "scoreboard-actions", maxTtlS: 300, clockToleranceS: 30 };
  verifier = new ActionTicketVerifier(config);
});

/** Claims of a ticket the verifier should accept; tests override what they attack. */
function goodClaims(overrides: JWTPayload = {}): JWTPayload {
  return {
    sub: "alice",
    action_id: "defeat-boss",
    aud: "scoreboard-actions",
    jti: "ticket-0001",
    iat: now(),
    exp: now() + 60,
    ...overrides,
  };
}

/** Signs claims exactly as given (no defaults added). */
function sign(claims: JWTPayload, key: CryptoKey | Uint8Array = game.privateKey, header: Record<string, unknown> = { alg: "ES256", kid: "game-1" }) {
  return new SignJWT(claims).setProtectedHeader(header as { alg: string }).sign(key);
}

async function refusal(promise: Promise<unknown>): Promise<ConnectError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err, "should have been refused").toBeInstanceOf(ConnectError);
  return err as ConnectError;
}

describe("ActionTicketVerifier.verify", () => {
  it("accepts a valid ticket and returns its facts", async () => {
    const exp = now() + 60;
    const ticket = await verifier.verify(await sign(goodClaims({ iss: "game-eu-1", exp })), expected);
    expect(ticket).toEqual({
      jti: "ticket-0001",
      userId: "alice",
      actionId: "defeat-boss",
      expiresAt: new Date(exp * 1000),
      issuer: "game-eu-1",
    });
  });

  it('reports a "score" claim (a board submission\'s ticket) and refuses one that is not an integer', async () => {
    expect((await verifier.verify(await mintActionTicket(game.privateKey, { ...expected, kid: "game-1", score: -42 }), expected)).score).toBe(-42);
    for (const score of [1.5, "42", 2 ** 53]) {
      expect((await refusal(verifier.verify(await sign(goodClaims({ score })), expected))).rawMessage).toMatch(/claim "score"/);
    }
  });

  it("accepts a ticket minted by mintActionTicket and reports no issuer as an empty string", async () => {
    const token = await mintActionTicket(game.privateKey, { ...expected, kid: "game-1", ttlS: 120 });
    const ticket = await verifier.verify(token, expected);
    expect(ticket.issuer).toBe("");
    expect(ticket.jti).toMatch(/^[0-9a-f-]{36}$/);
    expect(ticket.expiresAt.getTime()).toBeGreaterThan(Date.now() + 100_000);
  });

  it("accepts a ticket for the maximum lifetime exactly, and within the clock tolerance", async () => {
    await expect(verifier.verify(await sign(goodClaims({ iat: now() - 10, exp: now() + 290 })), expected)).resolves.toBeDefined();
    await expect(verifier.verify(await sign(goodClaims({ iat: now() - 200, exp: now() - 20 })), expected)).resolves.toBeDefined();
    await expect(verifier.verify(await sign(goodClaims({ nbf: now() + 20 })), expected)).resolves.toBeDefined();
  });

  it("accepts a jti of 128 characters", async () => {
    const jti = "j".repeat(128);
    await expect(verifier.verify(await sign(goodClaims({ jti })), expected)).resolves.toMatchObject({ jti });
  });

  describe("refuses with PERMISSION_DENIED", () => {
    const hs = (secret: string) => new TextEncoder().encode(secret);
    // [name, ticket, message]
    const cases: Array<[string, () => Promise<string>, RegExp]> = [
      ["an empty ticket", async () => "", /^action ticket is missing$/],
      ["a blank ticket", async () => "   ", /^action ticket is missing$/],
      ["garbage", async () => "not-a-ticket", /malformed/],
      ["a ticket for another user", () => sign(goodClaims({ sub: "mallory" })), /^action ticket was issued to another user$/],
      ["a ticket for another action", () => sign(goodClaims({ action_id: "first-win" })), /^action ticket is for another action$/],
      ["an expired ticket", () => sign(goodClaims({ iat: now() - 120, exp: now() - 31 })), /^action ticket expired$/],
      ["a ticket not valid yet", () => sign(goodClaims({ nbf: now() + 31 })), /not valid yet/],
      ["a ticket issued in the future", () => sign(goodClaims({ iat: now() + 60, exp: now() + 120 })), /issued in the future/],
      ["a ticket without jti", () => sign(goodClaims({ jti: undefined })), /lacks the "jti" claim/],
      ["an empty jti", () => sign(goodClaims({ jti: "" })), /"jti" must be 1\.\.128 characters/],
      ["a jti of 129 characters", () => sign(goodClaims({ jti: "j".repeat(129) })), /"jti" must be 1\.\.128 characters/],
      ["a jti with a control character", () => sign(goodClaims({ jti: "a\u0000b" })), /"jti" must be/],
      ["a numeric jti", () => sign(goodClaims({ jti: 7 as never })), /"jti" must be/],
      ["a ticket without sub", () => sign(goodClaims({ sub: undefined })), /lacks the "sub" claim/],
      ["a ticket without action_id", () => sign(goodClaims({ action_id: undefined })), /lacks the "action_id" claim/],
      ["a numeric action_id", () => sign(goodClaims({ action_id: 5 })), /"action_id" is invalid/],
      ["a ticket without exp", () => sign(goodClaims({ exp: undefined })), /lacks the "exp" claim/],
      ["a ticket without iat", () => sign(goodClaims({ iat: undefined })), /lacks the "iat" claim/],
      ["a ticket for another audience", () => sign(goodClaims({ aud: "scoreboard-api" })), /"aud" must include "scoreboard-actions"/],
      ["a ticket without aud", () => sign(goodClaims({ aud: undefined })), /lacks the "aud" claim/],
      [
        "a ticket living longer than maxTtlS",
        () => sign(goodClaims({ iat: now(), exp: now() + 3600 })),
        /^action ticket lives 3600 s \(exp - iat\), more than the 300 s allowed$/,
      ],
      ["a ticket issued more than maxTtlS ago", () => sign(goodClaims({ iat: now() - 400, exp: now() + 60 })), /too old/],
      ["an HS256 ticket", () => sign(goodClaims(), hs("x".repeat(48)), { alg: "HS256", kid: "game-1" }), /algorithm not allowed/],
      [
        "an HS256 ticket keyed with the game server's public JWK",
        () => sign(goodClaims(), hs(JSON.stringify(gameJwk)), { alg: "HS256", kid: "game-1" }),
        /algorithm not allowed/,
      ],
      ['alg "none"', async () => `${b64url({ alg: "none", kid: "game-1" })}.${b64url(goodClaims())}.`, /algorithm not allowed/],
      ["a ticket from an unknown key (kid)", () => sign(goodClaims(), stranger.privateKey, { alg: "ES256", kid: "stranger" }), /signing key is unknown/],
      [
        "a ticket from an unknown key claiming the trusted kid",
        () => sign(goodClaims(), stranger.privateKey, { alg: "ES256", kid: "game-1" }),
        /signature is invalid/,
      ],
      [
        "a ticket whose payload was edited",
        async () => {
          const [header, , signature] = (await sign(goodClaims({ sub: "mallory" }))).split(".") as [string, string, string];
          return `${header}.${b64url(goodClaims())}.${signature}`;
        },
        /signature is invalid/,
      ],
    ];

    it.each(cases)("%s", async (_name, makeTicket, message) => {
      const err = await refusal(verifier.verify(await makeTicket(), expected));
      expect(err.code).toBe(Code.PermissionDenied);
      expect(err.rawMessage).toMatch(message);
    });
  });

  it("requires the configured issuer", async () => {
    const strict = new ActionTicketVerifier({ ...config, issuer: "game-eu-1" });
    await expect(strict.verify(await sign(goodClaims({ iss: "game-eu-1" })), expected)).resolves.toMatchObject({ issuer: "game-eu-1" });
    const wrong = await refusal(strict.verify(await sign(goodClaims({ iss: "game-us-1" })), expected));
    expect(wrong).toMatchObject({ code: Code.PermissionDenied, rawMessage: 'action ticket claim "iss" must be "game-eu-1"' });
    const missing = await refusal(strict.verify(await sign(goodClaims()), expected));
    expect(missing.rawMessage).toBe('action ticket lacks the "iss" claim');
  });

  it("honours maxTtlS from the config", async () => {
    const short = new ActionTicketVerifier({ ...config, maxTtlS: 30 });
    const err = await refusal(short.verify(await sign(goodClaims()), expected));
    expect(err.rawMessage).toBe("action ticket lives 60 s (exp - iat), more than the 30 s allowed");
  });
});

describe("ActionTicketVerifier keys", () => {
  it("accepts public keys given as CryptoKeys and Node KeyObjects", async () => {
    const node = generateKeyPairSync("ed25519");
    const v = new ActionTicketVerifier({ ...config, publicKeys: [game.publicKey, node.publicKey] });
    await expect(v.verify(await mintActionTicket(game.privateKey, expected), expected)).resolves.toBeDefined();
    const ed = await mintActionTicket(node.privateKey, expected);
    expect(decodeProtectedHeader(ed).alg).toBe("EdDSA");
    await expect(v.verify(ed, expected)).resolves.toBeDefined();
  });

  it("tries every key when several match a ticket without kid (rotation)", async () => {
    const [old, current] = await Promise.all([generateKeyPair("ES256"), generateKeyPair("ES256")]);
    const v = new ActionTicketVerifier({
      ...config,
      publicKeys: [await exportJWK(old.publicKey), await exportJWK(current.publicKey)],
    });
    await expect(v.verify(await mintActionTicket(current.privateKey, expected), expected)).resolves.toBeDefined();
    await expect(v.verify(await mintActionTicket(old.privateKey, expected), expected)).resolves.toBeDefined();
    const err = await refusal(v.verify(await mintActionTicket(stranger.privateKey, expected), expected));
    expect(err).toMatchObject({ code: Code.PermissionDenied, rawMessage: "action ticket signature is invalid" });
  });

  it("refuses private or symmetric keys at construction", async () => {
    const { privateKey } = await generateKeyPair("ES256", { extractable: true });
    expect(() => new ActionTicketVerifier({ ...config, publicKeys: [privateKey] })).toThrow(/not a public key/);
    expect(() => new ActionTicketVerifier({ ...config, publicKeys: [{ kty: "oct", k: "c2VjcmV0" }] })).toThrow(/symmetric/);
    const privateJwk = await exportJWK(privateKey);
    expect(() => new ActionTicketVerifier({ ...config, publicKeys: [privateJwk] })).toThrow(/private key/);
  });

  describe("from a JWKS URL", () => {
    let status = 200;
    let requests = 0;
    let url = "";
    const server = createServer((_req, res) => {
      requests++;
      res.writeHead(status, { "content-type": "application/json" });
      res.end(JSON.stringify({ keys: [gameJwk] }));
    });

    beforeAll(async () => {
      await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
      url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/jwks`;
    });
    afterAll(async () => {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    });

    it("verifies tickets with keys fetched over HTTP", async () => {
      const v = new ActionTicketVerifier({ ...config, publicKeys: [], jwksUrl: url });
      await expect(v.verify(await sign(goodClaims()), expected)).resolves.toMatchObject({ userId: "alice" });
      const err = await refusal(v.verify(await sign(goodClaims(), stranger.privateKey, { alg: "ES256", kid: "stranger" }), expected));
      expect(err.code).toBe(Code.PermissionDenied);
    });

    it("uses static keys first and the JWKS for kids they lack", async () => {
      requests = 0;
      const other = await generateKeyPair("ES256");
      const v = new ActionTicketVerifier({
        ...config,
        publicKeys: [{ ...(await exportJWK(other.publicKey)), kid: "static-1" }],
        jwksUrl: url,
      });
      await expect(v.verify(await sign(goodClaims(), other.privateKey, { alg: "ES256", kid: "static-1" }), expected)).resolves.toBeDefined();
      expect(requests).toBe(0);
      await expect(v.verify(await sign(goodClaims()), expected)).resolves.toBeDefined();
      expect(requests).toBe(1);
    });

    it("answers UNAVAILABLE when the JWKS cannot be fetched", async () => {
      status = 503;
      try {
        const v = new ActionTicketVerifier({ ...config, publicKeys: [], jwksUrl: url });
        const err = await refusal(v.verify(await sign(goodClaims()), expected));
        expect(err).toMatchObject({ code: Code.Unavailable, rawMessage: "cannot verify action ticket: key set unavailable" });
      } finally {
        status = 200;
      }
    });
  });
});

describe("mintActionTicket", () => {
  it("writes sub, action_id, aud, jti, iat, exp and the kid", async () => {
    const token = await mintActionTicket(game.privateKey, { ...expected, kid: "game-1", jti: "j-1", issuer: "game-eu-1", ttlS: 90 });
    expect(decodeProtectedHeader(token)).toEqual({ alg: "ES256", typ: "JWT", kid: "game-1" });
    const claims = decodeJwt(token);
    expect(claims).toMatchObject({ sub: "alice", action_id: "defeat-boss", aud: "scoreboard-actions", jti: "j-1", iss: "game-eu-1" });
    expect(claims.exp! - claims.iat!).toBe(90);
  });

  it.each([
    ["RS256", "RS256"],
    ["PS256", "PS256"],
    ["ES384", "ES384"],
    ["EdDSA", "EdDSA"],
  ] as const)("infers %s from the key", async (alg, header) => {
    const { privateKey } = await generateKeyPair(alg);
    expect(decodeProtectedHeader(await mintActionTicket(privateKey, expected)).alg).toBe(header);
  });

  it("refuses HMAC", async () => {
    await expect(mintActionTicket({ kty: "oct", k: "c2VjcmV0c2VjcmV0" } as JWK, { ...expected, alg: "HS256" })).rejects.toThrow(/not HS256/);
  });
});

describe("readTicketConfig", () => {
  const read = (vars: Record<string, string>) => {
    const env = new EnvReader(vars);
    const config = readTicketConfig(env);
    try {
      env.done();
      return { config, problems: [] as string[] };
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      return { config, problems: (err as ConfigError).problems };
    }
  };

  it("reads public keys and defaults the rest", () => {
    const { config: c, problems } = read({ GAME_SERVER_PUBLIC_KEYS: JSON.stringify([gameJwk]) });
    expect(problems).toEqual([]);
    expect(c).toEqual({ publicKeys: [gameJwk], audience: "scoreboard-actions", maxTtlS: 300, clockToleranceS: 30 });
  });

  it("reads a JWKS URL, issuer, audience, max TTL and tolerance", () => {
    const { config: c, problems } = read({
      GAME_SERVER_JWKS_URL: "https://games.example/jwks.json",
      TICKET_ISSUER: "game-eu-1",
      TICKET_AUDIENCE: "aud",
      TICKET_MAX_TTL_S: "120",
      TICKET_CLOCK_TOLERANCE_S: "5",
    });
    expect(problems).toEqual([]);
    expect(c).toEqual({
      jwksUrl: "https://games.example/jwks.json",
      publicKeys: [],
      issuer: "game-eu-1",
      audience: "aud",
      maxTtlS: 120,
      clockToleranceS: 5,
    });
  });

  it("requires a key source", () => {
    expect(read({}).problems).toEqual(["GAME_SERVER_PUBLIC_KEYS or GAME_SERVER_JWKS_URL is required to verify action tickets"]);
  });

  it("explains bad keys one by one", () => {
    const keys = [gameJwk, { kty: "oct", k: "c2VjcmV0" }, { ...gameJwk, d: "private" }, "pem?", { kty: "EC", alg: "HS256" }];
    expect(read({ GAME_SERVER_PUBLIC_KEYS: JSON.stringify(keys) }).problems).toEqual([
      "GAME_SERVER_PUBLIC_KEYS[1] is a symmetric key; tickets are verified with public keys only",
      "GAME_SERVER_PUBLIC_KEYS[2] is a private key; configure the public half only",
      "GAME_SERVER_PUBLIC_KEYS[3] is not a JWK object",
      'GAME_SERVER_PUBLIC_KEYS[4] has "alg" other than RS256, PS256, ES256, ES384, EdDSA, Ed25519',
    ]);
    expect(read({ GAME_SERVER_PUBLIC_KEYS: "{not json" }).problems).toEqual(["GAME_SERVER_PUBLIC_KEYS must be a JSON array of public JWKs"]);
    expect(read({ GAME_SERVER_PUBLIC_KEYS: JSON.stringify(gameJwk) }).problems).toEqual(["GAME_SERVER_PUBLIC_KEYS must be a JSON array of public JWKs"]);
  });

  it("checks ranges and the URL scheme", () => {
    expect(read({ GAME_SERVER_JWKS_URL: "ftp://x/jwks", TICKET_MAX_TTL_S: "0", TICKET_CLOCK_TOLERANCE_S: "301" }).problems).toEqual([
      'GAME_SERVER_JWKS_URL must use https: or http:, got "ftp:"',
      'TICKET_MAX_TTL_S must be an integer in 1..3600, got "0"',
      'TICKET_CLOCK_TOLERANCE_S must be an integer in 0..300, got "301"',
    ]);
  });
});
