import { afterAll, beforeAll, expect, test } from '@jest/globals';

import { startTestApp, type TestApp } from '../support/app.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';
import { DIRECTORY_ISSUER, keyPair, signSsa, ssaClaims, startJwksHost, type JwksHost, type KeyPair } from '../support/directory.js';

let database: TestDatabase;
let app: TestApp;
let directoryKey: KeyPair;
let directory: JwksHost;
let tppHost: JwksHost;

beforeAll(async () => {
  directoryKey = await keyPair('ES256');
  directory = await startJwksHost([directoryKey]);
  tppHost = await startJwksHost([await keyPair('ES256', 'tpp-1')]);
  database = await createTestDatabase();
  app = await startTestApp(database, { SSA_ISSUER: DIRECTORY_ISSUER, SSA_JWKS_URI: directory.url, FETCH_ALLOW_PRIVATE_NETWORKS: 'true' });
});

afterAll(async () => {
  await app?.close();
  await database?.drop();
  await directory?.close();
  await tppHost?.close();
});

test('a TPP registers with a software statement', async () => {
  const discovery = await (await fetch(`${app.url}/.well-known/openid-configuration`)).json() as Record<string, string>;
  expect(discovery.registration_endpoint).toBe(`${app.url}/reg`);
  const ssa = await signSsa(directoryKey, ssaClaims(tppHost.url, { software_roles: ['AISP'] }));
  const response = await fetch(discovery.registration_endpoint!, {
    method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ software_statement: ssa, redirect_uris: ['https://tpp.example/callback'], client_name: 'ignored', extra_member: 'ignored' }),
  });
  const body = await response.json() as Record<string, unknown>;
  expect(response.status).toBe(201);
  expect(body).toMatchObject({ client_name: 'Budget Buddy', jwks_uri: tppHost.url, token_endpoint_auth_method: 'private_key_jwt', authorization_details_types: ['account_information'] });
  expect(body.extra_member).toBeUndefined();
  expect(typeof body.registration_access_token).toBe('string');
});

test('a registration body nested deeper than 20 levels is refused before anything is verified', async () => {
  let nested: unknown = 'x';
  for (let i = 0; i < 30; i += 1) nested = { n: nested };
  const response = await fetch(`${app.url}/reg`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ software_statement: 'a.b.c', nested }) });
  expect(response.status).toBe(400);
  expect(await response.json()).toMatchObject({ error: 'invalid_client_metadata' });
});
