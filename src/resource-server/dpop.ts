import { createHash } from 'node:crypto';

import { calculateJwkThumbprint, decodeProtectedHeader, importJWK, jwtVerify, type JWK, type JWTPayload } from 'jose';

/**
 * DPoP proof verification at a resource server (RFC 9449 §4.3 and §7.1).
 *
 * Pure apart from the injected clock (`now`) and replay store (`replay`): no network, no
 * global state. A proof is accepted only when every check passes; its `jti` is recorded
 * last, so a proof refused for any other reason never occupies the replay store.
 */

/** Signature algorithms accepted for proofs (FAPI 2.0: asymmetric only; never none or HS*). */
export const DPOP_ALGS = ['ES256', 'PS256', 'EdDSA'] as const;
export type DpopAlg = (typeof DPOP_ALGS)[number];

/** JWK members that only a private (or symmetric) key has: a proof must never carry them. */
const PRIVATE_JWK_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k'] as const;

/** Longest accepted jti: bounds what one proof can make the replay store hold. */
const MAX_JTI_LENGTH = 256;

/** Why a proof was refused; `reason` is safe to show to the client. */
export class DpopError extends Error {
  override readonly name = 'DpopError';
  readonly reason: string;

  constructor(reason: string) {
    super(`invalid DPoP proof: ${reason}`);
    this.reason = reason;
  }
}

/**
 * Remembers proof identifiers (jti) until they expire.
 * `remember` returns true when the jti was not already remembered (and records it until
 * `expiresAt`, seconds since the epoch, inclusive), false when it was: a replay. A store
 * shared by several instances of an API may answer asynchronously.
 */
export interface ReplayCache {
  remember(jti: string, expiresAt: number): boolean | Promise<boolean>;
}

export interface InMemoryReplayCacheOptions {
  /** most jtis held at once (default 100 000) */
  readonly maxEntries?: number;
  /** the clock deciding expiry (default the system clock) */
  readonly now?: () => Date;
}

/**
 * A bounded in-process replay store.
 *
 * Invariants: an entry lives until its expiresAt has passed; no unexpired entry is ever
 * evicted to make room (that would re-open a replay). When the store is full of unexpired
 * entries it fails closed: `remember` returns false (the proof is refused as a replay)
 * until entries expire. Keys are SHA-256 digests of the jti, so memory per entry is fixed.
 */
export class InMemoryReplayCache implements ReplayCache {
  readonly #entries = new Map<string, number>();
  readonly #maxEntries: number;
  readonly #now: () => Date;
  /** a lower bound of every held entry's expiresAt: sweeping earlier frees nothing */
  #earliestExpiry = Number.POSITIVE_INFINITY;

  constructor(options: InMemoryReplayCacheOptions = {}) {
    const maxEntries = options.maxEntries ?? 100_000;
    if (!Number.isInteger(maxEntries) || maxEntries < 1) throw new RangeError('maxEntries must be a positive integer');
    this.#maxEntries = maxEntries;
    this.#now = options.now ?? (() => new Date());
  }

  get size(): number {
    return this.#entries.size;
  }

