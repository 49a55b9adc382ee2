import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import * as client from 'openid-client';

import { startTestApp, type TestApp } from '../support/app.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';
import {
  clientRow, countClients, DIRECTORY_ISSUER, keyPair, registrationRequest, signSsa, ssaClaims, startJwksHost,
  type JwksHost, type KeyPair, type RegistrationResponse, type SsaClaims,
} from '../support/directory.js';
import { resourceServer } from '../support/tpp.js';

/**
 * RFC 7592 client management of dynamically registered clients: read with the
 * registration access token, update with a fresh software statement, delete (and with
 * the client, its tokens); and the outbound fetch safety of software_jwks_uri.
 */
const CALLBACK = 'https://tpp.example/callback';
const OTHER = 'https://tpp.example/other';
const ALL_GRANTS = ['authorization_code', 'refresh_token', 'client_credentials'];

let database: TestDatabase;
let app: TestApp;
let directoryKey: KeyPair;
let directory: JwksHost;
let tppKey: KeyPair;
let tppHost: JwksHost;
const extraApps: TestApp[] = [];

beforeAll(async () => {
  // oidc-provider's SSRF protection, as in production (see directory.ts)
  directoryKey = await keyPair('ES256');
  directory = await startJwksHost([directoryKey]);
  tppKey = await keyPair('ES256', 'tpp-1');
  tppHost = await startJwksHost([tppKey]);
  database = await createTestDatabase();
  app = await startTestApp(database, { SSA_ISSUER: DIRECTORY_ISSUER, SSA_JWKS_URI: directory.url, FETCH_ALLOW_PRIVATE_NETWORKS: 'true' });
});

afterAll(async () => {
  for (const extra of extraApps) await extra.close();
  await app?.close();
  await database?.drop();
  await directory?.close();
  await tppHost?.close();
});

function ssa(overrides: Partial<SsaClaims> = {}): Promise<string> {
  return signSsa(directoryKey, ssaClaims(tppHost.url, overrides));
}

interface Registered {
  readonly clientId: string;
  readonly softwareId: string;
  readonly uri: string;
  token: string;
}

async function register(overrides: Partial<SsaClaims> = {}, extra: Record<string, unknown> = {}, target: TestApp = app): Promise<Registered> {
  const claims = ssaClaims(tppHost.url, overrides);
  const response = await registrationRequest(`${target.url}/reg`, {
    software_statement: await signSsa(directoryKey, claims),
    redirect_uris: [CALLBACK, OTHER],
    grant_types: ALL_GRANTS,
    ...extra,
  });
  expect({ status: response.status, body: response.body }).toMatchObject({ status: 201 });
  const { client_id: clientId, registration_client_uri: uri, registration_access_token: token } = response.body;
  if (typeof clientId !== 'string' || typeof uri !== 'string' || typeof token !== 'string') throw new Error(`incomplete registration response: ${response.text}`);
  return { clientId, softwareId: claims.software_id, uri, token };
}

function manage(registered: Registered, method: 'GET' | 'PUT' | 'DELETE', options: { token?: string | null; body?: unknown } = {}): Promise<RegistrationResponse> {
  const token = options.token === null ? undefined : (options.token ?? registered.token);
  return registrationRequest(registered.uri, options.body, { method, ...(token === undefined ? {} : { token }) });
}

function expectUnauthorized(response: RegistrationResponse): void {
  expect({ status: response.status, error: response.body.error, description: response.body.error_description }).toMatchObject({ status: 401 });
  expect(response.headers.get('www-authenticate') ?? '').toMatch(/^Bearer/i);
  expect(response.body.client_id).toBeUndefined();
}

async function clientCredentials(target: TestApp, clientId: string): Promise<client.TokenEndpointResponse> {
  const config = await client.discovery(
    new URL(target.url),
    clientId,
    { token_endpoint_auth_method: 'private_key_jwt' },
    client.PrivateKeyJwt({ key: tppKey.privateKey, kid: tppKey.kid }),
    { execute: [client.allowInsecureRequests] },
  );
  const dpop = client.getDPoPHandle(config, await client.randomDPoPKeyPair('ES256'));
  return client.clientCredentialsGrant(config, { scope: 'accounts' }, { DPoP: dpop });
}

