import { afterAll, beforeAll, expect, test } from '@jest/globals';

import { startTestApp, type TestApp } from '../support/app.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';

let database: TestDatabase;
let app: TestApp;

beforeAll(async () => {
  database = await createTestDatabase();
  app = await startTestApp(database);
});

afterAll(async () => {
  await app?.close();
  await database?.drop();
});

test('discovery advertises exactly the FAPI 2.0 choices', async () => {
  const metadata = await (await fetch(`${app.url}/.well-known/openid-configuration`)).json() as Record<string, unknown>;
  const signing = ['ES256', 'EdDSA', 'PS256'];
  const sorted = (key: string) => [...(metadata[key] as string[])].sort();

  expect(metadata.require_pushed_authorization_requests).toBe(true);
  expect(metadata.pushed_authorization_request_endpoint).toBe(`${app.url}/request`);
  expect(metadata.code_challenge_methods_supported).toEqual(['S256']);
  expect(metadata.response_types_supported).toEqual(['code']);
  expect(sorted('grant_types_supported')).toEqual(['authorization_code', 'client_credentials', 'refresh_token']);
  expect(sorted('token_endpoint_auth_methods_supported')).toEqual(['private_key_jwt', 'self_signed_tls_client_auth', 'tls_client_auth']);
  expect(sorted('introspection_endpoint_auth_methods_supported')).toEqual(['client_secret_basic', 'private_key_jwt', 'self_signed_tls_client_auth', 'tls_client_auth']);
  expect(metadata.authorization_response_iss_parameter_supported).toBe(true);
  expect(metadata.tls_client_certificate_bound_access_tokens).toBe(true);
  expect(metadata.mtls_endpoint_aliases).toMatchObject({ token_endpoint: `${app.url}/token`, pushed_authorization_request_endpoint: `${app.url}/request` });
  expect(sorted('dpop_signing_alg_values_supported')).toEqual(signing);
  for (const key of ['id_token_signing_alg_values_supported', 'token_endpoint_auth_signing_alg_values_supported', 'request_object_signing_alg_values_supported',
    'authorization_signing_alg_values_supported', 'introspection_signing_alg_values_supported', 'userinfo_signing_alg_values_supported']) {
    if (metadata[key] !== undefined) expect(sorted(key)).toEqual(signing);
  }
  expect(sorted('request_object_signing_alg_values_supported')).toEqual(signing);
  expect(sorted('authorization_signing_alg_values_supported')).toEqual(signing);
  expect(metadata.response_modes_supported).toEqual(expect.arrayContaining(['jwt']));
  expect(JSON.stringify(metadata)).not.toMatch(/RS256|HS256|"none"/);
  expect(metadata.request_uri_parameter_supported).toBe(false);
});

test('the JWKS publishes only PS256, ES256 and EdDSA public keys', async () => {
  const { keys } = await (await fetch(`${app.url}/jwks`)).json() as { keys: Record<string, unknown>[] };
  expect(keys.map((k) => k.alg).sort()).toEqual(['ES256', 'EdDSA', 'PS256']);
  for (const key of keys) {
    expect(key).not.toHaveProperty('d');
    expect(key.use).toBe('sig');
  }
});
