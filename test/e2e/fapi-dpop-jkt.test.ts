import { afterAll, beforeAll, expect, test } from '@jest/globals';
import { calculateJwkThumbprint, exportJWK } from 'jose';
import * as client from 'openid-client';

import { startTestApp, type TestApp } from '../support/app.js';
import { FormBrowser, requirePage } from '../support/browser.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';
import { createCustomer, pushAuthorization, registerTpp, resourceServer, signInAndConsent, type Customer, type Tpp } from '../support/tpp.js';

/** RFC 9449 §10: a DPoP proof at PAR (or dpop_jkt) binds the code to that key. */
let database: TestDatabase;
let app: TestApp;
let tpp: Tpp;
let alice: Customer;

beforeAll(async () => {
  database = await createTestDatabase();
  app = await startTestApp(database);
  tpp = await registerTpp(app);
  alice = await createCustomer(app);
});

afterAll(async () => {
  await app?.close();
  await database?.drop();
});

test('a code bound at PAR cannot be redeemed with another DPoP key', async () => {
  const started = await pushAuthorization(tpp); // openid-client sends its DPoP proof at PAR
  const callback = await signInAndConsent(started, alice);
  const otherKey = client.getDPoPHandle(tpp.config, await client.randomDPoPKeyPair('ES256'));
  await expect(client.authorizationCodeGrant(tpp.config, callback, { pkceCodeVerifier: started.codeVerifier, expectedState: started.state }, undefined, { DPoP: otherKey }))
    .rejects.toMatchObject({ error: 'invalid_grant' });
});

test('dpop_jkt at PAR binds the code to the named key: another key is refused (and burns the code), that key succeeds', async () => {
  const bound = await client.randomDPoPKeyPair('ES256');
  const jkt = await calculateJwkThumbprint(await exportJWK(bound.publicKey));
  async function authorize() {
    const codeVerifier = client.randomPKCECodeVerifier();
    const state = client.randomState();
    // No DPoP option here: the binding comes from the dpop_jkt parameter alone.
    const url = await client.buildAuthorizationUrlWithPAR(tpp.config, {
      redirect_uri: 'https://tpp.example/callback', scope: 'openid accounts', state, dpop_jkt: jkt,
      code_challenge: await client.calculatePKCECodeChallenge(codeVerifier), code_challenge_method: 'S256',
    });
    return { callback: await signInAndConsent({ url, codeVerifier, state }, alice), checks: { pkceCodeVerifier: codeVerifier, expectedState: state } };
  }
  const refused = await authorize();
  await expect(client.authorizationCodeGrant(tpp.config, refused.callback, refused.checks, undefined, { DPoP: tpp.dpop }))
    .rejects.toMatchObject({ error: 'invalid_grant' });
  const accepted = await authorize();
  const tokens = await client.authorizationCodeGrant(tpp.config, accepted.callback, accepted.checks, undefined, { DPoP: client.getDPoPHandle(tpp.config, bound) });
  const rs = await resourceServer(app);
  expect(await client.tokenIntrospection(rs, tokens.access_token)).toMatchObject({ active: true, cnf: { jkt } });
});

test('the authorization response reaches the client by a 303 redirect carrying iss', async () => {
  const started = await pushAuthorization(tpp);
  const browser = new FormBrowser();
  const login = requirePage(await browser.navigate(started.url.toString()));
  const consent = requirePage(await browser.submit(login, 'form[action$="/login"]', { username: alice.username, password: alice.password }));
  const form = consent.document.querySelector('form[action$="/consent"]')!;
  const body = new URLSearchParams([['csrf', form.querySelector('input[name=csrf]')!.getAttribute('value')!], ['decision', 'allow']]);
  let response = await browser.request(new URL(form.getAttribute('action')!, consent.url).toString(), { method: 'POST', body: body.toString(), headers: { 'content-type': 'application/x-www-form-urlencoded' } });
  expect(response.status).toBe(303);
  response = await browser.request(new URL(response.headers.get('location')!, consent.url).toString());
  expect(response.status).toBe(303);
  const location = new URL(response.headers.get('location')!);
  expect(location.origin + location.pathname).toBe('https://tpp.example/callback');
  expect(location.searchParams.get('iss')).toBe(app.url);
  expect(location.searchParams.get('code')).toBeTruthy();
});
