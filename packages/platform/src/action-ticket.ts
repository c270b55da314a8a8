// Signed action tickets: proof, from a trusted game server, that a user did
// an action. The game server signs a short-lived JWT with its private key
// (asymmetric only); the client hands it to us with the action; we check it
// against the game servers' public keys before granting points.
//
// Replay: verify() checks a ticket, it does not consume it. One-time use of
// the jti is the ledger's job: it stores used jtis in the same transaction
// that grants the points, so a replayed ticket and the grant it would repeat
// fail together. Doing it here (in memory, or in a separate write) would
// either miss replays across replicas or burn tickets whose grant then failed.
import { randomUUID, KeyObject as NodeKeyObject } from "node:crypto";
import { Code, ConnectError } from "@connectrpc/connect";
import {
  SignJWT,
  createLocalJWKSet,
  errors as joseErrors,
  exportJWK,
  type CryptoKey,
  type JWK,
  type JWSHeaderParameters,
  type FlattenedJWSInput,
  type JWTPayload,
  type KeyObject,
} from "jose";
import {
  ASYMMETRIC_ALGORITHMS,
  KeySetUnavailableError,
  describeJwtError,
  remoteKeySet,
  verifyJwt,
  type KeyResolver,
  type RemoteKeySetOptions,
} from "./auth.js";
import type { EnvReader } from "./config.js";

/** A verified ticket. */
export interface ActionTicket {
  /** Unique ticket id (1..128 characters): the ledger refuses a jti it has seen. */
  jti: string;
  userId: string;
  actionId: string;
  expiresAt: Date;
  /** The ticket's "iss", or "" when it names none (only possible when TicketConfig.issuer is unset). */
  issuer: string;
  /**
   * The optional "score" claim, a safe integer: the score a game server
   * vouches for (a board submission's ticket must carry the score submitted).
   */
  score?: number;
}

/** A game server's public key: a public JWK, or an imported CryptoKey/KeyObject of type "public". */
export type TicketPublicKey = JWK | CryptoKey | KeyObject;

export interface TicketConfig {
  /** A JWKS with the game servers' public keys (GAME_SERVER_JWKS_URL). */
  jwksUrl?: string;
  /** Static public keys (GAME_SERVER_PUBLIC_KEYS, a JSON array of public JWKs); tried before jwksUrl. */
  publicKeys: TicketPublicKey[];
  /** Required "iss" (TICKET_ISSUER); any issuer when unset. */
  issuer?: string;
  /** Required "aud" (TICKET_AUDIENCE, default "scoreboard-actions"). */
  audience: string;
  /** Longest allowed ticket life, exp - iat, in seconds (TICKET_MAX_TTL_S, 1..3600, default 300). */
  maxTtlS: number;
  /** Clock skew allowed for exp, nbf and iat, in seconds (TICKET_CLOCK_TOLERANCE_S, 0..300, default 30). */
  clockToleranceS: number;
}

const MAX_JTI_LENGTH = 128;

/**
 * Reads the ticket settings. At least one key source (GAME_SERVER_PUBLIC_KEYS
 * or GAME_SERVER_JWKS_URL) is required: a verifier without keys would refuse
 * every ticket, which is a deployment mistake better reported at startup.
 */
export function readTicketConfig(env: EnvReader): TicketConfig {
  const jwksUrl = env.optional("GAME_SERVER_JWKS_URL") ? env.url("GAME_SERVER_JWKS_URL", undefined, ["https:", "http:"]) : undefined;
  const raw = env.optional("GAME_SERVER_PUBLIC_KEYS");
  const publicKeys: JWK[] = [];
  let keysProblem = false;
  if (raw) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(raw);
    } catch {
      parsed = undefined;
    }
    if (!Array.isArray(parsed)) {
      env.problem("GAME_SERVER_PUBLIC_KEYS must be a JSON array of public JWKs");
      keysProblem = true;
    } else {
      parsed.forEach((key: unknown, i) => {
        const problem = publicJwkProblem(key);
        if (problem) {
          env.problem(`GAME_SERVER_PUBLIC_KEYS[${i}] ${problem}`);
          keysProblem = true;
        } else {
          publicKeys.push(key as JWK);
        }
      });
    }
  }
  if (!jwksUrl && publicKeys.length === 0 && !keysProblem) {
    env.problem("GAME_SERVER_PUBLIC_KEYS or GAME_SERVER_JWKS_URL is required to verify action tickets");
  }
  return {
    jwksUrl,
    publicKeys,
    issuer: env.optional("TICKET_ISSUER"),
    audience: env.string("TICKET_AUDIENCE", "scoreboard-actions"),
    maxTtlS: env.int("TICKET_MAX_TTL_S", 300, 1, 3600),
    clockToleranceS: env.int("TICKET_CLOCK_TOLERANCE_S", 30, 0, 300),
  };
}

