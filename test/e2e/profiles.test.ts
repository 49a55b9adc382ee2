import { afterAll, beforeAll, expect, test } from '@jest/globals';
import { exportJWK, generateKeyPair } from 'jose';
import * as client from 'openid-client';

import { startTestApp, type TestApp } from '../support/app.js';
import { FormBrowser } from '../support/browser.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';
import { createCustomer, REDIRECT_URI, registerTpp, resourceServer, signInAndConsent, type Customer } from '../support/tpp.js';

/** The per-client profile: `fapi2` for every TPP, `oidc` for first-party clients the bank creates. */
let database: TestDatabase;
let app: TestApp;
let alice: Customer;

beforeAll(async () => {
  database = await createTestDatabase();
  app = await startTestApp(database);
  alice = await createCustomer(app);
});

afterAll(async () => {
  await app?.close();
  await database?.drop();
});

async function firstPartyClient() {
  const { publicKey, privateKey } = await generateKeyPair('ES256', { extractable: true });
  const created = await app.container.clients.createClient({
    profile: 'oidc', client_name: 'Bank web app', redirect_uris: [REDIRECT_URI], scope: 'openid profile',
    jwks: { keys: [{ ...(await exportJWK(publicKey)), kid: 'fp', alg: 'ES256' }] },
  });
  const config = await client.discovery(new URL(app.url), created.client_id, { token_endpoint_auth_method: 'private_key_jwt' }, client.PrivateKeyJwt({ key: privateKey, kid: 'fp' }), { execute: [client.allowInsecureRequests] });
  return { created, config };
}

test('a first-party (profile oidc) client uses the plain code flow: no PAR, bearer tokens, still PKCE and private_key_jwt', async () => {
  const { created, config } = await firstPartyClient();
  expect(created.profile).toBe('oidc');
  expect((await app.container.clients.get(created.client_id)).profile).toBe('oidc');
  const codeVerifier = client.randomPKCECodeVerifier();
  const state = client.randomState();
  const url = client.buildAuthorizationUrl(config, {
    redirect_uri: REDIRECT_URI, scope: 'openid profile', state,
    code_challenge: await client.calculatePKCECodeChallenge(codeVerifier), code_challenge_method: 'S256',
  });
  const callback = await signInAndConsent({ url, codeVerifier, state }, alice);
  const tokens = await client.authorizationCodeGrant(config, callback, { pkceCodeVerifier: codeVerifier, expectedState: state });
  expect(tokens.token_type.toLowerCase()).toBe('bearer');
  const rs = await resourceServer(app);
  expect(await client.tokenIntrospection(rs, tokens.access_token)).toMatchObject({ active: true, client_id: created.client_id });
});

test('a first-party client still needs PKCE', async () => {
  const { config } = await firstPartyClient();
  const url = client.buildAuthorizationUrl(config, { redirect_uri: REDIRECT_URI, scope: 'openid', state: client.randomState() });
  // The request itself is authentic enough (registered redirect URI, plain request of a
  // first-party client) for the error to go back to the client, as RFC 6749 §4.1.2.1 says.
  const result = await new FormBrowser().navigate(url.toString());
  const callback = new URL(result.leftTo!);
  expect(callback.searchParams.get('error')).toBe('invalid_request');
  expect(callback.searchParams.get('error_description')).toMatch(/PKCE/);
});

test('a TPP (profile fapi2) must push its request: a plain authorization request is refused on our page, not redirected', async () => {
  const tpp = await registerTpp(app);
  const codeVerifier = client.randomPKCECodeVerifier();
  const url = client.buildAuthorizationUrl(tpp.config, {
    redirect_uri: REDIRECT_URI, scope: 'openid', state: client.randomState(),
    code_challenge: await client.calculatePKCECodeChallenge(codeVerifier), code_challenge_method: 'S256',
  });
  const result = await new FormBrowser().navigate(url.toString());
  expect(result.leftTo).toBeUndefined();
  expect(result.page?.status).toBe(400);
  expect(result.page?.html).toMatch(/Pushed Authorization Request must be used/i);
});

test('a TPP cannot be created without PAR or without a token binding; a first-party client can be', async () => {
  const { publicKey } = await generateKeyPair('ES256', { extractable: true });
  const base = { redirect_uris: [REDIRECT_URI], jwks: { keys: [{ ...(await exportJWK(publicKey)), kid: 'k' }] } };
  await expect(app.container.clients.createClient({ ...base, require_pushed_authorization_requests: false })).rejects.toMatchObject({ code: 'INVALID_CLIENT_METADATA' });
  await expect(app.container.clients.createClient({ ...base, dpop_bound_access_tokens: false })).rejects.toMatchObject({ code: 'INVALID_CLIENT_METADATA' });
  await expect(app.container.clients.createClient({ ...base, profile: 'oidc', token_endpoint_auth_method: 'client_secret_basic' })).rejects.toMatchObject({ code: 'INVALID_CLIENT_METADATA' });
  await expect(app.container.clients.createClient({ ...base, profile: 'oidc', dpop_bound_access_tokens: false })).resolves.toMatchObject({ profile: 'oidc' });
});

test('http loopback redirect URIs only with ALLOW_LOOPBACK_REDIRECTS (development, the demo)', async () => {
  const { publicKey } = await generateKeyPair('ES256', { extractable: true });
  const metadata = { redirect_uris: ['http://127.0.0.1:8080/callback'], jwks: { keys: [{ ...(await exportJWK(publicKey)), kid: 'k' }] } };
  await expect(app.container.clients.createClient(metadata)).rejects.toMatchObject({ code: 'INVALID_CLIENT_METADATA' });
  const devDb = await createTestDatabase();
  const dev = await startTestApp(devDb, { ALLOW_LOOPBACK_REDIRECTS: 'true' });
  try {
    await expect(dev.container.clients.createClient(metadata)).resolves.toMatchObject({ profile: 'fapi2' });
    await expect(dev.container.clients.createClient({ ...metadata, redirect_uris: ['http://tpp.example/callback'] })).rejects.toMatchObject({ code: 'INVALID_CLIENT_METADATA' });
  } finally {
    await dev.close();
    await devDb.drop();
  }
});
