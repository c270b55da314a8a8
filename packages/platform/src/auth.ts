import { Code, ConnectError } from "@connectrpc/connect";
import {
  SignJWT,
  createRemoteJWKSet,
  errors as joseErrors,
  jwtVerify,
  type CryptoKey,
  type FlattenedJWSInput,
  type JWSAlgorithm,
  type JWSHeaderParameters,
  type JWTPayload,
  type JWTVerifyOptions,
  type JWTVerifyResult,
} from "jose";
import type { AuthConfig } from "./config.js";

export const Scopes = {
  updateScore: "update:score",
  readLeaderboard: "read:leaderboard",
  adminScore: "admin:score",
} as const;

/** Who is calling, as proven by a verified access token. */
export interface Principal {
  userId: string;
  username: string;
  scopes: ReadonlySet<string>;
  roles: readonly string[];
  /** The token's `region` claim (a regional board, e.g. "eu"), when valid. */
  region?: string;
}

/** A region name, in a token's `region` claim and in REGIONS. */
export const REGION = /^[a-z][a-z0-9-]{0,15}$/;

const USER_ID = /^[^\p{Cc}\s][^\p{Cc}]{0,63}$/u;

/**
 * Tokens from the future or minutes stale happen with drifting clocks; more
 * than this is not drift. AuthConfig.clockToleranceS (JWT_CLOCK_TOLERANCE_S)
 * overrides it.
 */
export const DEFAULT_CLOCK_TOLERANCE_S = 30;

/**
 * The longest a token may live (exp − iat, or exp − now without iat): a
 * leaked ten-year token is a ten-year credential. AuthConfig.maxLifetimeS
 * (JWT_MAX_LIFETIME_S) overrides it; `npm run token` mints 12 h by default.
 */
export const DEFAULT_MAX_LIFETIME_S = 86_400;

/** Validates an id from a client: 1..64 characters, no control characters, no leading space. */
export function isValidId(value: string): boolean {
  return USER_ID.test(value) && [...value].length <= 64;
}

/**
 * Signature algorithms accepted from a key set (an IdP's JWKS, a game
 * server's public keys). Never HMAC: a key set holds public keys, and an HS*
 * token "signed" with a public key is the classic algorithm-confusion attack.
 */
export const ASYMMETRIC_ALGORITHMS: readonly JWSAlgorithm[] = ["RS256", "PS256", "ES256", "ES384", "EdDSA", "Ed25519"];

/** The only algorithm verified with the shared secret. */
const SECRET_ALGORITHM = "HS256";

/** Resolves the public key for an unverified token's header (a JWKS, local or remote). */
export type KeyResolver = (header: JWSHeaderParameters, token: FlattenedJWSInput) => Promise<CryptoKey>;

/**
 * The key set could not be fetched or used (network error, timeout, non-200,
 * not a JWKS): a server-side problem, not the caller's.
 */
export class KeySetUnavailableError extends Error {
  constructor(options?: { cause?: unknown }) {
    super("key set unavailable", options);
    this.name = "KeySetUnavailableError";
  }
}

export interface RemoteKeySetOptions {
  /** Per-fetch timeout. Default 3 s: a request waits at most this long on the IdP. */
  timeoutMs?: number;
  /** A token with an unknown kid refetches at most this often. Default 30 s. */
  cooldownMs?: number;
  /** Keys are refetched when older than this. Default 10 minutes. */
  cacheMaxAgeMs?: number;
}

/**
 * A JWKS fetched over HTTP(S) with jose's cache. Unknown kids refetch at most
 * once per cooldown, so random kids cannot turn us into a load generator
 * against the IdP. Fetch failures become KeySetUnavailableError; "no key
 * matches" stays a jose error (the token's fault).
 */
export function remoteKeySet(url: string | URL, options: RemoteKeySetOptions = {}): KeyResolver {
  const jwks = createRemoteJWKSet(new URL(url), {
    timeoutDuration: options.timeoutMs ?? 3_000,
    cooldownDuration: options.cooldownMs ?? 30_000,
    cacheMaxAge: options.cacheMaxAgeMs ?? 600_000,
  });
  return async (header, token) => {
    try {
      return await jwks(header, token);
    } catch (err) {
      if (err instanceof joseErrors.JWKSNoMatchingKey || err instanceof joseErrors.JWKSMultipleMatchingKeys) throw err;
      throw new KeySetUnavailableError({ cause: err });
    }
  };
}