/** Why a value is not a usable public signing JWK, or undefined when it is. */
function publicJwkProblem(key: unknown): string | undefined {
  if (typeof key !== "object" || key === null || Array.isArray(key)) return "is not a JWK object";
  const jwk = key as Record<string, unknown>;
  if (jwk.kty === "oct") return "is a symmetric key; tickets are verified with public keys only";
  if (jwk.kty !== "RSA" && jwk.kty !== "EC" && jwk.kty !== "OKP") return 'must have "kty" RSA, EC or OKP';
  if ("d" in jwk) return "is a private key; configure the public half only";
  if (jwk.alg !== undefined && (typeof jwk.alg !== "string" || !ASYMMETRIC_ALGORITHMS.includes(jwk.alg))) {
    return `has "alg" other than ${ASYMMETRIC_ALGORITHMS.join(", ")}`;
  }
  return undefined;
}

function isJwk(key: TicketPublicKey): key is JWK {
  return typeof (key as { kty?: unknown }).kty === "string";
}

export interface ActionTicketVerifierOptions {
  /** Resolves keys instead of fetching TicketConfig.jwksUrl (tests). */
  keySet?: KeyResolver;
  /** Tuning for the JWKS fetched from TicketConfig.jwksUrl. */
  jwks?: RemoteKeySetOptions;
}

const denied = (message: string) => new ConnectError(message, Code.PermissionDenied);

export class ActionTicketVerifier {
  private readonly remote: KeyResolver | undefined;
  private local: Promise<KeyResolver | undefined> | undefined;

  constructor(
    private readonly config: TicketConfig,
    options: ActionTicketVerifierOptions = {},
  ) {
    for (const [i, key] of config.publicKeys.entries()) {
      const problem = isJwk(key) ? publicJwkProblem(key) : key.type === "public" ? undefined : "is not a public key";
      if (problem) throw new Error(`TicketConfig.publicKeys[${i}] ${problem}`);
    }
    this.remote = options.keySet ?? (config.jwksUrl ? remoteKeySet(config.jwksUrl, options.jwks) : undefined);
  }

  /**
   * Checks a ticket for `expected.userId` doing `expected.actionId`: an
   * asymmetric signature by a trusted key (never HS*, never "none"), aud,
   * iss when configured, exp, nbf, iat not in the future, exp - iat within
   * maxTtlS, and a jti of 1..128 characters. Throws PERMISSION_DENIED saying
   * what is wrong (never echoing the ticket), or UNAVAILABLE when the JWKS
   * cannot be fetched (as TokenVerifier: the ticket may be fine, retry).
   * Does not mark the jti used; see the top of this file.
   */
  async verify(ticket: string, expected: { userId: string; actionId: string }): Promise<ActionTicket> {
    const token = typeof ticket === "string" ? ticket.trim() : "";
    if (!token) throw denied("action ticket is missing");
    let payload: JWTPayload;
    try {
      ({ payload } = await verifyJwt(token, this.resolveKey, {
        algorithms: [...ASYMMETRIC_ALGORITHMS],
        audience: this.config.audience,
        issuer: this.config.issuer,
        requiredClaims: ["sub", "action_id", "jti", "iat", "exp"],
        maxTokenAge: this.config.maxTtlS,
        clockTolerance: this.config.clockToleranceS,
      }));
    } catch (err) {
      if (err instanceof KeySetUnavailableError) {
        throw new ConnectError("cannot verify action ticket: key set unavailable", Code.Unavailable, undefined, undefined, err);
      }
      throw denied(describeJwtError(err, "action ticket", { issuer: this.config.issuer, audience: this.config.audience }));
    }

    const { sub, jti, iat, exp, iss } = payload;
    const actionId = payload.action_id;
    if (typeof jti !== "string" || jti.length < 1 || jti.length > MAX_JTI_LENGTH || /\p{Cc}/u.test(jti)) {
      throw denied(`action ticket claim "jti" must be 1..${MAX_JTI_LENGTH} characters without control characters`);
    }
    if (typeof sub !== "string") throw denied('action ticket claim "sub" is invalid');
    if (sub !== expected.userId) throw denied("action ticket was issued to another user");
    if (typeof actionId !== "string") throw denied('action ticket claim "action_id" is invalid');
    if (actionId !== expected.actionId) throw denied("action ticket is for another action");
    // jose has checked both are numbers (they are required and present).
    const lifetime = (exp as number) - (iat as number);
    if (lifetime > this.config.maxTtlS) {
      throw denied(`action ticket lives ${lifetime} s (exp - iat), more than the ${this.config.maxTtlS} s allowed`);
    }
    const { score } = payload;
    if (score !== undefined && !Number.isSafeInteger(score)) throw denied('action ticket claim "score" must be an integer');
    return {
      jti,
      userId: sub,
      actionId,
      expiresAt: new Date((exp as number) * 1000),
      issuer: iss ?? "",
      ...(score !== undefined ? { score: score as number } : {}),
    };
  }

