import { afterAll, afterEach, beforeAll, describe, expect, test } from '@jest/globals';
import { randomUUID } from 'node:crypto';

import { startTestApp, type TestApp } from '../support/app.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';
import {
  authorizeCode, clientAssertion, countTokens, dpopKeyPair, dpopProof, epoch, introspect, redeemCode, registerCraftedClient,
  registerResourceServer, thumbprint, tokenRequest, TestClock, type CraftedClient, type HttpResult, type JwtOptions, type KeyPair,
  type ResourceServerCredentials,
} from '../support/fapi-crafting.js';
import { createCustomer, REDIRECT_URI, type Customer } from '../support/tpp.js';

/**
 * FAPI 2.0 conformance, token endpoint negatives: codes are single-use, short-lived and bound
 * to their client; private_key_jwt assertions follow FAPI 2.0 §5.3.2.1 to the letter; every
 * token is DPoP-bound; refresh tokens stay with their client.
 */
let database: TestDatabase;
let app: TestApp;
let tpp: CraftedClient;
let other: CraftedClient;
let alice: Customer;
let rs: ResourceServerCredentials;
let dpopKeys: KeyPair;
const clock = new TestClock();

beforeAll(async () => {
  database = await createTestDatabase();
  app = await startTestApp(database, {}, clock.now);
  tpp = await registerCraftedClient(app, { grantTypes: ['authorization_code', 'refresh_token', 'client_credentials'], rsa: true });
  other = await registerCraftedClient(app, { name: 'Other TPP' });
  alice = await createCustomer(app);
  rs = await registerResourceServer(app);
  dpopKeys = await dpopKeyPair();
});

afterEach(() => clock.reset());

afterAll(async () => {
  await app?.close();
  await database?.drop();
});

const tokenUrl = () => `${app.url}/token`;

function expectRefused(response: HttpResult, status: number, error: string): void {
  expect({ status: response.status, error: response.body.error }).toEqual({ status, error });
  expect(response.body.access_token).toBeUndefined();
  expect(response.body.refresh_token).toBeUndefined();
}

async function issuedTokens(response: HttpResult): Promise<{ accessToken: string; refreshToken: string }> {
  if (response.status !== 200) throw new Error(`token request failed: ${response.status} ${response.text}`);
  expect(response.body.token_type).toBe('DPoP');
  return { accessToken: String(response.body.access_token), refreshToken: String(response.body.refresh_token) };
}

describe('authorization codes', () => {
  test('a code is single-use: the second redemption fails with invalid_grant and the first tokens become inactive', async () => {
    const authorized = await authorizeCode(app, tpp, alice);
    const first = await issuedTokens(await redeemCode(app, tpp, authorized, dpopKeys));
    expect(await introspect(app, rs, first.accessToken)).toMatchObject({ active: true });

    const second = await redeemCode(app, tpp, authorized, dpopKeys);
    expectRefused(second, 400, 'invalid_grant');
    expect(await introspect(app, rs, first.accessToken)).toEqual({ active: false });
    expect(await introspect(app, rs, first.refreshToken)).toEqual({ active: false });
  });

  test('a code older than 60 s is refused with invalid_grant, no tokens', async () => {
    const authorized = await authorizeCode(app, tpp, alice);
    const before = await countTokens(app);
    clock.advance(61);
    expectRefused(await redeemCode(app, tpp, authorized, dpopKeys), 400, 'invalid_grant');
    expect(await countTokens(app)).toBe(before);
  });

  test('a code redeemed by another client is refused with invalid_grant, no tokens', async () => {
    const authorized = await authorizeCode(app, tpp, alice);
    const before = await countTokens(app);
    expectRefused(await redeemCode(app, other, authorized, dpopKeys), 400, 'invalid_grant');
    expect(await countTokens(app)).toBe(before);
  });

  test('a DPoP client redeeming without a DPoP proof is refused, no tokens', async () => {
    const authorized = await authorizeCode(app, tpp, alice);
    const before = await countTokens(app);
    const response = await tokenRequest(app, tpp, {
      grant_type: 'authorization_code', code: authorized.code, code_verifier: authorized.codeVerifier, redirect_uri: REDIRECT_URI,
    });
    expectRefused(response, 400, 'invalid_grant');
    expect(await countTokens(app)).toBe(before);
  });
});