describe('read (GET)', () => {
  test('with the registration access token: the client\'s metadata', async () => {
    const registered = await register();
    const response = await manage(registered, 'GET');
    expect(response.status).toBe(200);
    expect(response.body).toMatchObject({
      client_id: registered.clientId,
      client_name: 'Budget Buddy',
      software_id: registered.softwareId,
      redirect_uris: [CALLBACK, OTHER],
      jwks_uri: tppHost.url,
      grant_types: ALL_GRANTS,
      token_endpoint_auth_method: 'private_key_jwt',
      registration_client_uri: registered.uri,
      registration_access_token: registered.token,
    });
    expect(response.body.client_secret).toBeUndefined();
  });

  test('without a token, or with a wrong one: 401', async () => {
    const registered = await register();
    expectUnauthorized(await manage(registered, 'GET', { token: null }));
    expectUnauthorized(await manage(registered, 'GET', { token: 'not-the-registration-access-token' }));
    // the real token still works afterwards
    expect((await manage(registered, 'GET')).status).toBe(200);
  });
});

describe('update (PUT)', () => {
  test('a fresh SSA and a narrower redirect URI set: 200, stored, the access token rotated', async () => {
    const registered = await register();
    const before = await countClients(app);
    const response = await manage(registered, 'PUT', {
      body: { client_id: registered.clientId, software_statement: await ssa({ software_id: registered.softwareId }), redirect_uris: [OTHER], grant_types: ALL_GRANTS },
    });
    expect({ status: response.status, body: response.body }).toMatchObject({ status: 200 });
    expect(response.body).toMatchObject({ client_id: registered.clientId, redirect_uris: [OTHER], software_id: registered.softwareId, client_name: 'Budget Buddy' });
    const rotated = response.body.registration_access_token;
    expect(typeof rotated).toBe('string');
    expect(rotated).not.toBe(registered.token);
    expect(await countClients(app)).toBe(before);
    expect((await clientRow(app, registered.clientId))?.metadata.redirect_uris).toEqual([OTHER]);

    expectUnauthorized(await manage(registered, 'GET'));
    registered.token = rotated as string;
    const read = await manage(registered, 'GET');
    expect(read.status).toBe(200);
    expect(read.body.redirect_uris).toEqual([OTHER]);
  });

  test('without a software_statement: invalid_software_statement, nothing changes', async () => {
    const registered = await register();
    const before = await clientRow(app, registered.clientId);
    const response = await manage(registered, 'PUT', { body: { client_id: registered.clientId, redirect_uris: [OTHER] } });
    expect({ status: response.status, error: response.body.error }).toEqual({ status: 400, error: 'invalid_software_statement' });
    expect(await clientRow(app, registered.clientId)).toEqual(before);
    const read = await manage(registered, 'GET');
    expect(read.status).toBe(200);
    expect(read.body.redirect_uris).toEqual([CALLBACK, OTHER]);
  });

  test('with the SSA of a software_id registered to another client: rejected, nothing changes', async () => {
    const registered = await register();
    const other = await register();
    const before = await clientRow(app, registered.clientId);
    const response = await manage(registered, 'PUT', {
      body: { client_id: registered.clientId, software_statement: await ssa({ software_id: other.softwareId, software_client_name: 'Other App' }) },
    });
    expect({ status: response.status, error: response.body.error }).toEqual({ status: 400, error: 'invalid_software_statement' });
    expect(await clientRow(app, registered.clientId)).toEqual(before);
    expect((await clientRow(app, other.clientId))?.softwareId).toBe(other.softwareId);
  });

  test('with the SSA of another, unregistered software_id: rejected, the client keeps its software identity', async () => {
    const registered = await register({ software_roles: ['AISP'] });
    const before = await clientRow(app, registered.clientId);
    const response = await manage(registered, 'PUT', {
      body: {
        client_id: registered.clientId,
        software_statement: await ssa({ software_id: `sw-other-${Date.now()}`, software_client_name: 'Other App', software_roles: ['AISP', 'PISP'] }),
      },
    });
    expect({ status: response.status, error: response.body.error, description: response.body.error_description })
      .toMatchObject({ status: 400, error: 'invalid_software_statement' });
    expect(await clientRow(app, registered.clientId)).toEqual(before);
  });

  test('without a registration access token, or with a wrong one: 401, whatever the body, and nothing changes', async () => {
    const registered = await register();
    const before = await clientRow(app, registered.clientId);
    const withSsa = async () => ({ client_id: registered.clientId, software_statement: await ssa({ software_id: registered.softwareId }), redirect_uris: [OTHER] });
    expectUnauthorized(await manage(registered, 'PUT', { token: null, body: await withSsa() }));
    expectUnauthorized(await manage(registered, 'PUT', { token: 'not-the-registration-access-token', body: await withSsa() }));
    // RFC 7592 §2 / RFC 6750 §3.1: no valid token → 401, before the request body is judged
    expectUnauthorized(await manage(registered, 'PUT', { token: null, body: { client_id: registered.clientId, redirect_uris: [OTHER] } }));
    expect(await clientRow(app, registered.clientId)).toEqual(before);
  });

  test('an unauthenticated PUT does not consume the software statement it carries', async () => {
    const registered = await register();
    const body = { client_id: registered.clientId, software_statement: await ssa({ software_id: registered.softwareId }), redirect_uris: [OTHER] };
    expectUnauthorized(await manage(registered, 'PUT', { token: null, body }));
    // the legitimate holder can still use that SSA
    const response = await manage(registered, 'PUT', { body });
    expect({ status: response.status, error: response.body.error, description: response.body.error_description }).toMatchObject({ status: 200 });
    expect(response.body.redirect_uris).toEqual([OTHER]);
  });
});

