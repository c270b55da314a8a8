// Seals score events between score (the only writer) and ranking: every
// message (a batch of events) is signed with HMAC-SHA256 and, when encryption
// keys are configured, encrypted with AES-256-GCM first (encrypt-then-MAC).
// Anyone who can publish to NATS but holds no key cannot get a score onto a
// leaderboard.
//
// Wire format (NATS message headers; the payload is the exact bytes below):
//
//   Sb-Sig: v1;kid=<hmac key id>;mac=<base64url HMAC-SHA256, 32 bytes>
//   Sb-Enc: v1;alg=A256GCM;kid=<aes key id>;iv=<base64url nonce, 12 bytes>
//
// Sb-Enc is present only when the payload is encrypted; the payload is then
// the AES-256-GCM ciphertext followed by its 16-byte tag (additional data:
// "scoreboard.event-seal.v1;<aes key id>"). Without Sb-Enc the payload is the
// plain protobuf: a ScoreChangedBatch on scoreboard.score.batch, a
// ScoreChanged on scoreboard.score.changed (releases before batches).
//
// The MAC is HMAC-SHA256 under the key named by Sb-Sig's kid, over these
// fields, each prefixed by its length as a 32-bit big-endian integer:
//
//   "scoreboard.event-seal.v1" · hmac kid · alg ("" when not encrypted)
//   · aes kid ("" when not encrypted) · nonce bytes (empty when not encrypted)
//   · the payload bytes exactly as on the wire
//
// so no header field can be swapped, dropped or moved between fields without
// breaking it. Key ids are 1-64 characters of [A-Za-z0-9._-].
//
// Key rotation: every key in EVENT_HMAC_KEYS (EVENT_ENCRYPTION_KEYS) verifies
// (decrypts); only EVENT_HMAC_KEY_ID (EVENT_ENCRYPTION_KEY_ID) signs
// (encrypts). Add the new key everywhere first, switch the id next, and drop
// the old key once no event sealed with it is left in a stream (SCORES keeps
// 7 days, SCORES_DLQ 30 days).
import { createCipheriv, createDecipheriv, createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import type { EnvReader, RuntimeMode } from "./config.js";

export const SealHeaders = {
  signature: "Sb-Sig",
  encryption: "Sb-Enc",
} as const;

const VERSION = "v1";
const CONTEXT = "scoreboard.event-seal.v1";
const ALG = "A256GCM";
const MAC_BYTES = 32;
const NONCE_BYTES = 12;
const GCM_TAG_BYTES = 16;
const MIN_HMAC_KEY_BYTES = 32;
const AES_KEY_BYTES = 32;
const KEY_ID = /^[A-Za-z0-9._-]{1,64}$/;
const BASE64 = /^[A-Za-z0-9+/_-]+={0,2}$/;

export type EventIntegrityReason = "missing-signature" | "malformed-seal" | "unsupported-version" | "unknown-key" | "bad-signature" | "decryption-failed";

/** An event that must not be trusted; `reason` is stable and safe to log or store. */
export class EventIntegrityError extends Error {
  constructor(
    readonly reason: EventIntegrityReason,
    detail?: string,
  ) {
    super(detail ? `${reason}: ${detail}` : reason);
    this.name = "EventIntegrityError";
  }
}

export interface EventSealConfig {
  /** Every HMAC key that verifies, by id (≥ 32 bytes each). */
  hmacKeys: ReadonlyMap<string, Uint8Array>;
  /** The id of the HMAC key that signs. */
  hmacKeyId: string;
  /** Every AES-256 key that decrypts, by id (32 bytes each); empty = no encryption. */
  encryptionKeys: ReadonlyMap<string, Uint8Array>;
  /** The id of the AES key that encrypts; undefined = events are signed only. */
  encryptionKeyId: string | undefined;
}

export interface SealedEvent {
  data: Uint8Array;
  headers: Record<string, string>;
}

export interface EventSealing {
  seal(payload: Uint8Array): SealedEvent;
}

export interface EventOpening {
  open(data: Uint8Array, headers: Readonly<Record<string, string>>): Uint8Array;
}

export class EventSealer implements EventSealing, EventOpening {
  private readonly hmacKeys: ReadonlyMap<string, Uint8Array>;
  private readonly encryptionKeys: ReadonlyMap<string, Uint8Array>;
  private readonly hmacKeyId: string;
  private readonly encryptionKeyId: string | undefined;

  constructor(config: EventSealConfig) {
    for (const [id, key] of config.hmacKeys) checkKey("HMAC", id, key, MIN_HMAC_KEY_BYTES, Infinity);
    for (const [id, key] of config.encryptionKeys) checkKey("AES", id, key, AES_KEY_BYTES, AES_KEY_BYTES);
    if (!config.hmacKeys.has(config.hmacKeyId)) throw new Error(`no HMAC key with id "${config.hmacKeyId}"`);
    if (config.encryptionKeyId !== undefined && !config.encryptionKeys.has(config.encryptionKeyId)) {
      throw new Error(`no encryption key with id "${config.encryptionKeyId}"`);
    }
    this.hmacKeys = new Map(config.hmacKeys);
    this.encryptionKeys = new Map(config.encryptionKeys);
    this.hmacKeyId = config.hmacKeyId;
    this.encryptionKeyId = config.encryptionKeyId;
  }

  get encrypts(): boolean {
    return this.encryptionKeyId !== undefined;
  }

  seal(payload: Uint8Array): SealedEvent {
    const headers: Record<string, string> = {};
    let data: Uint8Array = payload;
    let enc: EncryptionFields | undefined;
    if (this.encryptionKeyId !== undefined) {
      enc = { alg: ALG, kid: this.encryptionKeyId, iv: randomBytes(NONCE_BYTES) };
      const cipher = createCipheriv("aes-256-gcm", this.encryptionKeys.get(enc.kid)!, enc.iv, { authTagLength: GCM_TAG_BYTES });
      cipher.setAAD(aad(enc.kid));
      data = Buffer.concat([cipher.update(payload), cipher.final(), cipher.getAuthTag()]);
      headers[SealHeaders.encryption] = `${VERSION};alg=${enc.alg};kid=${enc.kid};iv=${b64url(enc.iv)}`;
    }
    const mac = this.mac(this.hmacKeys.get(this.hmacKeyId)!, this.hmacKeyId, enc, data);
    headers[SealHeaders.signature] = `${VERSION};kid=${this.hmacKeyId};mac=${b64url(mac)}`;
    return { data, headers };
  }

  /** Verifies, then decrypts when needed; throws EventIntegrityError for anything untrustworthy. */
  open(data: Uint8Array, headers: Readonly<Record<string, string>>): Uint8Array {
    const sigHeader = header(headers, SealHeaders.signature);
    if (sigHeader === undefined) throw new EventIntegrityError("missing-signature");
    const sig = parseSignature(sigHeader);
    const encHeader = header(headers, SealHeaders.encryption);
    const enc = encHeader === undefined ? undefined : parseEncryption(encHeader);

    const hmacKey = this.hmacKeys.get(sig.kid);
    if (!hmacKey) throw new EventIntegrityError("unknown-key", `HMAC key "${sig.kid}"`);
    const expected = this.mac(hmacKey, sig.kid, enc, data);
    // Both are MAC_BYTES long (parseSignature checked), so only the content
    // is compared, in constant time.
    if (!timingSafeEqual(expected, sig.mac)) throw new EventIntegrityError("bad-signature");

    if (!enc) return data;
    const aesKey = this.encryptionKeys.get(enc.kid);
    if (!aesKey) throw new EventIntegrityError("unknown-key", `encryption key "${enc.kid}"`);
    if (data.length < GCM_TAG_BYTES) throw new EventIntegrityError("decryption-failed", "payload shorter than the tag");
    try {
      const decipher = createDecipheriv("aes-256-gcm", aesKey, enc.iv, { authTagLength: GCM_TAG_BYTES });
      decipher.setAAD(aad(enc.kid));
      decipher.setAuthTag(data.subarray(data.length - GCM_TAG_BYTES));
      return new Uint8Array(Buffer.concat([decipher.update(data.subarray(0, data.length - GCM_TAG_BYTES)), decipher.final()]));
    } catch {
      throw new EventIntegrityError("decryption-failed");
    }
  }

  private mac(key: Uint8Array, kid: string, enc: EncryptionFields | undefined, data: Uint8Array): Buffer {
    const hmac = createHmac("sha256", key);
    for (const field of [Buffer.from(CONTEXT), Buffer.from(kid), Buffer.from(enc?.alg ?? ""), Buffer.from(enc?.kid ?? ""), enc?.iv ?? Buffer.alloc(0), data]) {
      const length = Buffer.alloc(4);
      length.writeUInt32BE(field.length);
      hmac.update(length);
      hmac.update(field);
    }
    return hmac.digest();
  }
}

interface EncryptionFields {
  alg: string;
  kid: string;
  iv: Uint8Array;
}

function aad(kid: string): Buffer {
  return Buffer.from(`${CONTEXT};${kid}`);
}

function b64url(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString("base64url");
}

function checkKey(kind: string, id: string, key: Uint8Array, min: number, max: number): void {
  if (!KEY_ID.test(id)) throw new Error(`${kind} key id "${id}" must be 1-64 characters of A-Z a-z 0-9 . _ -`);
  if (key.length < min || key.length > max) {
    throw new Error(`${kind} key "${id}" must be ${min === max ? `exactly ${min}` : `at least ${min}`} bytes`);
  }
}

/** Case-insensitive, as NATS and HTTP headers are compared by people. */
function header(headers: Readonly<Record<string, string>>, name: string): string | undefined {
  const wanted = name.toLowerCase();
  let found: string | undefined;
  for (const [key, value] of Object.entries(headers)) {
    if (key.toLowerCase() !== wanted) continue;
    if (found !== undefined) throw new EventIntegrityError("malformed-seal", `${name} given twice`);
    found = value;
  }
  return found;
}

/** "v1;a=x;b=y" → version and fields; exactly `keys`, each once. */
function parseFields(name: string, value: string, keys: readonly string[]): Record<string, string> {
  const [version, ...parts] = value.split(";").map((p) => p.trim());
  if (version !== VERSION) {
    throw new EventIntegrityError(/^v\d+$/.test(version ?? "") ? "unsupported-version" : "malformed-seal", `${name} version`);
  }
  const fields: Record<string, string> = {};
  for (const part of parts) {
    const eq = part.indexOf("=");
    const key = part.slice(0, eq);
    if (eq < 1 || !keys.includes(key) || key in fields) throw new EventIntegrityError("malformed-seal", name);
    fields[key] = part.slice(eq + 1);
  }
  if (Object.keys(fields).length !== keys.length) throw new EventIntegrityError("malformed-seal", `${name} is incomplete`);
  return fields;
}

function decodeB64url(name: string, value: string, bytes: number): Buffer {
  if (!/^[A-Za-z0-9_-]+$/.test(value)) throw new EventIntegrityError("malformed-seal", name);
  const decoded = Buffer.from(value, "base64url");
  if (decoded.length !== bytes) throw new EventIntegrityError("malformed-seal", `${name} must be ${bytes} bytes`);
  return decoded;
}

function parseSignature(value: string): { kid: string; mac: Buffer } {
  const f = parseFields(SealHeaders.signature, value, ["kid", "mac"]);
  if (!KEY_ID.test(f.kid!)) throw new EventIntegrityError("malformed-seal", `${SealHeaders.signature} kid`);
  return { kid: f.kid!, mac: decodeB64url(`${SealHeaders.signature} mac`, f.mac!, MAC_BYTES) };
}

function parseEncryption(value: string): EncryptionFields {
  const f = parseFields(SealHeaders.encryption, value, ["alg", "kid", "iv"]);
  if (f.alg !== ALG) throw new EventIntegrityError("unsupported-version", `${SealHeaders.encryption} alg`);
  if (!KEY_ID.test(f.kid!)) throw new EventIntegrityError("malformed-seal", `${SealHeaders.encryption} kid`);
  return { alg: ALG, kid: f.kid!, iv: decodeB64url(`${SealHeaders.encryption} iv`, f.iv!, NONCE_BYTES) };
}

// --- configuration -----------------------------------------------------------

export const EventSealEnv = {
  hmacKeys: "EVENT_HMAC_KEYS",
  hmacKeyId: "EVENT_HMAC_KEY_ID",
  encryptionKeys: "EVENT_ENCRYPTION_KEYS",
  encryptionKeyId: "EVENT_ENCRYPTION_KEY_ID",
} as const;

/**
 * EVENT_HMAC_KEYS="<id>:<base64 key>,<id>:<base64 key>" (each ≥ 32 bytes),
 * EVENT_HMAC_KEY_ID=<id that signs> (may be left out when there is one key);
 * EVENT_ENCRYPTION_KEYS / EVENT_ENCRYPTION_KEY_ID alike with 32-byte
 * AES-256 keys. HMAC keys are required in every mode (npm start generates
 * them into .env.local); encryption keys are optional in development and
 * required in production. Problems go to `env`, never key material.
 */
export function readEventSealConfig(env: EnvReader, mode: RuntimeMode): EventSealConfig {
  const hmac = readKeySet(env, EventSealEnv.hmacKeys, EventSealEnv.hmacKeyId, MIN_HMAC_KEY_BYTES, Infinity);
  if (hmac.keys.size === 0 && !hmac.invalid) {
    env.problem(
      mode === "production"
        ? `${EventSealEnv.hmacKeys} is required in production`
        : `${EventSealEnv.hmacKeys} is required (npm start generates it into .env.local)`,
    );
  }
  const enc = readKeySet(env, EventSealEnv.encryptionKeys, EventSealEnv.encryptionKeyId, AES_KEY_BYTES, AES_KEY_BYTES);
  if (enc.keys.size === 0 && !enc.invalid && mode === "production") {
    env.problem(`${EventSealEnv.encryptionKeys} is required in production (score events are encrypted)`);
  }
  return { hmacKeys: hmac.keys, hmacKeyId: hmac.id ?? "", encryptionKeys: enc.keys, encryptionKeyId: enc.id };
}

function readKeySet(
  env: EnvReader,
  keysName: string,
  idName: string,
  min: number,
  max: number,
): { keys: Map<string, Uint8Array>; id: string | undefined; invalid: boolean } {
  const keys = new Map<string, Uint8Array>();
  let invalid = false;
  const bad = (message: string) => {
    invalid = true;
    env.problem(message);
  };
  const raw = env.optional(keysName);
  for (const [index, entry] of (raw ?? "")
    .split(",")
    .map((e) => e.trim())
    .entries()) {
    if (!entry) continue;
    const colon = entry.indexOf(":");
    const id = colon < 0 ? "" : entry.slice(0, colon).trim();
    const material = colon < 0 ? "" : entry.slice(colon + 1).trim();
    if (!KEY_ID.test(id) || !BASE64.test(material)) {
      bad(`${keysName} entry ${index + 1} must be <key id>:<base64 key> with a key id of 1-64 characters of A-Z a-z 0-9 . _ -`);
      continue;
    }
    if (keys.has(id)) {
      bad(`${keysName} names key "${id}" twice`);
      continue;
    }
    const key = Buffer.from(material, "base64");
    if (key.length < min || key.length > max) {
      bad(`${keysName} key "${id}" is ${key.length} bytes; it must be ${min === max ? `exactly ${min}` : `at least ${min}`}`);
      continue;
    }
    keys.set(id, new Uint8Array(key));
  }
  let id = env.optional(idName);
  if (id === undefined) {
    if (keys.size === 1) id = [...keys.keys()][0];
    else if (keys.size > 1) bad(`${idName} is required when ${keysName} holds more than one key`);
  } else if (keys.size === 0 && !invalid) {
    bad(`${idName} is set but ${keysName} is not`);
  } else if (!keys.has(id) && !invalid) {
    bad(`${idName} "${id}" is not one of the keys in ${keysName}`);
  }
  return { keys, id, invalid };
}

/**
 * Fresh keys in the variables readEventSealConfig reads, for .env.local and
 * tests: one HMAC key and (unless `encrypt` is false) one AES-256 key.
 */
export function generateEventSealEnv(options: { encrypt?: boolean; hmacKeyId?: string; encryptionKeyId?: string } = {}): Record<string, string> {
  const hmacKeyId = options.hmacKeyId ?? "h1";
  const env: Record<string, string> = {
    [EventSealEnv.hmacKeys]: `${hmacKeyId}:${randomBytes(32).toString("base64")}`,
    [EventSealEnv.hmacKeyId]: hmacKeyId,
  };
  if (options.encrypt !== false) {
    const encryptionKeyId = options.encryptionKeyId ?? "e1";
    env[EventSealEnv.encryptionKeys] = `${encryptionKeyId}:${randomBytes(32).toString("base64")}`;
    env[EventSealEnv.encryptionKeyId] = encryptionKeyId;
  }
  return env;
}