/**
 * jwtVerify with a key resolver, trying each candidate when several keys
 * match the header (keys without a kid): only a signature mismatch moves on to
 * the next key; any other failure is final.
 */
export async function verifyJwt(
  token: string,
  key: Uint8Array | ((header: JWSHeaderParameters, token: FlattenedJWSInput) => Promise<Uint8Array | CryptoKey>),
  options: JWTVerifyOptions,
): Promise<JWTVerifyResult> {
  try {
    return typeof key === "function" ? await jwtVerify(token, key, options) : await jwtVerify(token, key, options);
  } catch (err) {
    if (!(err instanceof joseErrors.JWKSMultipleMatchingKeys)) throw err;
    for await (const candidate of err) {
      try {
        return await jwtVerify(token, candidate, options);
      } catch (inner) {
        if (!(inner instanceof joseErrors.JWSSignatureVerificationFailed)) throw inner;
      }
    }
    throw new joseErrors.JWSSignatureVerificationFailed();
  }
}

/**
 * Why a token was refused, for the client. Never echoes the token or any
 * claim value from it, only claim names and what we expected.
 */
export function describeJwtError(err: unknown, subject = "token", expected: { issuer?: string; audience?: string } = {}): string {
  if (err instanceof joseErrors.JWTExpired) {
    return err.claim === "iat" ? `${subject} is too old (claim "iat")` : `${subject} expired`;
  }
  if (err instanceof joseErrors.JWTClaimValidationFailed) {
    const claim = err.claim;
    if (err.reason === "missing") return `${subject} lacks the "${claim}" claim`;
    if (claim === "nbf") return `${subject} is not valid yet (claim "nbf" is in the future)`;
    if (claim === "iat") return `${subject} was issued in the future (claim "iat")`;
    if (claim === "iss" && expected.issuer) return `${subject} claim "iss" must be "${expected.issuer}"`;
    if (claim === "aud" && expected.audience) return `${subject} claim "aud" must include "${expected.audience}"`;
    return `${subject} claim "${claim}" is invalid`;
  }
  if (err instanceof joseErrors.JOSEAlgNotAllowed) return `${subject} algorithm not allowed`;
  if (err instanceof joseErrors.JWSSignatureVerificationFailed) return `${subject} signature is invalid`;
  if (err instanceof joseErrors.JWKSNoMatchingKey) return `${subject} signing key is unknown (no trusted key matches its "kid" and "alg")`;
  if (err instanceof joseErrors.JWKSMultipleMatchingKeys) return `${subject} signing key is ambiguous (no trusted key verifies it)`;
  return `${subject} is malformed`;
}

export interface TokenVerifierOptions {
  /**
   * Resolves asymmetric keys instead of fetching AuthConfig.jwksUrl: a seam
   * for tests (jose's createLocalJWKSet) or keys obtained some other way.
   */
  keySet?: KeyResolver;
  /** Tuning for the JWKS fetched from AuthConfig.jwksUrl. */
  jwks?: RemoteKeySetOptions;
}

const VERIFIED_CACHE_SIZE = 10_000;

export class TokenVerifier {
  private readonly secret: Uint8Array | undefined;
  // The secret imported once as an HMAC key: given raw bytes, jose imports
  // them again on every verification.
  private secretKey: Promise<CryptoKey> | undefined;
  private readonly keySet: KeyResolver | undefined;
  private readonly algorithms: JWSAlgorithm[];
  private readonly clockToleranceS: number;
  private readonly maxLifetimeS: number;

  /**
   * Verifies HS256 tokens with config.jwtSecret (dev, first-party tools) and
   * RS256/PS256/ES256/ES384/EdDSA tokens with the JWKS at config.jwksUrl
   * (an IdP), either or both. Throws if neither is configured.
   */
  constructor(
    private readonly config: AuthConfig,
    options: TokenVerifierOptions = {},
  ) {
    this.secret = config.jwtSecret ? new TextEncoder().encode(config.jwtSecret) : undefined;
    this.keySet = options.keySet ?? (config.jwksUrl ? remoteKeySet(config.jwksUrl, options.jwks) : undefined);
    if (!this.secret && !this.keySet) throw new Error("TokenVerifier needs AuthConfig.jwtSecret or AuthConfig.jwksUrl");
    this.algorithms = [...(this.secret ? [SECRET_ALGORITHM] : []), ...(this.keySet ? ASYMMETRIC_ALGORITHMS : [])];
    this.clockToleranceS = config.clockToleranceS ?? DEFAULT_CLOCK_TOLERANCE_S;
    this.maxLifetimeS = config.maxLifetimeS ?? DEFAULT_MAX_LIFETIME_S;
  }

