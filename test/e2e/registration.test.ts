import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import * as client from 'openid-client';

import { startTestApp, type TestApp } from '../support/app.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';
import {
  clientRow, countClients, DIRECTORY_ISSUER, keyPair, pollUntil, registrationRequest, signSsa, ssaClaims, startJwksHost,
  type JwksHost, type KeyPair, type RegistrationResponse, type SsaClaims,
} from '../support/directory.js';
import { pkcePair } from '../support/fapi-crafting.js';

/**
 * RFC 7591 dynamic client registration with software statements (SSAs) from a trusted
 * directory: what a valid registration yields and can do, every rejection (exact RFC 7591
 * error code, HTTP 400, no client row created), roles, the directory's JWKS (rollover and
 * a flood of unknown kids), and discovery with and without a directory.
 */
const CALLBACK = 'https://tpp.example/callback';
const OTHER = 'https://tpp.example/other';
const ALL_GRANTS = ['authorization_code', 'refresh_token', 'client_credentials'];

interface Instance {
  readonly database: TestDatabase;
  readonly app: TestApp;
  readonly directory: JwksHost;
}

const instances: Instance[] = [];
const extraHosts: JwksHost[] = [];

async function startInstance(directoryKeys: KeyPair[], env: Record<string, string> = {}): Promise<Instance> {
  const directory = await startJwksHost(directoryKeys);
  const database = await createTestDatabase();
  const app = await startTestApp(database, {
    SSA_ISSUER: DIRECTORY_ISSUER, SSA_JWKS_URI: directory.url, FETCH_ALLOW_PRIVATE_NETWORKS: 'true', ...env,
  });
  const instance = { database, app, directory };
  instances.push(instance);
  return instance;
}

let main: Instance;
let app: TestApp;
/** the directory's signing keys: ES256 (default), PS256, and an RS256 key it also publishes */
let directoryKey: KeyPair;
let directoryPsKey: KeyPair;
let directoryRsKey: KeyPair;
/** the TPP's private_key_jwt key, served at software_jwks_uri */
let tppKey: KeyPair;
let tppHost: JwksHost;

beforeAll(async () => {
  directoryKey = await keyPair('ES256');
  directoryPsKey = await keyPair('PS256');
  directoryRsKey = await keyPair('RS256');
  tppKey = await keyPair('ES256', 'tpp-1');
  tppHost = await startJwksHost([tppKey]);
  extraHosts.push(tppHost);
  main = await startInstance([directoryKey, directoryPsKey, directoryRsKey], { SSA_MAX_AGE_SECONDS: '60' });
  app = main.app;
});

afterAll(async () => {
  for (const instance of instances) {
    await instance.app.close();
    await instance.database.drop();
    await instance.directory.close();
  }
  for (const host of extraHosts) await host.close();
});

function claims(overrides: Partial<SsaClaims> = {}): SsaClaims {
  return ssaClaims(tppHost.url, overrides);
}

async function ssa(overrides: Partial<SsaClaims> = {}, options: Parameters<typeof signSsa>[2] = {}, key: KeyPair = directoryKey): Promise<string> {
  return signSsa(key, claims(overrides), options);
}

function register(body: unknown, target: TestApp = app, options: Parameters<typeof registrationRequest>[2] = {}): Promise<RegistrationResponse> {
  return registrationRequest(`${target.url}/reg`, body, options);
}

/** The registration is refused with `error` (HTTP 400) and no client row appears. */
async function expectRejected(body: unknown, error: string, options: Parameters<typeof registrationRequest>[2] = {}, target: TestApp = app, reason?: RegExp): Promise<RegistrationResponse> {
  const before = await countClients(target);
  const response = await register(body, target, options);
  expect({ status: response.status, error: response.body.error, description: response.body.error_description })
    .toMatchObject({ status: 400, error });
  if (reason !== undefined) expect(String(response.body.error_description)).toMatch(reason);
  expect(await countClients(target)).toBe(before);
  return response;
}

function expectCreated(response: RegistrationResponse): Record<string, unknown> {
  expect({ status: response.status, body: response.body }).toMatchObject({ status: 201 });
  return response.body;
}

/** An openid-client Configuration for a registered client, authenticating with the TPP's key. */
async function clientConfig(target: TestApp, clientId: string, key: KeyPair = tppKey): Promise<client.Configuration> {
  return client.discovery(
    new URL(target.url),
    clientId,
    { token_endpoint_auth_method: 'private_key_jwt' },
    client.PrivateKeyJwt({ key: key.privateKey, kid: key.kid }),
    { execute: [client.allowInsecureRequests] },
  );
}

