import { randomBytes } from "node:crypto";
import * as crypto from "node:crypto";
import { afterEach, describe, expect, it, vi } from "vitest";
import { ConfigError, EnvReader, type Env } from "./config.js";
import {
  EventIntegrityError,
  EventSealer,
  SealHeaders,
  generateEventSealEnv,
  readEventSealConfig,
  type EventIntegrityReason,
  type EventSealConfig,
} from "./event-seal.js";

// Wrap timingSafeEqual so the tests can see that the MAC check goes through it.
vi.mock("node:crypto", async (importOriginal) => {
  const original = await importOriginal<typeof import("node:crypto")>();
  return { ...original, timingSafeEqual: vi.fn(original.timingSafeEqual) };
});

const k1 = randomBytes(32);
const k2 = randomBytes(48);
const e1 = randomBytes(32);
const e2 = randomBytes(32);
const payload = new TextEncoder().encode("a ScoreChanged event, byte for byte");

function sealer(overrides: Partial<EventSealConfig> = {}): EventSealer {
  return new EventSealer({
    hmacKeys: new Map([["k1", k1]]),
    hmacKeyId: "k1",
    encryptionKeys: new Map(),
    encryptionKeyId: undefined,
    ...overrides,
  });
}

const encrypting = (overrides: Partial<EventSealConfig> = {}) => sealer({ encryptionKeys: new Map([["e1", e1]]), encryptionKeyId: "e1", ...overrides });

function reasonOf(fn: () => unknown): EventIntegrityReason | "no error" {
  try {
    fn();
    return "no error";
  } catch (err) {
    expect(err).toBeInstanceOf(EventIntegrityError);
    return (err as EventIntegrityError).reason;
  }
}

function flipByte(bytes: Uint8Array, index: number): Uint8Array {
  const copy = new Uint8Array(bytes);
  const i = index < 0 ? copy.length + index : index;
  copy[i] = copy[i]! ^ 0x01;
  return copy;
}

/** Replaces one field of a "v1;a=x;b=y" header. */
function withField(header: string, key: string, value: string): string {
  return header
    .split(";")
    .map((part) => (part.startsWith(`${key}=`) ? `${key}=${value}` : part))
    .join(";");
}

afterEach(() => {
  vi.mocked(crypto.timingSafeEqual).mockClear();
});

describe("EventSealer round trip", () => {
  it("signs without encrypting: the payload travels as is, with one Sb-Sig header", () => {
    const s = sealer();
    const sealed = s.seal(payload);
    expect(Buffer.from(sealed.data).equals(Buffer.from(payload))).toBe(true);
    expect(Object.keys(sealed.headers)).toEqual([SealHeaders.signature]);
    expect(sealed.headers[SealHeaders.signature]).toMatch(/^v1;kid=k1;mac=[A-Za-z0-9_-]{43}$/);
    expect(Buffer.from(s.open(sealed.data, sealed.headers)).equals(Buffer.from(payload))).toBe(true);
  });

  it("encrypts then signs: the wire bytes hide the payload and open() restores it", () => {
    const s = encrypting();
    const sealed = s.seal(payload);
    expect(sealed.headers[SealHeaders.encryption]).toMatch(/^v1;alg=A256GCM;kid=e1;iv=[A-Za-z0-9_-]{16}$/);
    expect(sealed.data.length).toBe(payload.length + 16);
    expect(Buffer.from(sealed.data).includes(Buffer.from("ScoreChanged"))).toBe(false);
    expect(Buffer.from(s.open(sealed.data, sealed.headers)).equals(Buffer.from(payload))).toBe(true);
  });

  it("uses a fresh nonce for every event", () => {
    const s = encrypting();
    const a = s.seal(payload);
    const b = s.seal(payload);
    expect(a.headers[SealHeaders.encryption]).not.toBe(b.headers[SealHeaders.encryption]);
    expect(Buffer.from(a.data).equals(Buffer.from(b.data))).toBe(false);
  });

  it("seals an empty payload", () => {
    const s = encrypting();
    const sealed = s.seal(new Uint8Array());
    expect(s.open(sealed.data, sealed.headers).length).toBe(0);
  });

  it("finds its headers whatever their case", () => {
    const s = encrypting();
    const sealed = s.seal(payload);
    const lower = Object.fromEntries(Object.entries(sealed.headers).map(([k, v]) => [k.toLowerCase(), v]));
    expect(Buffer.from(s.open(sealed.data, lower)).equals(Buffer.from(payload))).toBe(true);
  });
});