  // Static keys first; a header no static key matches goes to the JWKS.
  private readonly resolveKey = async (header: JWSHeaderParameters, token: FlattenedJWSInput): Promise<CryptoKey> => {
    this.local ??= this.loadLocal();
    const local = await this.local;
    if (local) {
      try {
        return await local(header, token);
      } catch (err) {
        if (!(err instanceof joseErrors.JWKSNoMatchingKey) || !this.remote) throw err;
      }
    }
    if (this.remote) return this.remote(header, token);
    throw new joseErrors.JWKSNoMatchingKey();
  };

  private async loadLocal(): Promise<KeyResolver | undefined> {
    if (this.config.publicKeys.length === 0) return undefined;
    const keys = await Promise.all(this.config.publicKeys.map((key) => (isJwk(key) ? key : exportJWK(key))));
    return createLocalJWKSet({ keys });
  }
}

export interface ActionTicketClaims {
  userId: string;
  actionId: string;
  /** Default "scoreboard-actions". */
  audience?: string;
  issuer?: string;
  /** Default a random UUID. */
  jti?: string;
  /** Lifetime in seconds, default 60. */
  ttlS?: number;
  kid?: string;
  /** Default inferred from the key: RS256, ES256, ES384 or EdDSA. */
  alg?: string;
  /** The "score" claim, for a board submission's ticket. */
  score?: number;
}

/**
 * Signs a ticket as a game server would, for tests and dev tools. Refuses
 * HMAC: tickets are only ever signed with a private key.
 */
export async function mintActionTicket(privateKey: CryptoKey | KeyObject | JWK, claims: ActionTicketClaims): Promise<string> {
  const alg = claims.alg ?? inferAlgorithm(privateKey);
  if (!ASYMMETRIC_ALGORITHMS.includes(alg)) throw new Error(`action tickets are signed with ${ASYMMETRIC_ALGORITHMS.join(", ")}, not ${alg}`);
  const jwt = new SignJWT({ action_id: claims.actionId, ...(claims.score !== undefined ? { score: claims.score } : {}) })
    .setProtectedHeader({ alg, typ: "JWT", ...(claims.kid ? { kid: claims.kid } : {}) })
    .setSubject(claims.userId)
    .setAudience(claims.audience ?? "scoreboard-actions")
    .setJti(claims.jti ?? randomUUID())
    .setIssuedAt()
    .setExpirationTime(`${claims.ttlS ?? 60}s`);
  if (claims.issuer) jwt.setIssuer(claims.issuer);
  return jwt.sign(privateKey);
}

function inferAlgorithm(key: CryptoKey | KeyObject | JWK): string {
  let kty: unknown;
  let crv: unknown;
  if (isJwk(key)) {
    if (typeof key.alg === "string") return key.alg;
    ({ kty, crv } = key);
  } else if (key instanceof NodeKeyObject) {
    const type = key.asymmetricKeyType;
    kty = type === "rsa" ? "RSA" : type === "ec" ? "EC" : type === "ed25519" ? "OKP" : type;
    const curve = key.asymmetricKeyDetails?.namedCurve;
    crv = curve === "prime256v1" ? "P-256" : curve === "secp384r1" ? "P-384" : type === "ed25519" ? "Ed25519" : curve;
  } else {
    const algorithm = (key as CryptoKey).algorithm as { name: string; namedCurve?: string };
    if (algorithm.name === "RSA-PSS") return "PS256";
    kty = algorithm.name === "RSASSA-PKCS1-v1_5" ? "RSA" : algorithm.name === "ECDSA" ? "EC" : algorithm.name === "Ed25519" ? "OKP" : algorithm.name;
    crv = algorithm.name === "Ed25519" ? "Ed25519" : algorithm.namedCurve;
  }
  if (kty === "RSA") return "RS256";
  if (kty === "EC" && crv === "P-256") return "ES256";
  if (kty === "EC" && crv === "P-384") return "ES384";
  if (kty === "OKP" && crv === "Ed25519") return "EdDSA";
  throw new Error(`cannot infer a ticket signing algorithm for this key (${String(kty)} ${String(crv ?? "")}); pass claims.alg`);
}
