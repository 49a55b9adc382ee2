import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { randomBytes } from 'node:crypto';

import { exportJWK } from 'jose';

import { startTestApp, type TestApp } from '../support/app.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';
import {
  authorizeCode, countTokens, dpopKeyPair, dpopProof, epoch, redeemCode, registerCraftedClient, tokenRequest, userinfo,
  type CraftedClient, type HttpResult, type KeyPair, type ProofOptions, type UserinfoResult,
} from '../support/fapi-crafting.js';
import { createCustomer, REDIRECT_URI, type Customer } from '../support/tpp.js';

/**
 * FAPI 2.0 conformance, DPoP negatives (RFC 9449 §4.3 checks) at the token endpoint and at
 * the userinfo endpoint (/me): every malformed, misdirected, stale or replayed proof is
 * refused, and a DPoP-bound access token only works with a proof from its own key.
 */
let database: TestDatabase;
let app: TestApp;
let tpp: CraftedClient;
let alice: Customer;
let dpopKeys: KeyPair;

beforeAll(async () => {
  database = await createTestDatabase();
  app = await startTestApp(database);
  tpp = await registerCraftedClient(app, { grantTypes: ['authorization_code', 'refresh_token', 'client_credentials'] });
  alice = await createCustomer(app);
  dpopKeys = await dpopKeyPair();
});

afterAll(async () => {
  await app?.close();
  await database?.drop();
});

/** Where a proof is aimed: the request's method and URL (and the token, at /me). */
interface Target {
  readonly htm: string;
  readonly htu: string;
  readonly accessToken?: string;
  /** a URL on this server that is not the target */
  readonly elsewhere: string;
}

type ProofCase = [string, (target: Target) => Promise<string>];

const proof = (target: Target, options: Partial<ProofOptions> = {}) => dpopProof(dpopKeys, {
  htm: target.htm, htu: target.htu, ...(target.accessToken === undefined ? {} : { accessToken: target.accessToken }), ...options,
});

/** Proofs that are wrong in themselves: RFC 9449 §4.3 checks 1–9. */
const malformed: ProofCase[] = [
  ['alg none (unsigned)', (t) => proof(t, { alg: 'none' })],
  ['HS256 (symmetric)', (t) => {
    const secret = randomBytes(32);
    return proof(t, { alg: 'HS256', jwk: { kty: 'oct', k: secret.toString('base64url') }, signingKey: secret });
  }],
  ['a private key in the jwk header', async (t) => proof(t, { jwk: await exportJWK(dpopKeys.privateKey) })],
  ['typ JWT instead of dpop+jwt', (t) => proof(t, { typ: 'JWT' })],
  ['the wrong htm', (t) => proof(t, { htm: t.htm === 'POST' ? 'GET' : 'POST' })],
  ['the wrong htu', (t) => proof(t, { htu: t.elsewhere })],
  ['a signature by another key than the embedded jwk', async (t) => proof(t, { signingKey: (await dpopKeyPair()).privateKey })],
];

describe('DPoP proofs at the token endpoint', () => {
  const target = (): Target => ({ htm: 'POST', htu: `${app.url}/token`, elsewhere: `${app.url}/me` });

  async function clientCredentials(dpop: string): Promise<HttpResult> {
    return tokenRequest(app, tpp, { grant_type: 'client_credentials', scope: 'accounts' }, { dpop });
  }

  function expectRefused(response: HttpResult, error: string): void {
    expect({ status: response.status, error: response.body.error }).toEqual({ status: 400, error });
    expect(response.body.access_token).toBeUndefined();
  }

  test('control: a well-formed proof gets a DPoP-bound token', async () => {
    const response = await clientCredentials(await proof(target()));
    expect(response.status).toBe(200);
    expect(response.body.token_type).toBe('DPoP');
  });

  test.each(malformed)('%s: invalid_dpop_proof, no token', async (_name, make) => {
    const before = await countTokens(app);
    expectRefused(await clientCredentials(await make(target())), 'invalid_dpop_proof');
    expect(await countTokens(app)).toBe(before);
  });

  test('control: a proof dated 5 s ahead (clock skew, FAPI 2.0 §5.3.2.1) is accepted', async () => {
    expect((await clientCredentials(await proof(target(), { iat: epoch() + 5 }))).status).toBe(200);
  });

  test('iat 1 h in the past: use_dpop_nonce (a fresh DPoP-Nonce is offered), no token', async () => {
    const before = await countTokens(app);
    const response = await clientCredentials(await proof(target(), { iat: epoch() - 3600 }));
    expectRefused(response, 'use_dpop_nonce');
    expect(response.headers.get('dpop-nonce')).toEqual(expect.any(String));
    expect(await countTokens(app)).toBe(before);
  });

  test('iat 1 h in the future: invalid_dpop_proof, also when the proof carries the server\'s fresh nonce', async () => {
    const before = await countTokens(app);
    expectRefused(await clientCredentials(await proof(target(), { iat: epoch() + 3600 })), 'invalid_dpop_proof');

    // A client that retries with a fresh server nonce (RFC 9449 §8) is still refused:
    // FAPI 2.0 §5.3.2.1 rejects any JWT whose iat is more than 60 s in the future.
    const nonce = (await clientCredentials(await proof(target(), { iat: epoch() - 3600 }))).headers.get('dpop-nonce');
    expect(nonce).toEqual(expect.any(String));
    expectRefused(await clientCredentials(await proof(target(), { iat: epoch() + 3600, nonce: nonce ?? '' })), 'invalid_dpop_proof');
    expect(await countTokens(app)).toBe(before);
  });

  test('code redemption: every malformed proof is refused without using up the code, then a valid proof redeems it', async () => {
    const authorized = await authorizeCode(app, tpp, alice);
    const redeem = (dpop: string) => tokenRequest(app, tpp, {
      grant_type: 'authorization_code', code: authorized.code, code_verifier: authorized.codeVerifier, redirect_uri: REDIRECT_URI,
    }, { dpop });
    const before = await countTokens(app);
    for (const [name, make] of malformed) {
      const response = await redeem(await make(target()));
      expect({ name, status: response.status, error: response.body.error }).toEqual({ name, status: 400, error: 'invalid_dpop_proof' });
    }
    expect(await countTokens(app)).toBe(before);
    const redeemed = await redeem(await proof(target()));
    expect(redeemed.status).toBe(200);
    expect(redeemed.body.token_type).toBe('DPoP');
  });

  test('a replayed proof (same jti) is refused, no second token', async () => {
    const replayed = await proof(target());
    expect((await clientCredentials(replayed)).status).toBe(200);
    const before = await countTokens(app);
    // oidc-provider reports a replay at the token endpoint as invalid_grant ("DPoP proof JWT Replay detected").
    expectRefused(await clientCredentials(replayed), 'invalid_grant');
    expect(await countTokens(app)).toBe(before);
  });
});