describe("EventSealer refuses", () => {
  it("an event without a signature", () => {
    expect(reasonOf(() => sealer().open(payload, {}))).toBe("missing-signature");
    const sealed = encrypting().seal(payload);
    expect(reasonOf(() => encrypting().open(sealed.data, { [SealHeaders.encryption]: sealed.headers[SealHeaders.encryption]! }))).toBe("missing-signature");
  });

  it("tampered data, plain or encrypted, at either end", () => {
    for (const s of [sealer(), encrypting()]) {
      const sealed = s.seal(payload);
      expect(reasonOf(() => s.open(flipByte(sealed.data, 0), sealed.headers))).toBe("bad-signature");
      expect(reasonOf(() => s.open(flipByte(sealed.data, -1), sealed.headers))).toBe("bad-signature");
      expect(reasonOf(() => s.open(sealed.data.subarray(1), sealed.headers))).toBe("bad-signature");
      expect(reasonOf(() => s.open(new Uint8Array([...sealed.data, 0]), sealed.headers))).toBe("bad-signature");
    }
  });

  it("a tampered signature or encryption header", () => {
    const s = encrypting();
    const sealed = s.seal(payload);
    const sig = sealed.headers[SealHeaders.signature]!;
    const enc = sealed.headers[SealHeaders.encryption]!;
    const otherMac = Buffer.alloc(32, 7).toString("base64url");
    const otherIv = Buffer.alloc(12, 7).toString("base64url");
    expect(reasonOf(() => s.open(sealed.data, { ...sealed.headers, [SealHeaders.signature]: withField(sig, "mac", otherMac) }))).toBe("bad-signature");
    // The nonce and key ids are covered by the MAC, so changing them breaks
    // the signature before decryption is even tried.
    expect(reasonOf(() => s.open(sealed.data, { ...sealed.headers, [SealHeaders.encryption]: withField(enc, "iv", otherIv) }))).toBe("bad-signature");
    const twoAesKeys = encrypting({
      encryptionKeys: new Map([
        ["e1", e1],
        ["e2", e2],
      ]),
    });
    expect(reasonOf(() => twoAesKeys.open(sealed.data, { ...sealed.headers, [SealHeaders.encryption]: withField(enc, "kid", "e2") }))).toBe("bad-signature");
    // Dropping Sb-Enc changes what the MAC covers as well.
    expect(reasonOf(() => s.open(sealed.data, { [SealHeaders.signature]: sig }))).toBe("bad-signature");
  });

  it("a signature made with another key under a known key id", () => {
    const forger = sealer({ hmacKeys: new Map([["k1", randomBytes(32)]]) });
    const forged = forger.seal(payload);
    expect(reasonOf(() => sealer().open(forged.data, forged.headers))).toBe("bad-signature");
  });

  it("a key id it does not know", () => {
    const other = sealer({ hmacKeys: new Map([["k9", k1]]), hmacKeyId: "k9" });
    const sealed = other.seal(payload);
    expect(reasonOf(() => sealer().open(sealed.data, sealed.headers))).toBe("unknown-key");
  });

  it("an encryption key id it does not know, once the signature checked out", () => {
    const sealed = encrypting({ encryptionKeys: new Map([["e9", e1]]), encryptionKeyId: "e9" }).seal(payload);
    expect(reasonOf(() => encrypting().open(sealed.data, sealed.headers))).toBe("unknown-key");
    // And a verifier without any encryption key at all.
    expect(reasonOf(() => sealer().open(sealed.data, sealed.headers))).toBe("unknown-key");
  });

  it("a correctly signed event that does not decrypt", () => {
    // Same HMAC key (so the signature holds) but another AES key under the same id.
    const sealed = encrypting({ encryptionKeys: new Map([["e1", e2]]) }).seal(payload);
    expect(reasonOf(() => encrypting().open(sealed.data, sealed.headers))).toBe("decryption-failed");
  });

  it("versions and algorithms it does not support", () => {
    const s = encrypting();
    const sealed = s.seal(payload);
    const sig = sealed.headers[SealHeaders.signature]!;
    const enc = sealed.headers[SealHeaders.encryption]!;
    expect(reasonOf(() => s.open(sealed.data, { ...sealed.headers, [SealHeaders.signature]: sig.replace(/^v1/, "v2") }))).toBe("unsupported-version");
    expect(reasonOf(() => s.open(sealed.data, { ...sealed.headers, [SealHeaders.encryption]: enc.replace(/^v1/, "v2") }))).toBe("unsupported-version");
    expect(reasonOf(() => s.open(sealed.data, { ...sealed.headers, [SealHeaders.encryption]: withField(enc, "alg", "A128CBC") }))).toBe("unsupported-version");
  });

  it("headers that do not parse", () => {
    const s = sealer();
    const sealed = s.seal(payload);
    const sig = sealed.headers[SealHeaders.signature]!;
    for (const bad of [
      "",
      "garbage",
      "v1",
      "v1;kid=k1",
      `${sig};kid=k1`,
      `${sig};extra=1`,
      withField(sig, "mac", "not base64!"),
      withField(sig, "mac", Buffer.alloc(31).toString("base64url")),
      withField(sig, "kid", "a b"),
    ]) {
      expect(
        reasonOf(() => s.open(sealed.data, { [SealHeaders.signature]: bad })),
        bad,
      ).toBe("malformed-seal");
    }
    expect(reasonOf(() => s.open(sealed.data, { ...sealed.headers, "sb-sig": sig }))).toBe("malformed-seal");
  });
});

