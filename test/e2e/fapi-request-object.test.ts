import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { randomUUID } from 'node:crypto';

import { createRemoteJWKSet, decodeProtectedHeader, jwtVerify, SignJWT, UnsecuredJWT } from 'jose';

import { startTestApp, type TestApp } from '../support/app.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';
import {
  authorizationParams, authorizationUrl, countModels, dpopKeyPair, epoch, parRequest, postForm, pushValid, redeemCode, registerCraftedClient,
  registerResourceServer, thumbprint, type CraftedClient, type KeyPair, type ResourceServerCredentials, type SigningKey,
} from '../support/fapi-crafting.js';
import { createCustomer, signInAndConsent, type Customer } from '../support/tpp.js';

/**
 * FAPI 2.0 Message Signing: signed request objects pushed to PAR (JAR, RFC 9101), signed
 * authorization responses (JARM, response_mode=jwt) and signed introspection responses
 * (RFC 9701), all verified against the server's published JWKS.
 */
let database: TestDatabase;
let app: TestApp;
let tpp: CraftedClient;
let alice: Customer;
let rs: ResourceServerCredentials;
let dpopKeys: KeyPair;
let jwks: ReturnType<typeof createRemoteJWKSet>;

beforeAll(async () => {
  database = await createTestDatabase();
  app = await startTestApp(database);
  tpp = await registerCraftedClient(app, { rsa: true });
  alice = await createCustomer(app);
  rs = await registerResourceServer(app);
  dpopKeys = await dpopKeyPair();
  jwks = createRemoteJWKSet(new URL(`${app.url}/jwks`));
});

afterAll(async () => {
  await app?.close();
  await database?.drop();
});

interface RequestObjectOptions {
  readonly claims?: Record<string, unknown>;
  readonly key?: SigningKey;
  readonly unsigned?: boolean;
}

/** A request object as FAPI 2.0 Message Signing wants it, with every claim overridable. */
async function requestObject(options: RequestObjectOptions = {}): Promise<{ jwt: string; codeVerifier: string; state: string }> {
  const { params, codeVerifier, state } = authorizationParams();
  const now = epoch();
  const claims: Record<string, unknown> = {
    ...params,
    client_id: tpp.clientId,
    iss: tpp.clientId,
    aud: app.url,
    iat: now,
    nbf: now - 5,
    exp: now + 300,
    jti: randomUUID(),
    ...options.claims,
  };
  const key = options.key ?? tpp.key;
  const jwt = options.unsigned === true
    ? new UnsecuredJWT(claims).encode()
    : await new SignJWT(claims).setProtectedHeader({ alg: key.alg, kid: key.kid, typ: 'oauth-authz-req+jwt' }).sign(key.privateKey);
  return { jwt, codeVerifier, state };
}

describe('request objects at PAR (JAR)', () => {
  test('a signed request object: PAR, sign-in and consent, redemption', async () => {
    const { jwt, codeVerifier, state } = await requestObject();
    const pushed = await parRequest(app, tpp, { request: jwt });
    expect(pushed.status).toBe(201);
    expect(pushed.body.expires_in).toEqual(expect.any(Number));
    const requestUri = String(pushed.body.request_uri);

    const callback = await signInAndConsent({ url: authorizationUrl(app, tpp.clientId, requestUri), codeVerifier, state }, alice);
    expect(callback.searchParams.get('state')).toBe(state);
    expect(callback.searchParams.get('iss')).toBe(app.url);
    const code = callback.searchParams.get('code');
    expect(code).toEqual(expect.any(String));

    const tokens = await redeemCode(app, tpp, { code: code ?? '', codeVerifier }, dpopKeys);
    expect(tokens.status).toBe(200);
    expect(tokens.body.token_type).toBe('DPoP');
    expect(String(tokens.body.scope).split(' ').sort()).toEqual(['accounts', 'offline_access', 'openid']);
  });

  const invalid: [string, () => RequestObjectOptions][] = [
    ['unsigned (alg none)', () => ({ unsigned: true })],
    ['expired', () => ({ claims: { iat: epoch() - 600, nbf: epoch() - 600, exp: epoch() - 60 } })],
    ['addressed to another audience', () => ({ claims: { aud: 'https://other-bank.example' } })],
    ['RS256-signed (with a registered RSA key)', () => ({ key: tpp.rsaKey })],
    ['valid for more than 60 minutes (exp − nbf)', () => ({ claims: { nbf: epoch() - 5, exp: epoch() + 3600 } })],
  ];

  test.each(invalid)('%s: invalid_request_object, nothing stored', async (_name, options) => {
    const before = await countModels(app, ['PushedAuthorizationRequest']);
    const { jwt } = await requestObject(options());
    const response = await parRequest(app, tpp, { request: jwt });
    expect({ status: response.status, error: response.body.error }).toEqual({ status: 400, error: 'invalid_request_object' });
    expect(response.body.request_uri).toBeUndefined();
    expect(await countModels(app, ['PushedAuthorizationRequest'])).toEqual(before);
  });
});

