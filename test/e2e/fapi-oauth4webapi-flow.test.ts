import { afterAll, beforeAll, expect, test } from '@jest/globals';

import { calculateJwkThumbprint, exportJWK } from 'jose';
import * as oauth from 'oauth4webapi';

import { startTestApp, type TestApp } from '../support/app.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';
import { registerResourceServer, type ResourceServerCredentials } from '../support/fapi-crafting.js';
import { createCustomer, REDIRECT_URI, signInAndConsent, type Customer } from '../support/tpp.js';

/**
 * The positive FAPI 2.0 flow driven by a second, independent client library (oauth4webapi,
 * not the openid-client the other tests use): PAR + private_key_jwt + DPoP + PKCE, sign-in
 * and consent on our pages, code redemption, userinfo, refresh and introspection.
 */
let database: TestDatabase;
let app: TestApp;
let alice: Customer;
let rs: ResourceServerCredentials;

const insecure = { [oauth.allowInsecureRequests]: true } as const;

beforeAll(async () => {
  database = await createTestDatabase();
  app = await startTestApp(database);
  alice = await createCustomer(app);
  rs = await registerResourceServer(app);
});

afterAll(async () => {
  await app?.close();
  await database?.drop();
});

test('oauth4webapi: PAR, private_key_jwt, DPoP and PKCE through sign-in, consent, redemption, userinfo and refresh', async () => {
  const issuer = new URL(app.url);
  const as = await oauth.processDiscoveryResponse(issuer, await oauth.discoveryRequest(issuer, { algorithm: 'oidc', ...insecure }));
  expect(as.require_pushed_authorization_requests).toBe(true);

  const clientKeys = await oauth.generateKeyPair('ES256', { extractable: true });
  const created = await app.container.clients.createClient({
    client_name: 'oauth4webapi TPP',
    redirect_uris: [REDIRECT_URI],
    jwks: { keys: [{ ...(await exportJWK(clientKeys.publicKey)), kid: 'o4w-key-1', alg: 'ES256', use: 'sig' }] },
    scope: 'openid offline_access accounts',
    grant_types: ['authorization_code', 'refresh_token'],
  });
  const client: oauth.Client = { client_id: created.client_id, id_token_signed_response_alg: 'PS256' };
  const clientAuth = oauth.PrivateKeyJwt({ key: clientKeys.privateKey, kid: 'o4w-key-1' });
  const dpopKeys = await oauth.generateKeyPair('ES256');
  const DPoP = oauth.DPoP(client, dpopKeys);
  const jkt = await calculateJwkThumbprint(await exportJWK(dpopKeys.publicKey));

  // PAR (the DPoP proof at PAR binds the code to the key, RFC 9449 §10)
  const codeVerifier = oauth.generateRandomCodeVerifier();
  const state = oauth.generateRandomState();
  const par = await oauth.processPushedAuthorizationResponse(as, client, await oauth.pushedAuthorizationRequest(as, client, clientAuth, {
    response_type: 'code',
    redirect_uri: REDIRECT_URI,
    scope: 'openid offline_access accounts',
    code_challenge: await oauth.calculatePKCECodeChallenge(codeVerifier),
    code_challenge_method: 'S256',
    state,
    prompt: 'consent',
  }, { DPoP, ...insecure }));
  expect(par.request_uri).toMatch(/^urn:ietf:params:oauth:request_uri:/);
  expect(par.expires_in).toBeGreaterThan(0);
  expect(par.expires_in).toBeLessThanOrEqual(90);

  // front channel: the customer signs in and consents
  const url = new URL(String(as.authorization_endpoint));
  url.searchParams.set('client_id', client.client_id);
  url.searchParams.set('request_uri', par.request_uri);
  const callback = await signInAndConsent({ url, codeVerifier, state }, alice);
  const params = oauth.validateAuthResponse(as, client, callback, state);

  // redemption
  const tokens = await oauth.processAuthorizationCodeResponse(as, client, await oauth.authorizationCodeGrantRequest(
    as, client, clientAuth, params, REDIRECT_URI, codeVerifier, { DPoP, ...insecure },
  ), { requireIdToken: true });
  expect(tokens.token_type).toBe('dpop');
  expect(tokens.refresh_token).toEqual(expect.any(String));
  const claims = oauth.getValidatedIdTokenClaims(tokens);
  expect(claims?.sub).toBe(alice.id);
  expect(claims?.acr).toBe('urn:openbanking:psd2:ca');

  // userinfo with the DPoP-bound token
  const userinfo = await oauth.processUserInfoResponse(as, client, alice.id, await oauth.userInfoRequest(as, client, tokens.access_token, { DPoP, ...insecure }));
  expect(userinfo.sub).toBe(alice.id);

  // refresh (no rotation), then the new access token works and is bound to the same key
  const refreshed = await oauth.processRefreshTokenResponse(as, client, await oauth.refreshTokenGrantRequest(
    as, client, clientAuth, tokens.refresh_token ?? '', { DPoP, ...insecure },
  ));
  expect(refreshed.token_type).toBe('dpop');
  expect(refreshed.access_token).not.toBe(tokens.access_token);
  expect(refreshed.refresh_token === undefined || refreshed.refresh_token === tokens.refresh_token).toBe(true);
  const again = await oauth.processUserInfoResponse(as, client, alice.id, await oauth.userInfoRequest(as, client, refreshed.access_token, { DPoP, ...insecure }));
  expect(again.sub).toBe(alice.id);

  // the resource server sees both access tokens active and bound to the DPoP key
  const rsClient: oauth.Client = { client_id: rs.clientId };
  for (const token of [tokens.access_token, refreshed.access_token]) {
    const introspected = await oauth.processIntrospectionResponse(as, rsClient, await oauth.introspectionRequest(
      as, rsClient, oauth.ClientSecretBasic(rs.secret), token, insecure,
    ));
    expect(introspected).toMatchObject({ active: true, client_id: client.client_id, sub: alice.id, token_type: 'DPoP', cnf: { jkt } });
  }
});