describe("key rotation", () => {
  const before = sealer({ hmacKeys: new Map([["k1", k1]]), hmacKeyId: "k1" });
  const during = sealer({
    hmacKeys: new Map([
      ["k1", k1],
      ["k2", k2],
    ]),
    hmacKeyId: "k2",
  });
  const after = sealer({ hmacKeys: new Map([["k2", k2]]), hmacKeyId: "k2" });

  it("signs with the current key and verifies with every key it holds", () => {
    const fresh = during.seal(payload);
    expect(fresh.headers[SealHeaders.signature]).toMatch(/^v1;kid=k2;/);
    expect(Buffer.from(during.open(fresh.data, fresh.headers)).equals(Buffer.from(payload))).toBe(true);
    const old = before.seal(payload);
    expect(Buffer.from(during.open(old.data, old.headers)).equals(Buffer.from(payload))).toBe(true);
  });

  it("refuses the old key once it is dropped", () => {
    const old = before.seal(payload);
    expect(reasonOf(() => after.open(old.data, old.headers))).toBe("unknown-key");
  });

  it("rotates encryption keys the same way", () => {
    const old = encrypting().seal(payload);
    const rotated = encrypting({
      encryptionKeys: new Map([
        ["e1", e1],
        ["e2", e2],
      ]),
      encryptionKeyId: "e2",
    });
    const fresh = rotated.seal(payload);
    expect(fresh.headers[SealHeaders.encryption]).toMatch(/kid=e2;/);
    expect(Buffer.from(rotated.open(old.data, old.headers)).equals(Buffer.from(payload))).toBe(true);
    expect(Buffer.from(rotated.open(fresh.data, fresh.headers)).equals(Buffer.from(payload))).toBe(true);
  });
});

describe("timing-safe comparison", () => {
  it("compares MACs with crypto.timingSafeEqual, on equal-length buffers, for good and bad signatures alike", () => {
    const spy = vi.mocked(crypto.timingSafeEqual);
    const s = sealer();
    const sealed = s.seal(payload);
    s.open(sealed.data, sealed.headers);
    expect(spy).toHaveBeenCalledTimes(1);
    expect(reasonOf(() => s.open(flipByte(sealed.data, 0), sealed.headers))).toBe("bad-signature");
    expect(spy).toHaveBeenCalledTimes(2);
    for (const [a, b] of spy.mock.calls) expect((a as Uint8Array).length).toBe((b as Uint8Array).length);
    // A MAC of the wrong length is refused before any comparison (which
    // would throw on unequal lengths), and its length is no secret.
    spy.mockClear();
    const short = withField(sealed.headers[SealHeaders.signature]!, "mac", Buffer.alloc(16).toString("base64url"));
    expect(reasonOf(() => s.open(sealed.data, { [SealHeaders.signature]: short }))).toBe("malformed-seal");
    expect(spy).not.toHaveBeenCalled();
  });
});

describe("EventSealer construction", () => {
  it("refuses short keys and unknown signing ids", () => {
    expect(() => sealer({ hmacKeys: new Map([["k1", randomBytes(31)]]) })).toThrow(/at least 32/);
    expect(() => sealer({ hmacKeyId: "nope" })).toThrow(/no HMAC key/);
    expect(() => encrypting({ encryptionKeys: new Map([["e1", randomBytes(16)]]) })).toThrow(/exactly 32/);
    expect(() => encrypting({ encryptionKeyId: "nope" })).toThrow(/no encryption key/);
  });
});