describe('JARM (response_mode=jwt)', () => {
  test('the callback carries only a PS256 JWT from the server\'s JWKS, holding the code and state', async () => {
    const pushed = await pushValid(app, tpp, { response_mode: 'jwt' });
    const callback = await signInAndConsent(pushed, alice);
    expect(callback.searchParams.get('code')).toBeNull();
    expect(callback.searchParams.get('state')).toBeNull();
    const response = callback.searchParams.get('response') ?? '';
    expect(decodeProtectedHeader(response).alg).toBe('PS256');

    const { payload } = await jwtVerify(response, jwks, { issuer: app.url, audience: tpp.clientId, algorithms: ['PS256'] });
    expect(payload.state).toBe(pushed.state);
    expect(payload.code).toEqual(expect.any(String));
    expect(payload.exp).toEqual(expect.any(Number));

    const tokens = await redeemCode(app, tpp, { code: String(payload.code), codeVerifier: pushed.codeVerifier }, dpopKeys);
    expect(tokens.status).toBe(200);
  });
});

describe('signed introspection (RFC 9701)', () => {
  test('Accept: application/token-introspection+jwt gets a PS256 JWT whose token_introspection says active for a live token', async () => {
    const pushed = await pushValid(app, tpp);
    const callback = await signInAndConsent(pushed, alice);
    const tokens = await redeemCode(app, tpp, { code: callback.searchParams.get('code') ?? '', codeVerifier: pushed.codeVerifier }, dpopKeys);
    expect(tokens.status).toBe(200);
    const accessToken = String(tokens.body.access_token);

    const introspect = (token: string) => postForm(`${app.url}/token/introspection`, { token }, {
      authorization: rs.authorization,
      accept: 'application/token-introspection+jwt',
    });

    const live = await introspect(accessToken);
    expect(live.status).toBe(200);
    expect(live.headers.get('content-type')).toMatch(/^application\/token-introspection\+jwt/);
    const { payload, protectedHeader } = await jwtVerify(live.text, jwks, {
      issuer: app.url, audience: rs.clientId, algorithms: ['PS256'], typ: 'token-introspection+jwt',
    });
    expect(protectedHeader.alg).toBe('PS256');
    expect(payload.iat).toEqual(expect.any(Number));
    expect(payload.token_introspection).toMatchObject({
      active: true,
      client_id: tpp.clientId,
      sub: alice.id,
      token_type: 'DPoP',
      cnf: { jkt: await thumbprint(dpopKeys) },
    });

    const dead = await introspect(`${accessToken}-not-a-token`);
    const verified = await jwtVerify(dead.text, jwks, { issuer: app.url, audience: rs.clientId, algorithms: ['PS256'] });
    expect(verified.payload.token_introspection).toEqual({ active: false });
  });
});