describe('private_key_jwt client assertions (aud = the issuer string, FAPI 2.0 time rules)', () => {
  async function clientCredentials(assertion: string, omitClientId = false): Promise<HttpResult> {
    return tokenRequest(app, tpp, { grant_type: 'client_credentials', scope: 'accounts' }, {
      assertion,
      dpop: await dpopProof(dpopKeys, { htu: tokenUrl() }),
      omitClientId,
    });
  }

  test('control: a valid assertion gets a DPoP-bound token', async () => {
    const response = await clientCredentials(await clientAssertion(app, tpp));
    expect(response.status).toBe(200);
    expect(response.body.token_type).toBe('DPoP');
  });

  const cases: [string, () => JwtOptions][] = [
    ['aud is the token endpoint URL', () => ({ claims: { aud: `${app.url}/token` } })],
    ['aud is an array containing the issuer', () => ({ claims: { aud: [app.url] } })],
    ['the assertion is RS256-signed (with a registered RSA key)', () => ({ key: tpp.rsaKey })],
    ['the assertion has expired', () => ({ claims: { iat: epoch() - 120, exp: epoch() - 60 } })],
    ['nbf is 120 s in the future', () => ({ claims: { nbf: epoch() + 120, exp: epoch() + 180 } })],
    ['iat is 120 s in the future', () => ({ claims: { iat: epoch() + 120, exp: epoch() + 180 } })],
    ['sub is not the client_id', () => ({ claims: { sub: other.clientId } })],
  ];

  test.each(cases)('%s: invalid_client, no token', async (_name, options) => {
    const before = await countTokens(app);
    expectRefused(await clientCredentials(await clientAssertion(app, tpp, options())), 401, 'invalid_client');
    expect(await countTokens(app)).toBe(before);
  });

  test('sub is not the client_id and no client_id parameter: invalid_client, no token', async () => {
    const before = await countTokens(app);
    expectRefused(await clientCredentials(await clientAssertion(app, tpp, { claims: { sub: other.clientId } }), true), 401, 'invalid_client');
    expectRefused(await clientCredentials(await clientAssertion(app, tpp, { claims: { sub: 'tpp-unknown' } }), true), 401, 'invalid_client');
    expect(await countTokens(app)).toBe(before);
  });

  test('a replayed assertion (same jti) is refused with invalid_client, no second token', async () => {
    const jti = randomUUID();
    const assertion = await clientAssertion(app, tpp, { claims: { jti } });
    expect((await clientCredentials(assertion)).status).toBe(200);
    const before = await countTokens(app);
    expectRefused(await clientCredentials(assertion), 401, 'invalid_client');
    // a new assertion that only reuses the jti is a replay too
    expectRefused(await clientCredentials(await clientAssertion(app, tpp, { claims: { jti } })), 401, 'invalid_client');
    expect(await countTokens(app)).toBe(before);
  });
});

describe('refresh tokens', () => {
  test('another client presenting the refresh token: invalid_grant, no tokens', async () => {
    const tokens = await issuedTokens(await redeemCode(app, tpp, await authorizeCode(app, tpp, alice), dpopKeys));
    const before = await countTokens(app);
    const response = await tokenRequest(app, other, { grant_type: 'refresh_token', refresh_token: tokens.refreshToken }, {
      dpop: await dpopProof(dpopKeys, { htu: tokenUrl() }),
    });
    expectRefused(response, 400, 'invalid_grant');
    expect(await countTokens(app)).toBe(before);
  });

  test('refreshing without a DPoP proof is refused, no tokens', async () => {
    const tokens = await issuedTokens(await redeemCode(app, tpp, await authorizeCode(app, tpp, alice), dpopKeys));
    const before = await countTokens(app);
    const response = await tokenRequest(app, tpp, { grant_type: 'refresh_token', refresh_token: tokens.refreshToken });
    expectRefused(response, 400, 'invalid_grant');
    expect(await countTokens(app)).toBe(before);
  });

  test('refreshing with a proof from a new key binds the new access token to the new key only', async () => {
    const tokens = await issuedTokens(await redeemCode(app, tpp, await authorizeCode(app, tpp, alice), dpopKeys));
    const newKeys = await dpopKeyPair();
    const response = await tokenRequest(app, tpp, { grant_type: 'refresh_token', refresh_token: tokens.refreshToken }, {
      dpop: await dpopProof(newKeys, { htu: tokenUrl() }),
    });
    expect(response.status).toBe(200);
    expect(response.body.token_type).toBe('DPoP');
    // no rotation: the same refresh token, or none
    expect(response.body.refresh_token === undefined || response.body.refresh_token === tokens.refreshToken).toBe(true);

    const introspected = await introspect(app, rs, String(response.body.access_token));
    expect(introspected).toMatchObject({ active: true, client_id: tpp.clientId, sub: alice.id, token_type: 'DPoP' });
    expect(introspected.cnf).toEqual({ jkt: await thumbprint(newKeys) });
    expect((introspected.cnf as { jkt: string }).jkt).not.toBe(await thumbprint(dpopKeys));
  });
});
