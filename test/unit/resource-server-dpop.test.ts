import { describe, expect, test } from '@jest/globals';
import { createHash, randomBytes, randomUUID } from 'node:crypto';

import { calculateJwkThumbprint, exportJWK, generateKeyPair, SignJWT, UnsecuredJWT, type CryptoKey, type JWK } from 'jose';

import {
  DpopError, InMemoryReplayCache, normaliseHtu, verifyDpopProof, type ReplayCache, type VerifyDpopProofOptions,
} from '../../src/resource-server/index.js';

/**
 * RFC 9449 §4.3 / §7.1 checks of the resource-server kit's DPoP verification, with proofs
 * made by jose and a fixed clock. Every refusal is a DpopError whose reason names the check.
 */
const NOW = new Date('2030-01-01T12:00:00Z');
const NOW_S = NOW.getTime() / 1000;
const URL_ = 'https://api.bank.example/accounts';
const TOKEN = 'access-token-' + randomBytes(16).toString('base64url');

interface Holder {
  readonly publicKey: CryptoKey;
  readonly privateKey: CryptoKey;
  readonly jwk: JWK;
  readonly jkt: string;
  readonly alg: string;
}

async function holder(alg = 'ES256'): Promise<Holder> {
  const { publicKey, privateKey } = await generateKeyPair(alg, { extractable: true });
  const { kty, crv, x, y, n, e } = await exportJWK(publicKey);
  const jwk = Object.fromEntries(Object.entries({ kty, crv, x, y, n, e }).filter(([, value]) => value !== undefined)) as JWK;
  return { publicKey, privateKey, jwk, jkt: await calculateJwkThumbprint(jwk), alg };
}

const ath = (token: string): string => createHash('sha256').update(token).digest('base64url');

interface ProofOptions {
  readonly claims?: Record<string, unknown>;
  readonly header?: Record<string, unknown>;
  readonly signingKey?: CryptoKey | Uint8Array;
}

/** A proof for GET URL_ with TOKEN at NOW; `claims` values of undefined remove a claim. */
async function proofFor(key: Holder, options: ProofOptions = {}): Promise<string> {
  const claims: Record<string, unknown> = {};
  const merged = { htm: 'GET', htu: URL_, iat: NOW_S, jti: randomUUID(), ath: ath(TOKEN), ...options.claims };
  for (const [name, value] of Object.entries(merged)) if (value !== undefined) claims[name] = value;
  return new SignJWT(claims)
    .setProtectedHeader({ alg: key.alg, typ: 'dpop+jwt', jwk: key.jwk, ...options.header } as { alg: string })
    .sign(options.signingKey ?? key.privateKey);
}

function verify(key: Holder, proof: string, overrides: Partial<VerifyDpopProofOptions> = {}) {
  return verifyDpopProof({
    proof, accessToken: TOKEN, method: 'GET', url: URL_, expectedJkt: key.jkt, now: NOW, replay: new InMemoryReplayCache({ now: () => NOW }), ...overrides,
  });
}

async function refusal(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof DpopError) return error.reason;
    throw error;
  }
  throw new Error('the proof was accepted');
}

