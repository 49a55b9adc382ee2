import { afterAll, beforeAll, expect, test } from '@jest/globals';
import { createLocalJWKSet, decodeProtectedHeader, jwtVerify, type JSONWebKeySet } from 'jose';
import * as client from 'openid-client';

import { startTestApp, type TestApp } from '../support/app.js';
import { FormBrowser, requirePage } from '../support/browser.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';
import { authorizeAndRedeem, createCustomer, pushAuthorization, registerTpp, resourceServer } from '../support/tpp.js';

/**
 * `portcullis keys rotate` publishes new keys; they sign only after the activation delay
 * (0 here), and each instance's periodic refresh (every KEY_REFRESH_SECONDS ≤ 60, driven
 * by hand here) swaps in a provider with the new key set.
 */
let database: TestDatabase;
let a: TestApp;
let b: TestApp;

beforeAll(async () => {
  database = await createTestDatabase();
  a = await startTestApp(database, { KEY_ACTIVATION_DELAY_SECONDS: '0' });
  b = await startTestApp(database, { KEY_ACTIVATION_DELAY_SECONDS: '0' });
});

afterAll(async () => {
  await b?.close();
  await a?.close();
  await database?.drop();
});

async function jwksOf(app: TestApp): Promise<JSONWebKeySet> {
  return (await fetch(`${app.url}/jwks`)).json() as Promise<JSONWebKeySet>;
}

test('a rotation under a running flow loses no token and no session; the other instance follows on its next refresh', async () => {
  const tpp = await registerTpp(a);
  const rs = await resourceServer(a);
  const alice = await createCustomer(a);
  const before = await authorizeAndRedeem(tpp, alice);
  const oldKid = decodeProtectedHeader(before.id_token!).kid;

  // A flow is half-way: the customer has signed in and sees the consent page.
  const started = await pushAuthorization(tpp);
  const browser = new FormBrowser();
  const login = requirePage(await browser.navigate(started.url.toString()));
  const consent = requirePage(await browser.submit(login, 'form[action$="/login"]', { username: alice.username, password: alice.password }));

  const published = await a.container.keys.rotate();
  const newKid = published.find((k) => k.alg === 'PS256')!.kid;
  expect((await jwksOf(a)).keys.map((k) => k.kid)).not.toContain(newKid); // not reloaded yet
  expect(await a.container.keyRefresher.refreshOnce()).toBe(true);
  const jwksA = await jwksOf(a);
  expect(jwksA.keys.map((k) => k.kid)).toEqual(expect.arrayContaining([newKid, oldKid]));

  // The flow continues on the rebuilt provider: same session, same interaction.
  const result = await browser.submit(consent, 'form[action$="/consent"]', {}, { name: 'decision', value: 'allow' });
  const after = await client.authorizationCodeGrant(tpp.config, new URL(result.leftTo!), { pkceCodeVerifier: started.codeVerifier, expectedState: started.state }, undefined, { DPoP: tpp.dpop });
  expect(decodeProtectedHeader(after.id_token!).kid).toBe(newKid);

  // Both ID tokens verify against the published JWKS: the retired key stays until retention ends.
  const keySet = createLocalJWKSet(jwksA);
  await expect(jwtVerify(before.id_token!, keySet, { issuer: a.url })).resolves.toBeDefined();
  await expect(jwtVerify(after.id_token!, keySet, { issuer: a.url })).resolves.toBeDefined();

  // Tokens issued before the rotation still work.
  expect((await client.tokenIntrospection(rs, before.access_token)).active).toBe(true);
  const refreshed = await client.refreshTokenGrant(tpp.config, before.refresh_token!, undefined, { DPoP: tpp.dpop });
  expect(decodeProtectedHeader(refreshed.id_token!).kid).toBe(newKid);

  // Instance B serves the old key set until its next refresh, then the new one.
  expect((await jwksOf(b)).keys.map((k) => k.kid)).not.toContain(newKid);
  expect(await b.container.keyRefresher.refreshOnce()).toBe(true);
  expect(await jwksOf(b)).toEqual(jwksA);
  expect(await b.container.keyRefresher.refreshOnce()).toBe(false);
});