  /**
   * Verifies `Authorization: Bearer <jwt>`: an allowed algorithm ("none",
   * HS384, RS512, an HS256 token when no secret is configured... fail before
   * any key is looked at), the key chosen by that algorithm alone (HS256 →
   * the secret, never the JWKS; asymmetric → the JWKS, never the secret, so an
   * HS256 token keyed with our public key's PEM or JWK fails its HMAC check),
   * signature, issuer, audience, a required exp (jose checks exp only when
   * present) and nbf, each with clockToleranceS of slack; an iat in the
   * future (beyond that slack) and a lifetime above maxLifetimeS are refused.
   *
   * Throws UNAUTHENTICATED with a reason a client can act on. When the JWKS
   * cannot be fetched it throws UNAVAILABLE "cannot verify token: key set
   * unavailable" instead: the token may well be valid, the fault is ours or
   * the IdP's and goes away on retry. UNAUTHENTICATED would tell clients to
   * drop a good token and log in again, turning an IdP blip into a login
   * storm against that same IdP.
   */
  async authenticate(authorization: string | null | undefined): Promise<Principal> {
    const match = /^Bearer\s+(\S+)\s*$/i.exec(authorization ?? "");
    if (!match?.[1]) throw new ConnectError("missing bearer token", Code.Unauthenticated);
    // A token string verified once verifies the same way until it expires
    // (nothing here revokes tokens), and a client sends the same token on
    // every call: skip the signature check then. Only successes are cached.
    const cached = this.verified.get(match[1]);
    if (cached && cached.expiresAtS > Date.now() / 1000) return cached.principal;
    return this.verify(match[1]);
  }

  private readonly verified = new Map<string, { principal: Principal; expiresAtS: number }>();

  private remember(token: string, principal: Principal, expiresAtS: number): void {
    if (this.verified.size >= VERIFIED_CACHE_SIZE) {
      // Map keeps insertion order: drop the oldest entries.
      for (const key of [...this.verified.keys()].slice(0, VERIFIED_CACHE_SIZE / 10)) this.verified.delete(key);
    }
    this.verified.set(token, { principal, expiresAtS });
  }

  private async verify(token: string): Promise<Principal> {
    let payload: JWTPayload;
    try {
      ({ payload } = await verifyJwt(token, this.resolveKey, {
        algorithms: this.algorithms,
        issuer: this.config.issuer,
        audience: this.config.audience,
        requiredClaims: ["exp", "sub"],
        clockTolerance: this.clockToleranceS,
      }));
    } catch (err) {
      if (err instanceof KeySetUnavailableError) {
        throw new ConnectError("cannot verify token: key set unavailable", Code.Unavailable, undefined, undefined, err);
      }
      const message = describeJwtError(err, "token", { issuer: this.config.issuer, audience: this.config.audience });
      throw new ConnectError(message, Code.Unauthenticated);
    }
    checkLifetime(payload, this.clockToleranceS, this.maxLifetimeS);
    const userId = payload.sub ?? "";
    if (!isValidId(userId)) throw new ConnectError("token subject is not a valid user id", Code.Unauthenticated);
    const roles = Array.isArray(payload.roles) ? payload.roles.filter((r): r is string => typeof r === "string") : [];
    const name = typeof payload.name === "string" && isValidId(payload.name) ? payload.name : userId;
    const principal: Principal = { userId, username: name, scopes: scopesOf(payload), roles };
    if (typeof payload.region === "string" && REGION.test(payload.region)) principal.region = payload.region;
    this.remember(token, principal, payload.exp ?? 0);
    return principal;
  }