describe('verifyDpopProof', () => {
  test.each(['ES256', 'PS256', 'EdDSA'])('a valid %s proof is accepted and names its key', async (alg) => {
    const key = await holder(alg);
    const verified = await verify(key, await proofFor(key));
    expect(verified).toMatchObject({ jkt: key.jkt, iat: NOW_S, alg });
  });

  test('alg none is refused', async () => {
    const key = await holder();
    const unsigned = new UnsecuredJWT({ htm: 'GET', htu: URL_, iat: NOW_S, jti: randomUUID(), ath: ath(TOKEN) }).encode();
    const header = Buffer.from(JSON.stringify({ alg: 'none', typ: 'dpop+jwt', jwk: key.jwk })).toString('base64url');
    const proof = unsigned.replace(/^[^.]+/, header);
    expect(await refusal(verify(key, proof))).toBe('the proof must be one compact JWS'); // empty signature
    expect(await refusal(verify(key, `${proof}c2ln`))).toMatch(/^alg must be one of/);
  });

  test('HS256 with a symmetric jwk is refused', async () => {
    const key = await holder();
    const secret = randomBytes(32);
    const proof = await proofFor(key, { header: { alg: 'HS256', jwk: { kty: 'oct', k: secret.toString('base64url') } }, signingKey: secret });
    expect(await refusal(verify(key, proof))).toMatch(/^alg must be one of/);
  });

  test('a private key in the jwk header is refused', async () => {
    const key = await holder();
    const proof = await proofFor(key, { header: { jwk: await exportJWK(key.privateKey) } });
    expect(await refusal(verify(key, proof))).toBe('the jwk header must not contain a private key');
  });

  test('a jwk of the wrong type for the alg, or with another alg, is refused', async () => {
    const key = await holder();
    const rsa = await holder('PS256');
    expect(await refusal(verify(key, await proofFor(key, { header: { jwk: rsa.jwk } })))).toBe('the jwk is not a ES256 key');
    expect(await refusal(verify(key, await proofFor(key, { header: { jwk: { ...key.jwk, alg: 'ES384' } } })))).toBe('the jwk alg differs from the header alg');
  });

  test('a signature by another key than the embedded jwk is refused', async () => {
    const key = await holder();
    const other = await holder();
    expect(await refusal(verify(key, await proofFor(key, { signingKey: other.privateKey })))).toBe('the signature does not verify with the embedded jwk');
  });

  test('typ other than dpop+jwt is refused', async () => {
    const key = await holder();
    expect(await refusal(verify(key, await proofFor(key, { header: { typ: 'JWT' } })))).toBe('typ must be dpop+jwt');
    expect(await refusal(verify(key, await proofFor(key, { header: { typ: undefined } })))).toBe('typ must be dpop+jwt');
  });

  test('the wrong htm is refused', async () => {
    const key = await holder();
    expect(await refusal(verify(key, await proofFor(key, { claims: { htm: 'POST' } })))).toBe('htm does not match the request method');
    expect(await refusal(verify(key, await proofFor(key, { claims: { htm: 'get' } })))).toBe('htm does not match the request method');
  });

  test('the wrong htu is refused; query, fragment, case of scheme and host and default ports are not significant', async () => {
    const key = await holder();
    for (const htu of ['https://api.bank.example/payments', 'https://other.example/accounts', 'http://api.bank.example/accounts', 'https://api.bank.example:8443/accounts', 'https://api.bank.example/accounts/', 'not a url']) {
      expect(await refusal(verify(key, await proofFor(key, { claims: { htu } })))).toBe('htu does not match the request URL');
    }
    for (const htu of [`${URL_}?page=2`, `${URL_}#top`, 'HTTPS://API.Bank.Example:443/accounts', 'https://api.bank.example/%61ccounts']) {
      await expect(verify(key, await proofFor(key, { claims: { htu } }))).resolves.toMatchObject({ jkt: key.jkt });
    }
    // the request URL's own query is ignored too
    await expect(verify(key, await proofFor(key), { url: `${URL_}?from=2029-01-01` })).resolves.toMatchObject({ jkt: key.jkt });
    expect(normaliseHtu('https://a.example/x%2fy')).toBe('https://a.example/x%2Fy');
    expect(normaliseHtu('ftp://a.example/x')).toBeUndefined();
    expect(normaliseHtu('https://user:pw@a.example/x')).toBeUndefined();
  });

  test('iat an hour old or an hour ahead is refused; the window is [now − 60 s, now + 10 s]', async () => {
    const key = await holder();
    expect(await refusal(verify(key, await proofFor(key, { claims: { iat: NOW_S - 3600 } })))).toBe('the proof is too old');
    expect(await refusal(verify(key, await proofFor(key, { claims: { iat: NOW_S + 3600 } })))).toBe('the proof is issued in the future');
    expect(await refusal(verify(key, await proofFor(key, { claims: { iat: NOW_S - 61 } })))).toBe('the proof is too old');
    expect(await refusal(verify(key, await proofFor(key, { claims: { iat: NOW_S + 11 } })))).toBe('the proof is issued in the future');
    expect(await refusal(verify(key, await proofFor(key, { claims: { iat: undefined } })))).toBe('the iat claim must be a number');
    await expect(verify(key, await proofFor(key, { claims: { iat: NOW_S - 60 } }))).resolves.toBeDefined();
    await expect(verify(key, await proofFor(key, { claims: { iat: NOW_S + 10 } }))).resolves.toBeDefined();
  });

  test('a replayed proof is refused', async () => {
    const key = await holder();
    const replay = new InMemoryReplayCache({ now: () => NOW });
    const proof = await proofFor(key);
    await verify(key, proof, { replay });
    expect(await refusal(verify(key, proof, { replay }))).toBe('the proof has been used before');
    // a new proof reusing the jti is a replay as well
    const jti = randomUUID();
    await verify(key, await proofFor(key, { claims: { jti } }), { replay });
    expect(await refusal(verify(key, await proofFor(key, { claims: { jti } }), { replay }))).toBe('the proof has been used before');
  });

  test('the wrong ath, or none, is refused', async () => {
    const key = await holder();
    expect(await refusal(verify(key, await proofFor(key, { claims: { ath: ath('another token') } })))).toBe('ath does not match the access token');
    expect(await refusal(verify(key, await proofFor(key, { claims: { ath: undefined } })))).toBe('ath does not match the access token');
  });

  test('a proof by another key than the one the token is bound to is refused', async () => {
    const key = await holder();
    const other = await holder();
    expect(await refusal(verify(key, await proofFor(other)))).toBe('the proof key is not the key the token is bound to');
  });

  test('a missing or empty jti is refused', async () => {
    const key = await holder();
    expect(await refusal(verify(key, await proofFor(key, { claims: { jti: undefined } })))).toBe('the jti claim must be a non-empty string');
    expect(await refusal(verify(key, await proofFor(key, { claims: { jti: '' } })))).toBe('the jti claim must be a non-empty string');
    expect(await refusal(verify(key, await proofFor(key, { claims: { jti: 7 } })))).toBe('the jti claim must be a non-empty string');
  });

  test('two proofs in one header (comma-joined) are refused', async () => {
    const key = await holder();
    expect(await refusal(verify(key, `${await proofFor(key)}, ${await proofFor(key)}`))).toBe('the proof must be one compact JWS');
  });

  test('a refused proof does not use up its jti', async () => {
    const key = await holder();
    const replay = new InMemoryReplayCache({ now: () => NOW });
    const jti = randomUUID();
    await refusal(verify(key, await proofFor(key, { claims: { jti, ath: ath('another token') } }), { replay }));
    await expect(verify(key, await proofFor(key, { claims: { jti } }), { replay })).resolves.toBeDefined();
  });

  test('a jti may be used again once its proof could no longer be accepted', async () => {
    let now = NOW;
    const replay = new InMemoryReplayCache({ now: () => now });
    const key = await holder();
    const jti = randomUUID();
    await verify(key, await proofFor(key, { claims: { jti } }), { replay, now });
    now = new Date(NOW.getTime() + 60_000); // still within the first proof's window
    const again = await proofFor(key, { claims: { jti, iat: now.getTime() / 1000 } });
    expect(await refusal(verify(key, again, { replay, now }))).toBe('the proof has been used before');
    now = new Date(NOW.getTime() + 61_000); // the first proof is now too old to be accepted anywhere
    await expect(verify(key, await proofFor(key, { claims: { jti, iat: now.getTime() / 1000 } }), { replay, now })).resolves.toBeDefined();
  });

  test('the replay store is awaited (a shared, asynchronous store)', async () => {
    const seen = new Set<string>();
    const replay: ReplayCache = { remember: async (jti) => (seen.has(jti) ? false : (seen.add(jti), true)) };
    const key = await holder();
    const proof = await proofFor(key);
    await verify(key, proof, { replay });
    expect(await refusal(verify(key, proof, { replay }))).toBe('the proof has been used before');
  });
});