describe('DPoP proofs at the userinfo endpoint', () => {
  let accessToken: string;
  const target = (): Target => ({ htm: 'GET', htu: `${app.url}/me`, accessToken, elsewhere: `${app.url}/token` });

  beforeAll(async () => {
    const response = await redeemCode(app, tpp, await authorizeCode(app, tpp, alice), dpopKeys);
    expect(response.status).toBe(200);
    accessToken = String(response.body.access_token);
  });

  function expectRefused(result: UserinfoResult, error: string): void {
    expect({ status: result.status, error: result.error }).toEqual({ status: 401, error });
    expect(result.body.sub).toBeUndefined();
  }

  test('control: the token with a proof from its own key gets the claims', async () => {
    const result = await userinfo(app, accessToken, { dpop: await proof(target()) });
    expect(result.status).toBe(200);
    expect(result.body.sub).toBe(alice.id);
  });

  test.each(malformed)('%s: invalid_dpop_proof', async (_name, make) => {
    expectRefused(await userinfo(app, accessToken, { dpop: await make(target()) }), 'invalid_dpop_proof');
  });

  test('an ath for another access token: invalid_dpop_proof', async () => {
    expectRefused(await userinfo(app, accessToken, { dpop: await proof(target(), { accessToken: `${accessToken}x` }) }), 'invalid_dpop_proof');
  });

  test('a proof without ath: invalid_dpop_proof', async () => {
    expectRefused(await userinfo(app, accessToken, { dpop: await proof({ ...target(), accessToken: undefined }) }), 'invalid_dpop_proof');
  });

  test('iat 1 h in the past: use_dpop_nonce', async () => {
    const result = await userinfo(app, accessToken, { dpop: await proof(target(), { iat: epoch() - 3600 }) });
    expectRefused(result, 'use_dpop_nonce');
    expect(result.dpopNonce).toEqual(expect.any(String));
  });

  test('iat 1 h in the future: invalid_dpop_proof, also when the proof carries the server\'s fresh nonce', async () => {
    expectRefused(await userinfo(app, accessToken, { dpop: await proof(target(), { iat: epoch() + 3600 }) }), 'invalid_dpop_proof');
    const { dpopNonce } = await userinfo(app, accessToken, { dpop: await proof(target(), { iat: epoch() - 3600 }) });
    expect(dpopNonce).toEqual(expect.any(String));
    expectRefused(await userinfo(app, accessToken, { dpop: await proof(target(), { iat: epoch() + 3600, nonce: dpopNonce ?? '' }) }), 'invalid_dpop_proof');
  });

  test('a replayed proof (same jti) is refused', async () => {
    const replayed = await proof(target());
    expect((await userinfo(app, accessToken, { dpop: replayed })).status).toBe(200);
    // oidc-provider reports a replay at a resource as invalid_token ("DPoP proof JWT Replay detected").
    expectRefused(await userinfo(app, accessToken, { dpop: replayed }), 'invalid_token');
  });

  test('a valid proof from a different key than the token is bound to: invalid_token', async () => {
    const otherKeys = await dpopKeyPair();
    const dpop = await dpopProof(otherKeys, { htm: 'GET', htu: `${app.url}/me`, accessToken });
    expectRefused(await userinfo(app, accessToken, { dpop }), 'invalid_token');
  });

  test('downgrade: the DPoP-bound token as a Bearer token is refused (invalid_token)', async () => {
    expectRefused(await userinfo(app, accessToken, { scheme: 'Bearer' }), 'invalid_token');
  });

  test('mixed schemes are refused with invalid_request: Bearer with a DPoP proof, DPoP without one', async () => {
    for (const result of [
      await userinfo(app, accessToken, { scheme: 'Bearer', dpop: await proof(target()) }),
      await userinfo(app, accessToken, { scheme: 'DPoP' }),
    ]) {
      expect({ status: result.status, error: result.body.error }).toEqual({ status: 400, error: 'invalid_request' });
      expect(result.body.sub).toBeUndefined();
    }
  });

  test('control: after all of that the token still works with a proper proof', async () => {
    expect((await userinfo(app, accessToken, { dpop: await proof(target()) })).status).toBe(200);
  });
});
