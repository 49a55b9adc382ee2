import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, beforeAll, expect, test } from '@jest/globals';
import { exportJWK, generateKeyPair } from 'jose';
import * as client from 'openid-client';

import { createTestDatabase, usingPostgres, type TestDatabase } from '../support/database.js';
import { runCli, startServerProcess } from '../support/processes.js';
import { pushAuthorization, REDIRECT_URI, signInAndConsent, type Tpp } from '../support/tpp.js';

/**
 * The real entry points, as an operator runs them: the CLI sets up a customer, a TPP and
 * a resource server; `node dist/src/main.js` serves; a restart keeps users, clients,
 * keys and live tokens. Without TEST_DATABASE_URL this is the zero-set-up path: embedded
 * database and a development MASTER_KEY generated into DATA_DIR.
 */
let database: TestDatabase | undefined;
let dataDir: string;
let env: Record<string, string>;

beforeAll(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'portcullis-restart-'));
  env = { DATA_DIR: dataDir, ARGON2_MEMORY_KIB: '19456', ARGON2_TIME_COST: '2' };
  if (usingPostgres()) {
    database = await createTestDatabase();
    env.DATABASE_URL = database.url!;
    env.MASTER_KEY = Buffer.alloc(32, 9).toString('base64');
  }
}, 60_000);

afterAll(async () => {
  await database?.drop();
  rmSync(dataDir, { recursive: true, force: true });
});

test('CLI set-up, serve, restart: users, clients, keys and live tokens survive', async () => {
  const password = 'a long and unguessable passphrase';
  const user = await runCli(['user', 'create', '--username', 'Carol', '--password-stdin', '--name', 'Carol Example', '--json'], env, `${password}\n`);
  expect(user.code).toBe(0);
  const created = JSON.parse(user.stdout) as { id: string; username: string };
  expect(created.username).toBe('carol');
  expect(Object.keys(created).sort()).toEqual(['id', 'username']);

  expect((await runCli(['account', 'add', '--username', 'carol', '--id', 'carol-1', '--name', 'Everyday', '--iban', 'GB82WEST12345698765432', '--currency', 'GBP', '--balance', '99.95'], env)).code).toBe(0);

  const rsOut = await runCli(['resource-server', 'create', '--name', 'Accounts API', '--json'], env);
  expect(rsOut.code).toBe(0);
  const rsCredentials = JSON.parse(rsOut.stdout) as { client_id: string; client_secret: string };

  const { publicKey, privateKey } = await generateKeyPair('PS256', { extractable: true });
  const metadata = { client_name: 'Restart TPP', redirect_uris: [REDIRECT_URI], jwks: { keys: [{ ...(await exportJWK(publicKey)), kid: 'k1', alg: 'PS256', use: 'sig' }] }, scope: 'openid offline_access accounts' };
  const tppOut = await runCli(['client', 'create', '--metadata-file', '-', '--json'], env, JSON.stringify(metadata));
  expect(tppOut.code).toBe(0);
  const clientId = (JSON.parse(tppOut.stdout) as { client_id: string }).client_id;

  let server = await startServerProcess(env);
  try {
    if (!usingPostgres()) {
      expect(existsSync(join(dataDir, 'master.key'))).toBe(true);
      // The embedded database belongs to one process: the CLI refuses while the server runs.
      const refused = await runCli(['keys', 'list'], env);
      expect(refused.code).toBe(1);
      expect(refused.stderr).toMatch(/in use by process/);
    }

    const discoveryOptions = { execute: [client.allowInsecureRequests] };
    const config = await client.discovery(new URL(server.url), clientId, { token_endpoint_auth_method: 'private_key_jwt' }, client.PrivateKeyJwt({ key: privateKey, kid: 'k1' }), discoveryOptions);
    const dpopKeys = await client.randomDPoPKeyPair('ES256');
    const tpp: Tpp = { clientId, config, dpop: client.getDPoPHandle(config, dpopKeys), dpopKeys };
    const started = await pushAuthorization(tpp, { scope: 'openid offline_access accounts' });
    const callback = await signInAndConsent(started, { id: created.id, username: 'carol', password });
    const tokens = await client.authorizationCodeGrant(config, callback, { pkceCodeVerifier: started.codeVerifier, expectedState: started.state }, undefined, { DPoP: tpp.dpop });
    const jwksBefore = await (await fetch(`${server.url}/jwks`)).json();

    expect(await server.stop()).toBe(0);
    if (!usingPostgres()) expect(existsSync(join(dataDir, 'portcullis.pid'))).toBe(false);

    server = await startServerProcess(env, Number(new URL(server.url).port));
    expect(await (await fetch(`${server.url}/jwks`)).json()).toEqual(jwksBefore);

    const rs = await client.discovery(new URL(server.url), rsCredentials.client_id, rsCredentials.client_secret, client.ClientSecretBasic(rsCredentials.client_secret), discoveryOptions);
    expect(await client.tokenIntrospection(rs, tokens.access_token)).toMatchObject({ active: true, sub: created.id, client_id: clientId });

    // Keys, client and grant survived: the refresh token issued before the restart works,
    // and the customer signs in again with the same password.
    const refreshed = await client.refreshTokenGrant(config, tokens.refresh_token!, undefined, { DPoP: tpp.dpop });
    expect(await client.tokenIntrospection(rs, refreshed.access_token)).toMatchObject({ active: true, sub: created.id });
    const again = await pushAuthorization(tpp, { scope: 'openid accounts' });
    expect((await signInAndConsent(again, { id: created.id, username: 'carol', password })).searchParams.get('code')).toBeTruthy();
  } finally {
    await server.stop();
  }
}, 120_000);