describe("readEventSealConfig", () => {
  const b64 = (bytes: Uint8Array) => Buffer.from(bytes).toString("base64");

  function read(vars: Env, mode: "development" | "production" = "development") {
    const env = new EnvReader(vars);
    const config = readEventSealConfig(env, mode);
    try {
      env.done();
      return { config, problems: [] as string[] };
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      return { config, problems: (err as ConfigError).problems };
    }
  }

  it("reads key sets, the signing ids and builds a working sealer", () => {
    const { config, problems } = read({
      EVENT_HMAC_KEYS: `k1:${b64(k1)}, k2:${Buffer.from(k2).toString("base64url")}`,
      EVENT_HMAC_KEY_ID: "k2",
      EVENT_ENCRYPTION_KEYS: `e1:${b64(e1)}`,
      EVENT_ENCRYPTION_KEY_ID: "e1",
    });
    expect(problems).toEqual([]);
    expect([...config.hmacKeys.keys()]).toEqual(["k1", "k2"]);
    expect(Buffer.from(config.hmacKeys.get("k2")!).equals(k2)).toBe(true);
    expect(config.hmacKeyId).toBe("k2");
    expect(config.encryptionKeyId).toBe("e1");
    const s = new EventSealer(config);
    const sealed = s.seal(payload);
    expect(sealed.headers[SealHeaders.encryption]).toBeDefined();
    expect(Buffer.from(s.open(sealed.data, sealed.headers)).equals(Buffer.from(payload))).toBe(true);
  });

  it("takes the only key as the signing key and leaves encryption off when unset (development)", () => {
    const { config, problems } = read({ EVENT_HMAC_KEYS: `only:${b64(k1)}` });
    expect(problems).toEqual([]);
    expect(config.hmacKeyId).toBe("only");
    expect(config.encryptionKeyId).toBeUndefined();
    expect(new EventSealer(config).encrypts).toBe(false);
  });

  it("requires HMAC keys in every mode and encryption keys in production", () => {
    expect(read({}).problems).toEqual(["EVENT_HMAC_KEYS is required (npm start generates it into .env.local)"]);
    expect(read({}, "production").problems).toEqual([
      "EVENT_HMAC_KEYS is required in production",
      "EVENT_ENCRYPTION_KEYS is required in production (score events are encrypted)",
    ]);
    expect(read({ EVENT_HMAC_KEYS: `k1:${b64(k1)}` }, "production").problems).toEqual([
      "EVENT_ENCRYPTION_KEYS is required in production (score events are encrypted)",
    ]);
  });

  it("reports every bad entry without echoing key material", () => {
    const secret = b64(randomBytes(16));
    const { problems } = read({
      EVENT_HMAC_KEYS: `k1:${secret},k1:${b64(k1)},k1:${b64(k2)},nocolon,bad id:${b64(k1)}`,
      EVENT_ENCRYPTION_KEYS: `e1:${b64(randomBytes(33))}`,
    });
    expect(problems).toEqual([
      'EVENT_HMAC_KEYS key "k1" is 16 bytes; it must be at least 32',
      'EVENT_HMAC_KEYS names key "k1" twice',
      "EVENT_HMAC_KEYS entry 4 must be <key id>:<base64 key> with a key id of 1-64 characters of A-Z a-z 0-9 . _ -",
      "EVENT_HMAC_KEYS entry 5 must be <key id>:<base64 key> with a key id of 1-64 characters of A-Z a-z 0-9 . _ -",
      'EVENT_ENCRYPTION_KEYS key "e1" is 33 bytes; it must be exactly 32',
    ]);
    expect(problems.join("\n")).not.toContain(secret);
  });

  it("needs a signing id among the keys when there are several", () => {
    const keys = `k1:${b64(k1)},k2:${b64(k2)}`;
    expect(read({ EVENT_HMAC_KEYS: keys }).problems).toEqual(["EVENT_HMAC_KEY_ID is required when EVENT_HMAC_KEYS holds more than one key"]);
    expect(read({ EVENT_HMAC_KEYS: keys, EVENT_HMAC_KEY_ID: "k3" }).problems).toEqual(['EVENT_HMAC_KEY_ID "k3" is not one of the keys in EVENT_HMAC_KEYS']);
    expect(read({ EVENT_HMAC_KEYS: keys, EVENT_HMAC_KEY_ID: "k1", EVENT_ENCRYPTION_KEY_ID: "e1" }).problems).toEqual([
      "EVENT_ENCRYPTION_KEY_ID is set but EVENT_ENCRYPTION_KEYS is not",
    ]);
  });

  it("generates an environment it accepts", () => {
    const generated = generateEventSealEnv();
    const { config, problems } = read({ ...generated }, "production");
    expect(problems).toEqual([]);
    expect(new EventSealer(config).encrypts).toBe(true);
    expect(Object.keys(generateEventSealEnv({ encrypt: false }))).toEqual(["EVENT_HMAC_KEYS", "EVENT_HMAC_KEY_ID"]);
  });
});