describe('delete (DELETE)', () => {
  test('204; the client is gone, its tokens are inactive, and its software_id may register again', async () => {
    const registered = await register();
    const rs = await resourceServer(app);
    const tokens = await clientCredentials(app, registered.clientId);
    expect((await client.tokenIntrospection(rs, tokens.access_token)).active).toBe(true);
    const before = await countClients(app);

    const response = await manage(registered, 'DELETE');
    expect(response.status).toBe(204);
    expect(await countClients(app)).toBe(before - 1);
    expect(await clientRow(app, registered.clientId)).toBeUndefined();
    expectUnauthorized(await manage(registered, 'GET'));
    expect((await client.tokenIntrospection(rs, tokens.access_token)).active).toBe(false);
    await expect(clientCredentials(app, registered.clientId)).rejects.toMatchObject({ error: 'invalid_client' });

    const again = await register({ software_id: registered.softwareId });
    expect(again.clientId).not.toBe(registered.clientId);
  });
});

describe('outbound fetch safety (FETCH_ALLOW_PRIVATE_NETWORKS unset)', () => {
  test('a loopback http software_jwks_uri cannot be registered, and a client that has one cannot authenticate', async () => {
    // the same database, served by an instance that refuses private networks
    const strict = await startTestApp(database, { SSA_ISSUER: DIRECTORY_ISSUER, SSA_JWKS_URI: directory.url });
    extraApps.push(strict);

    // 1. registration: the SSA's http://127.0.0.1 software_jwks_uri is refused
    const before = await countClients(strict);
    const response = await registrationRequest(`${strict.url}/reg`, { software_statement: await ssa() });
    expect({ status: response.status, error: response.body.error, description: response.body.error_description })
      .toMatchObject({ status: 400, error: 'invalid_software_statement' });
    expect(await countClients(strict)).toBe(before);

    // 2. authentication: a client registered where private networks are allowed works there…
    const registered = await register();
    expect((await clientCredentials(app, registered.clientId)).token_type.toLowerCase()).toBe('dpop');
    // …but the strict instance does not fetch its loopback jwks_uri, so it cannot authenticate
    const fetches = tppHost.fetches();
    await expect(clientCredentials(strict, registered.clientId)).rejects.toMatchObject({ error: 'invalid_client' });
    expect(tppHost.fetches()).toBe(fetches);
  });
});