  remember(jti: string, expiresAt: number): boolean {
    const now = this.#now().getTime() / 1000;
    const key = createHash('sha256').update(jti).digest('base64url');
    const held = this.#entries.get(key);
    if (held !== undefined) {
      if (held >= now) return false;
      this.#entries.delete(key);
    }
    if (this.#entries.size >= this.#maxEntries) {
      this.#sweep(now);
      if (this.#entries.size >= this.#maxEntries) return false;
    }
    this.#entries.set(key, expiresAt);
    this.#earliestExpiry = Math.min(this.#earliestExpiry, expiresAt);
    return true;
  }

  /** Drops every expired entry (only when at least one can have expired). */
  #sweep(now: number): void {
    if (now <= this.#earliestExpiry) return;
    let earliest = Number.POSITIVE_INFINITY;
    for (const [key, expiresAt] of this.#entries) {
      if (expiresAt < now) this.#entries.delete(key);
      else earliest = Math.min(earliest, expiresAt);
    }
    this.#earliestExpiry = earliest;
  }
}

export interface VerifyDpopProofOptions {
  /** the compact JWS from the DPoP request header */
  readonly proof: string;
  /** the access token the request presents (checked against `ath`) */
  readonly accessToken: string;
  /** the request's HTTP method, e.g. GET */
  readonly method: string;
  /** the URL the client addressed (query and fragment are ignored) */
  readonly url: string;
  /** the token's confirmation: cnf.jkt from introspection (RFC 7638 SHA-256 thumbprint) */
  readonly expectedJkt: string;
  readonly now: Date;
  readonly replay: ReplayCache;
  /** how old a proof may be (default 60 s) */
  readonly maxAgeSeconds?: number;
  /** how far in the future a proof's iat may be, for clock skew (default 10 s) */
  readonly futureSkewSeconds?: number;
}

export interface VerifiedDpopProof {
  readonly jkt: string;
  readonly jti: string;
  readonly iat: number;
  readonly alg: DpopAlg;
}

/** base64url(SHA-256(ASCII(token))): the `ath` a proof for this token must carry. */
export function accessTokenHash(accessToken: string): string {
  return createHash('sha256').update(accessToken, 'ascii').digest('base64url');
}

const UNRESERVED = /^[A-Za-z0-9\-._~]$/;

/**
 * The comparable form of an htu: scheme and host lower-cased, default port dropped, query and
 * fragment removed, dot segments resolved, percent-escapes upper-cased and unreserved
 * characters decoded (RFC 3986 §6.2.2–6.2.3). Undefined for anything but an absolute http(s)
 * URL without user information.
 */
export function normaliseHtu(value: string): string | undefined {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return undefined;
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') return undefined;
  if (url.username !== '' || url.password !== '') return undefined;
  const path = url.pathname.replace(/%[0-9A-Fa-f]{2}/g, (escape) => {
    const char = String.fromCharCode(Number.parseInt(escape.slice(1), 16));
    return UNRESERVED.test(char) ? char : escape.toUpperCase();
  });
  return `${url.protocol}//${url.host}${path}`;
}

function isDpopAlg(alg: unknown): alg is DpopAlg {
  return typeof alg === 'string' && (DPOP_ALGS as readonly string[]).includes(alg);
}

/** The embedded key, checked to be a public key of the type the alg needs. */
function publicJwkFor(alg: DpopAlg, jwk: unknown): JWK {
  if (typeof jwk !== 'object' || jwk === null || Array.isArray(jwk)) throw new DpopError('the jwk header must be a JSON Web Key');
  const key = jwk as Record<string, unknown>;
  for (const member of PRIVATE_JWK_MEMBERS) {
    if (member in key) throw new DpopError('the jwk header must not contain a private key');
  }
  const expected = alg === 'ES256' ? { kty: 'EC', crv: 'P-256' } : alg === 'EdDSA' ? { kty: 'OKP', crv: 'Ed25519' } : { kty: 'RSA', crv: undefined };
  if (key.kty !== expected.kty || key.crv !== expected.crv) throw new DpopError(`the jwk is not a ${alg} key`);
  if (key.alg !== undefined && key.alg !== alg) throw new DpopError('the jwk alg differs from the header alg');
  return key as JWK;
}

function requireNumber(payload: JWTPayload, name: string): number {
  const value = payload[name];
  if (typeof value !== 'number' || !Number.isFinite(value)) throw new DpopError(`the ${name} claim must be a number`);
  return value;
}

function requireString(payload: JWTPayload, name: string): string {
  const value = payload[name];
  if (typeof value !== 'string' || value === '') throw new DpopError(`the ${name} claim must be a non-empty string`);
  return value;
}

/**
 * Verifies a DPoP proof for a request to a protected resource; throws DpopError with the
 * first failed check. Checks, in order: compact JWS form, typ dpop+jwt, an allowed
 * asymmetric alg, a public jwk of the matching type, the signature with that jwk, htm, htu,
 * iat within [now − maxAge, now + futureSkew], ath, the jwk thumbprint = expectedJkt, and
 * finally jti not seen before (recorded until the proof could no longer pass the iat check).
 */
export async function verifyDpopProof(options: VerifyDpopProofOptions): Promise<VerifiedDpopProof> {
  const { proof, accessToken, method, url, expectedJkt, now, replay } = options;
  const maxAgeSeconds = options.maxAgeSeconds ?? 60;
  const futureSkewSeconds = options.futureSkewSeconds ?? 10;

  // A single compact JWS (several DPoP header fields would arrive comma-joined).
  if (!/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/.test(proof)) throw new DpopError('the proof must be one compact JWS');

  let header: ReturnType<typeof decodeProtectedHeader>;
  try {
    header = decodeProtectedHeader(proof);
  } catch {
    throw new DpopError('the proof header cannot be decoded');
  }
  if (header.typ !== 'dpop+jwt') throw new DpopError('typ must be dpop+jwt');
  if (!isDpopAlg(header.alg)) throw new DpopError(`alg must be one of ${DPOP_ALGS.join(', ')}`);
  const alg = header.alg;
  const jwk = publicJwkFor(alg, header.jwk);

  let payload: JWTPayload;
  try {
    const key = await importJWK(jwk, alg);
    // jose refuses any other alg, unknown crit members and a key unfit for the alg.
    ({ payload } = await jwtVerify(proof, key, { algorithms: [alg], typ: 'dpop+jwt', currentDate: now }));
  } catch {
    throw new DpopError('the signature does not verify with the embedded jwk');
  }

  if (requireString(payload, 'htm') !== method) throw new DpopError('htm does not match the request method');
  const htu = normaliseHtu(requireString(payload, 'htu'));
  const target = normaliseHtu(url);
  if (htu === undefined || target === undefined || htu !== target) throw new DpopError('htu does not match the request URL');

  const iat = requireNumber(payload, 'iat');
  const nowSeconds = now.getTime() / 1000;
  if (iat < nowSeconds - maxAgeSeconds) throw new DpopError('the proof is too old');
  if (iat > nowSeconds + futureSkewSeconds) throw new DpopError('the proof is issued in the future');

  if (payload.ath !== accessTokenHash(accessToken)) throw new DpopError('ath does not match the access token');

  const jkt = await calculateJwkThumbprint(jwk, 'sha256');
  if (jkt !== expectedJkt) throw new DpopError('the proof key is not the key the token is bound to');

  const jti = requireString(payload, 'jti');
  if (jti.length > MAX_JTI_LENGTH) throw new DpopError(`jti must be at most ${MAX_JTI_LENGTH} characters`);
  // Remembered while the proof could still pass the iat check above.
  if (!(await replay.remember(jti, Math.ceil(iat + maxAgeSeconds)))) throw new DpopError('the proof has been used before');

  return { jkt, jti, iat, alg };
}