function compactNone(payload: Record<string, unknown>, signature = ''): string {
  const encode = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
  return `${encode({ alg: 'none', typ: 'JWT' })}.${encode(payload)}.${signature}`;
}

describe('a valid registration', () => {
  test('201 with the SSA\'s identity; unknown members dropped; the client authenticates with the keys at its software_jwks_uri', async () => {
    const statement = claims();
    const before = await countClients(app);
    const body = expectCreated(await register({
      software_statement: await signSsa(directoryKey, statement),
      redirect_uris: [CALLBACK],
      grant_types: ALL_GRANTS,
      token_endpoint_auth_method: 'private_key_jwt',
      client_name: 'Not Budget Buddy',
      software_id: 'spoofed-software-id',
      extra_member: 'must not be stored',
      require_pushed_authorization_requests: false,
      authorization_details_types: ['account_information'],
    }));
    expect(await countClients(app)).toBe(before + 1);

    const clientId = body.client_id;
    expect(typeof clientId).toBe('string');
    if (typeof clientId !== 'string') throw new Error('no client_id');
    expect(typeof body.registration_access_token).toBe('string');
    expect((body.registration_access_token as string).length).toBeGreaterThan(20);
    expect(body.registration_client_uri).toBe(`${app.url}/reg/${clientId}`);
    expect(body).toMatchObject({
      client_name: 'Budget Buddy',
      software_id: statement.software_id,
      jwks_uri: tppHost.url,
      redirect_uris: [CALLBACK],
      grant_types: ALL_GRANTS,
      token_endpoint_auth_method: 'private_key_jwt',
      dpop_bound_access_tokens: true,
      require_pushed_authorization_requests: true,
      authorization_details_types: ['account_information', 'payment_initiation'],
    });
    expect(body.extra_member).toBeUndefined();
    expect(body.jwks).toBeUndefined();

    const row = await clientRow(app, clientId);
    expect(row).toBeDefined();
    expect(row?.softwareId).toBe(statement.software_id);
    expect(row?.metadata).toMatchObject({ client_name: 'Budget Buddy', software_id: statement.software_id, jwks_uri: tppHost.url });
    expect(Object.keys(row?.metadata ?? {})).not.toContain('extra_member');
    expect(JSON.stringify(row?.metadata)).not.toContain('must not be stored');
    expect(JSON.stringify(row?.metadata)).not.toContain('spoofed-software-id');
    expect(JSON.stringify(row?.metadata)).not.toContain('Not Budget Buddy');

    // private_key_jwt + DPoP with the key published at software_jwks_uri
    const fetchesBefore = tppHost.fetches();
    const config = await clientConfig(app, clientId);
    const dpopKeys = await client.randomDPoPKeyPair('ES256');
    const tokens = await client.clientCredentialsGrant(config, { scope: 'accounts' }, { DPoP: client.getDPoPHandle(config, dpopKeys) });
    expect(tokens.token_type.toLowerCase()).toBe('dpop');
    expect(typeof tokens.access_token).toBe('string');
    expect(tppHost.fetches()).toBeGreaterThan(fetchesBefore);
  });

  test('an SSA signed with the directory\'s PS256 key is accepted too', async () => {
    expectCreated(await register({ software_statement: await ssa({}, {}, directoryPsKey) }));
  });
});