describe('InMemoryReplayCache', () => {
  test('remembers a jti until its expiry, inclusive', () => {
    let now = NOW;
    const cache = new InMemoryReplayCache({ now: () => now });
    expect(cache.remember('a', NOW_S + 60)).toBe(true);
    expect(cache.remember('a', NOW_S + 60)).toBe(false);
    now = new Date((NOW_S + 60) * 1000);
    expect(cache.remember('a', NOW_S + 120)).toBe(false);
    now = new Date((NOW_S + 61) * 1000);
    expect(cache.remember('a', NOW_S + 121)).toBe(true);
    expect(cache.remember('a', NOW_S + 121)).toBe(false);
  });

  test('is bounded: full of live entries it refuses (fails closed), and takes new ones as old ones expire', () => {
    let now = NOW;
    const cache = new InMemoryReplayCache({ maxEntries: 3, now: () => now });
    expect(cache.remember('a', NOW_S + 10)).toBe(true);
    expect(cache.remember('b', NOW_S + 60)).toBe(true);
    expect(cache.remember('c', NOW_S + 60)).toBe(true);
    expect(cache.remember('d', NOW_S + 60)).toBe(false);
    expect(cache.size).toBe(3);
    // no live entry was evicted to make room
    expect(cache.remember('a', NOW_S + 10)).toBe(false);
    now = new Date((NOW_S + 11) * 1000);
    expect(cache.remember('d', NOW_S + 71)).toBe(true);
    expect(cache.size).toBe(3);
    expect(cache.remember('b', NOW_S + 71)).toBe(false);
    expect(cache.remember('e', NOW_S + 71)).toBe(false);
    now = new Date((NOW_S + 61) * 1000);
    expect(cache.remember('e', NOW_S + 121)).toBe(true);
    expect(cache.size).toBe(2);
  });

  test('rejects a nonsensical bound', () => {
    expect(() => new InMemoryReplayCache({ maxEntries: 0 })).toThrow(RangeError);
  });
});