  // The algorithm alone picks the key; `algorithms` has already refused
  // anything not configured, these checks only keep that true if it changes.
  private readonly resolveKey = async (header: JWSHeaderParameters, token: FlattenedJWSInput): Promise<Uint8Array | CryptoKey> => {
    if (header.alg === SECRET_ALGORITHM) {
      if (!this.secret) throw new joseErrors.JOSEAlgNotAllowed("HS256 is not configured");
      this.secretKey ??= crypto.subtle.importKey("raw", this.secret as Uint8Array<ArrayBuffer>, { name: "HMAC", hash: "SHA-256" }, false, ["verify"]);
      return this.secretKey;
    }
    if (!this.keySet || !header.alg || !ASYMMETRIC_ALGORITHMS.includes(header.alg)) {
      throw new joseErrors.JOSEAlgNotAllowed("algorithm not configured");
    }
    return this.keySet(header, token);
  };
}

/**
 * jose checks iat only when given a maximum age, and never bounds exp: a
 * token issued in the future (a skewed or compromised issuer) or living for
 * years would pass. Runs after the signature and exp checks.
 */
function checkLifetime(payload: JWTPayload, toleranceS: number, maxLifetimeS: number): void {
  const nowS = Math.floor(Date.now() / 1000);
  if (payload.iat !== undefined) {
    if (typeof payload.iat !== "number" || !Number.isFinite(payload.iat)) {
      throw new ConnectError('token claim "iat" is invalid', Code.Unauthenticated);
    }
    if (payload.iat > nowS + toleranceS) throw new ConnectError('token was issued in the future (claim "iat")', Code.Unauthenticated);
  }
  const issuedS = payload.iat ?? nowS;
  if (payload.exp! - issuedS > maxLifetimeS + toleranceS) {
    throw new ConnectError(`token lives longer than the allowed ${maxLifetimeS} s (claims "exp" − "iat")`, Code.Unauthenticated);
  }
}

/**
 * Scopes from the space-separated "scope" claim (RFC 8693/9068) and from
 * "scp", which some IdPs send as an array (Okta) or a string (Entra ID).
 */
function scopesOf(payload: JWTPayload): Set<string> {
  const scopes = new Set<string>();
  const add = (value: unknown) => {
    if (typeof value === "string") for (const s of value.split(/\s+/)) if (s) scopes.add(s);
  };
  add(payload.scope);
  if (Array.isArray(payload.scp)) payload.scp.forEach(add);
  else add(payload.scp);
  return scopes;
}

export function requireScope(principal: Principal, scope: string): void {
  if (!principal.scopes.has(scope)) {
    throw new ConnectError(`token lacks the scope "${scope}"`, Code.PermissionDenied);
  }
}

export function requireRole(principal: Principal, role: string): void {
  if (!principal.roles.includes(role)) {
    throw new ConnectError(`token lacks the role "${role}"`, Code.PermissionDenied);
  }
}

/**
 * Passes when the caller acts for itself; acting for another user needs
 * `scope` (admin:score by default).
 */
export function requireSelfOrScope(principal: Principal, userId: string, scope: string = Scopes.adminScore): void {
  if (principal.userId === userId) return;
  if (!principal.scopes.has(scope)) {
    throw new ConnectError(`acting for another user requires the scope "${scope}"`, Code.PermissionDenied);
  }
}

export interface MintOptions {
  region?: string;
  scopes?: string[];
  roles?: string[];
  name?: string;
  expiresIn?: string;
}

/** Mints a dev/test token signed with the configured HS256 secret. */
export async function mintToken(config: AuthConfig, userId: string, options: MintOptions = {}): Promise<string> {
  if (!config.jwtSecret) throw new Error("mintToken needs AuthConfig.jwtSecret (JWT_SECRET); tokens for a JWKS come from the IdP");
  const claims: JWTPayload = {
    scope: (options.scopes ?? [Scopes.updateScore, Scopes.readLeaderboard]).join(" "),
    roles: options.roles ?? ["player"],
  };
  if (options.name) claims.name = options.name;
  if (options.region) claims.region = options.region;
  return new SignJWT(claims)
    .setProtectedHeader({ alg: SECRET_ALGORITHM, typ: "JWT" })
    .setSubject(userId)
    .setIssuer(config.issuer)
    .setAudience(config.audience)
    .setIssuedAt()
    .setExpirationTime(options.expiresIn ?? "1h")
    .sign(new TextEncoder().encode(config.jwtSecret));
}