describe('rejections: the software statement', () => {
  test('no software_statement → invalid_software_statement', async () => {
    await expectRejected({ redirect_uris: [CALLBACK], jwks_uri: tppHost.url }, 'invalid_software_statement');
  });

  test('not a compact JWS → invalid_software_statement', async () => {
    await expectRejected({ software_statement: 'not-a-jws' }, 'invalid_software_statement');
    await expectRejected({ software_statement: 42 }, 'invalid_software_statement');
    await expectRejected({ software_statement: { alg: 'ES256' } }, 'invalid_software_statement');
  });

  test('signed by a key that is not the directory\'s → unapproved_software_statement', async () => {
    const impostorSameKid = await keyPair('ES256', directoryKey.kid);
    await expectRejected({ software_statement: await ssa({}, {}, impostorSameKid) }, 'unapproved_software_statement');
    const impostorUnknownKid = await keyPair('ES256');
    await expectRejected({ software_statement: await ssa({}, {}, impostorUnknownKid) }, 'unapproved_software_statement');
  });

  test('issued by someone else (iss) → unapproved_software_statement', async () => {
    await expectRejected({ software_statement: await ssa({}, { iss: 'https://rogue-directory.example' }) }, 'unapproved_software_statement');
  });

  test('expired → invalid_software_statement', async () => {
    await expectRejected({ software_statement: await ssa({}, { iatOffset: -50, expOffset: -30 }) }, 'invalid_software_statement', {}, app, /expired/);
  });

  test('iat older than SSA_MAX_AGE_SECONDS (60) → invalid_software_statement', async () => {
    await expectRejected({ software_statement: await ssa({}, { iatOffset: -120 }) }, 'invalid_software_statement', {}, app, /too old/);
  });

  test('a jti is single-use: the same SSA twice, or a new SSA reusing a jti → invalid_software_statement', async () => {
    const statement = await ssa();
    expectCreated(await register({ software_statement: statement }));
    await expectRejected({ software_statement: statement }, 'invalid_software_statement');

    const jti = `jti-${Date.now()}`;
    expectCreated(await register({ software_statement: await ssa({}, { jti }) }));
    const reused = await expectRejected({ software_statement: await ssa({}, { jti }) }, 'invalid_software_statement');
    expect(String(reused.body.error_description)).toMatch(/jti/);
  });

  test('RS256 (even with a key the directory publishes) and alg none → invalid_software_statement', async () => {
    await expectRejected({ software_statement: await ssa({}, {}, directoryRsKey) }, 'invalid_software_statement', {}, app, /PS256 or ES256/);
    const now = Math.floor(Date.now() / 1000);
    const payload = { ...claims(), iss: DIRECTORY_ISSUER, iat: now, exp: now + 600, jti: `none-${now}` };
    await expectRejected({ software_statement: compactNone(payload) }, 'invalid_software_statement');
    await expectRejected({ software_statement: compactNone(payload, 'c2lnbmF0dXJl') }, 'invalid_software_statement', {}, app, /PS256 or ES256/);
  });

  test('a missing or invalid claim → invalid_software_statement', async () => {
    const withoutRoles: Record<string, unknown> = { ...claims() };
    delete withoutRoles.software_roles;
    await expectRejected({ software_statement: await signSsa(directoryKey, withoutRoles) }, 'invalid_software_statement');
    await expectRejected({ software_statement: await ssa({ software_roles: ['ASPSP'] }) }, 'invalid_software_statement');
    await expectRejected({ software_statement: await ssa({ software_roles: [] }) }, 'invalid_software_statement');
    const withoutOrg: Record<string, unknown> = { ...claims() };
    delete withoutOrg.org_id;
    await expectRejected({ software_statement: await signSsa(directoryKey, withoutOrg) }, 'invalid_software_statement');
    const withoutSoftwareId: Record<string, unknown> = { ...claims() };
    delete withoutSoftwareId.software_id;
    await expectRejected({ software_statement: await signSsa(directoryKey, withoutSoftwareId) }, 'invalid_software_statement');
    await expectRejected({ software_statement: await ssa({ software_jwks_uri: 'ftp://tpp.example/jwks' }) }, 'invalid_software_statement');
  });
});

describe('rejections: the metadata', () => {
  test('a redirect URI the SSA does not list → invalid_redirect_uri', async () => {
    await expectRejected({ software_statement: await ssa(), redirect_uris: ['https://attacker.example/callback'] }, 'invalid_redirect_uri');
    await expectRejected({ software_statement: await ssa(), redirect_uris: [CALLBACK, 'https://tpp.example/callback/extra'] }, 'invalid_redirect_uri');
  });

  test('an http redirect URI, even one the SSA lists → invalid_redirect_uri', async () => {
    const httpCallback = 'http://tpp.example/callback';
    await expectRejected({ software_statement: await ssa({ software_redirect_uris: [CALLBACK, httpCallback] }), redirect_uris: [httpCallback] }, 'invalid_redirect_uri');
    // the SSA's own http URI, taken by default
    await expectRejected({ software_statement: await ssa({ software_redirect_uris: [httpCallback] }) }, 'invalid_redirect_uri');
  });

  test('inline jwks, or a jwks_uri other than the SSA\'s → invalid_client_metadata', async () => {
    const jwk = { kty: 'EC', crv: 'P-256', x: 'f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU', y: 'x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0', kid: 'inline' };
    await expectRejected({ software_statement: await ssa(), jwks: { keys: [jwk] } }, 'invalid_client_metadata');
    await expectRejected({ software_statement: await ssa(), jwks_uri: 'https://attacker.example/jwks' }, 'invalid_client_metadata', {}, app, /jwks_uri/);
  });

  test('a non-FAPI authentication method → invalid_client_metadata', async () => {
    await expectRejected({ software_statement: await ssa(), token_endpoint_auth_method: 'client_secret_basic' }, 'invalid_client_metadata');
    await expectRejected({ software_statement: await ssa(), token_endpoint_auth_method: 'none' }, 'invalid_client_metadata');
  });

  test('no token binding → invalid_client_metadata', async () => {
    await expectRejected({ software_statement: await ssa(), dpop_bound_access_tokens: false }, 'invalid_client_metadata', {}, app, /sender-constrained/);
    await expectRejected({ software_statement: await ssa(), dpop_bound_access_tokens: false, tls_client_certificate_bound_access_tokens: false }, 'invalid_client_metadata');
  });

  test('tls_client_auth without tls_client_auth_subject_dn → invalid_client_metadata', async () => {
    await expectRejected({ software_statement: await ssa(), token_endpoint_auth_method: 'tls_client_auth', tls_client_certificate_bound_access_tokens: true }, 'invalid_client_metadata', {}, app, /subject_dn/);
  });

  test('a second registration of a software_id, even with a fresh SSA → invalid_client_metadata pointing at RFC 7592', async () => {
    const softwareId = `sw-dup-${Date.now()}`;
    expectCreated(await register({ software_statement: await ssa({ software_id: softwareId }) }));
    const second = await expectRejected({ software_statement: await ssa({ software_id: softwareId }) }, 'invalid_client_metadata');
    expect(String(second.body.error_description)).toContain('RFC 7592');
  });

  test('a body that is not a JSON object, or larger than 64 KiB → invalid_client_metadata', async () => {
    const statement = await ssa();
    await expectRejected(undefined, 'invalid_client_metadata', { raw: '{"software_statement":' });
    await expectRejected(undefined, 'invalid_client_metadata', { raw: JSON.stringify({ software_statement: statement }), contentType: 'text/plain' });
    await expectRejected(undefined, 'invalid_client_metadata', { raw: `software_statement=${statement}`, contentType: 'application/x-www-form-urlencoded' });
    await expectRejected([{ software_statement: statement }], 'invalid_client_metadata');
    await expectRejected(undefined, 'invalid_client_metadata', { raw: 'null' });
    await expectRejected({ software_statement: statement, padding: 'x'.repeat(70 * 1024) }, 'invalid_client_metadata');
    // none of these consumed the SSA
    expectCreated(await register({ software_statement: statement }));
  });
});

describe('roles', () => {
  test('an AISP-only client: account_information only, no payments scope, and PAR refuses payment_initiation', async () => {
    const softwareId = `sw-aisp-${Date.now()}`;
    await expectRejected({ software_statement: await ssa({ software_id: softwareId, software_roles: ['AISP'] }), scope: 'openid accounts payments' }, 'invalid_client_metadata');

    const body = expectCreated(await register({
      software_statement: await ssa({ software_id: softwareId, software_roles: ['AISP'] }),
      redirect_uris: [CALLBACK],
      // a client cannot grant itself more than its roles
      authorization_details_types: ['account_information', 'payment_initiation'],
    }));
    expect(body.authorization_details_types).toEqual(['account_information']);
    expect(String(body.scope).split(' ')).not.toContain('payments');
    expect(String(body.scope).split(' ')).toContain('accounts');

    const config = await clientConfig(app, body.client_id as string);
    const dpop = client.getDPoPHandle(config, await client.randomDPoPKeyPair('ES256'));
    const par = (details: unknown[]) => client.buildAuthorizationUrlWithPAR(config, {
      redirect_uri: CALLBACK,
      scope: 'openid accounts',
      code_challenge: pkcePair().challenge,
      code_challenge_method: 'S256',
      state: client.randomState(),
      authorization_details: JSON.stringify(details),
    }, { DPoP: dpop });

    await expect(par([{
      type: 'payment_initiation',
      instructedAmount: { currency: 'GBP', amount: '10.00' },
      creditorName: 'Corner Shop Ltd',
      creditorAccount: { iban: 'GB33BUKB20201555555555' },
    }])).rejects.toMatchObject({ error: 'invalid_authorization_details' });
    const accepted = await par([{ type: 'account_information', actions: ['list_accounts', 'read_balances'] }]);
    expect(accepted.searchParams.get('request_uri')).toMatch(/^urn:ietf:params:oauth:request_uri:/);
  });

  test('a PISP-only client gets payment_initiation and the payments scope only', async () => {
    const body = expectCreated(await register({ software_statement: await ssa({ software_roles: ['PISP'] }) }));
    expect(body.authorization_details_types).toEqual(['payment_initiation']);
    expect(String(body.scope).split(' ')).toContain('payments');
    expect(String(body.scope).split(' ')).not.toContain('accounts');
  });
});

describe('the directory\'s JWKS', () => {
  test('key rollover: a key added to the directory is picked up (SSA_JWKS_COOLDOWN_SECONDS=1)', async () => {
    const first = await keyPair('ES256');
    const rollover = await startInstance([first], { SSA_JWKS_COOLDOWN_SECONDS: '1' });
    expectCreated(await register({ software_statement: await ssa({}, {}, first) }, rollover.app));
    expect(rollover.directory.fetches()).toBe(1);

    const second = await keyPair('PS256');
    await rollover.directory.setKeys([first, second]);
    const softwareId = `sw-rollover-${Date.now()}`;
    const before = await countClients(rollover.app);
    const accepted = await pollUntil(async () => {
      const response = await register({ software_statement: await ssa({ software_id: softwareId }, {}, second) }, rollover.app);
      if (response.status === 201) return response;
      // while the old JWKS is cached the key is unknown: nothing else may go wrong
      expect({ status: response.status, error: response.body.error }).toEqual({ status: 400, error: 'unapproved_software_statement' });
      return undefined;
    }, 5000);
    expect(accepted.body.software_id).toBe(softwareId);
    expect(await countClients(rollover.app)).toBe(before + 1);
    expect(rollover.directory.fetches()).toBeGreaterThanOrEqual(2);
    // the old key still works after the rollover
    expectCreated(await register({ software_statement: await ssa({}, {}, first) }, rollover.app));
  });

  test('a flood of SSAs with unknown kids fetches the directory JWKS at most twice (default cooldown)', async () => {
    const trusted = await keyPair('ES256');
    const flood = await startInstance([trusted]);
    const before = await countClients(flood.app);
    for (let i = 0; i < 20; i += 1) {
      const stranger = await keyPair('ES256', `unknown-kid-${i}`);
      await expectRejected({ software_statement: await ssa({}, {}, stranger) }, 'unapproved_software_statement', {}, flood.app);
    }
    expect(flood.directory.fetches()).toBeGreaterThanOrEqual(1);
    expect(flood.directory.fetches()).toBeLessThanOrEqual(2);
    expect(await countClients(flood.app)).toBe(before);
    // the directory's real key still works, from the cache
    expectCreated(await register({ software_statement: await ssa({}, {}, trusted) }, flood.app));
    expect(flood.directory.fetches()).toBeLessThanOrEqual(2);
  });
});

describe('discovery', () => {
  test('with a directory, discovery names the registration endpoint', async () => {
    const discovery = await (await fetch(`${app.url}/.well-known/openid-configuration`)).json() as Record<string, unknown>;
    expect(discovery.registration_endpoint).toBe(`${app.url}/reg`);
  });

  test('without SSA_ISSUER / SSA_JWKS_URI there is no registration endpoint and POST /reg registers nothing', async () => {
    const database = await createTestDatabase();
    const plain = await startTestApp(database, { FETCH_ALLOW_PRIVATE_NETWORKS: 'true' });
    const directory = await startJwksHost([]);
    instances.push({ database, app: plain, directory });

    const discovery = await (await fetch(`${plain.url}/.well-known/openid-configuration`)).json() as Record<string, unknown>;
    expect(discovery.issuer).toBe(plain.url);
    expect(discovery.registration_endpoint).toBeUndefined();

    const before = await countClients(plain);
    const response = await register({ software_statement: await ssa(), redirect_uris: [CALLBACK] }, plain);
    expect(response.status).not.toBe(201);
    expect(response.status).toBeGreaterThanOrEqual(400);
    expect(response.status).toBeLessThan(500);
    expect(response.body.client_id).toBeUndefined();
    expect(response.body.registration_access_token).toBeUndefined();
    expect(await countClients(plain)).toBe(before);
    // without a software statement either
    const bare = await register({ redirect_uris: [CALLBACK], jwks_uri: tppHost.url, token_endpoint_auth_method: 'private_key_jwt' }, plain);
    expect(bare.status).not.toBe(201);
    expect(await countClients(plain)).toBe(before);
  });
});
