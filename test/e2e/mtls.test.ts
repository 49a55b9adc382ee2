import { X509Certificate, createHash } from 'node:crypto';

import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import * as oauth from 'oauth4webapi';
import * as client from 'openid-client';
import { Agent, fetch as undiciFetch } from 'undici';

import { startTestApp, type TestApp } from '../support/app.js';
import { FormBrowser } from '../support/browser.js';
import { createPki, type Pki } from '../support/certificates.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';
import { createCustomer, REDIRECT_URI, signInAndConsent, type Customer } from '../support/tpp.js';

/**
 * PAR + tls_client_auth + certificate-bound tokens over real TLS (certificates made by
 * openssl for this test), with both independent clients; and the proxy-header path.
 */
let pki: Pki;
let database: TestDatabase;
let app: TestApp;
let alice: Customer;
let tppCert: { cert: string; key: string };
let otherCert: { cert: string; key: string };
let selfSigned: { cert: string; key: string };

function tlsFetch(identity?: { cert: string; key: string }): typeof fetch {
  const agent = new Agent({ connect: { ca: pki.ca, ...(identity === undefined ? {} : { cert: identity.cert, key: identity.key }) } });
  return ((url: string | URL | Request, init?: RequestInit) => undiciFetch(url as never, { ...(init as object), dispatcher: agent } as never)) as unknown as typeof fetch;
}

function thumbprint(pem: string): string {
  return createHash('sha256').update(new X509Certificate(pem).raw).digest('base64url');
}

async function mtlsClient(auth: Record<string, unknown>, identity: { cert: string; key: string }) {
  const created = await app.container.clients.createClient({
    client_name: 'Cert TPP',
    redirect_uris: [REDIRECT_URI],
    scope: 'openid offline_access accounts',
    tls_client_certificate_bound_access_tokens: true,
    grant_types: ['authorization_code', 'refresh_token', 'client_credentials'],
    ...auth,
  });
  const config = await client.discovery(new URL(app.url), created.client_id, { use_mtls_endpoint_aliases: true }, client.TlsClientAuth(), {
    [client.customFetch]: tlsFetch(identity),
  });
  config[client.customFetch] = tlsFetch(identity);
  return { clientId: created.client_id, config };
}

async function resourceServerOverTls() {
  const rs = await app.container.clients.createResourceServer('Bank API');
  const config = await client.discovery(new URL(app.url), rs.client_id, rs.client_secret, client.ClientSecretBasic(rs.client_secret), { [client.customFetch]: tlsFetch() });
  config[client.customFetch] = tlsFetch();
  return config;
}

async function authorize(config: client.Configuration) {
  const codeVerifier = client.randomPKCECodeVerifier();
  const state = client.randomState();
  const url = await client.buildAuthorizationUrlWithPAR(config, {
    redirect_uri: REDIRECT_URI, scope: 'openid offline_access accounts', prompt: 'consent', state,
    code_challenge: await client.calculatePKCECodeChallenge(codeVerifier), code_challenge_method: 'S256',
  });
  const callback = await signInAndConsent({ url, codeVerifier, state }, alice, { browser: new FormBrowser(tlsFetch()) });
  return { callback, codeVerifier, state };
}

beforeAll(async () => {
  pki = createPki();
  tppCert = pki.client('tpp', '/C=GB/O=Fintech Ltd/CN=tpp-one');
  otherCert = pki.client('other', '/C=GB/O=Other Ltd/CN=tpp-two');
  selfSigned = pki.client('self', '/CN=self-signed-tpp', { selfSigned: true });
  database = await createTestDatabase();
  app = await startTestApp(database, { TLS_CERT_FILE: pki.server.certFile, TLS_KEY_FILE: pki.server.keyFile, TLS_CLIENT_CA_FILE: pki.caFile });
  alice = await createCustomer(app);
}, 60_000);

afterAll(async () => {
  await app?.close();
  await database?.drop();
  pki?.cleanup();
});

describe('tls_client_auth + certificate-bound tokens over TLS', () => {
  test('openid-client: PAR, pages, code, userinfo; introspection shows cnf.x5t#S256', async () => {
    // RFC 4514 order and spacing differ from the certificate's: matching normalises.
    const tpp = await mtlsClient({ token_endpoint_auth_method: 'tls_client_auth', tls_client_auth_subject_dn: 'CN=tpp-one, O=Fintech Ltd, C=GB' }, tppCert);
    const rs = await resourceServerOverTls();
    const { callback, codeVerifier, state } = await authorize(tpp.config);
    const tokens = await client.authorizationCodeGrant(tpp.config, callback, { pkceCodeVerifier: codeVerifier, expectedState: state });
    expect(tokens.token_type.toLowerCase()).toBe('bearer');
    expect(await client.fetchUserInfo(tpp.config, tokens.access_token, client.skipSubjectCheck)).toMatchObject({ sub: alice.id });

    const introspected = await client.tokenIntrospection(rs, tokens.access_token);
    expect(introspected).toMatchObject({ active: true, client_id: tpp.clientId, cnf: { 'x5t#S256': thumbprint(tppCert.cert) } });

    // The token is bound to the certificate: presented with another one, it is refused.
    const stolen = await tlsFetch(otherCert)(`${app.url}/me`, { headers: { authorization: `Bearer ${tokens.access_token}` } });
    expect(stolen.status).toBe(401);
    expect(stolen.headers.get('www-authenticate')).toMatch(/invalid_token/);
    const withoutCert = await tlsFetch()(`${app.url}/me`, { headers: { authorization: `Bearer ${tokens.access_token}` } });
    expect(withoutCert.status).toBe(401);
  });

  test('oauth4webapi: PAR + tls_client_auth, code, refresh keeps the certificate binding', async () => {
    const tpp = await mtlsClient({ token_endpoint_auth_method: 'tls_client_auth', tls_client_auth_subject_dn: 'C=GB,O=Fintech Ltd,CN=tpp-one' }, tppCert);
    const rs = await resourceServerOverTls();
    const options = { [oauth.customFetch]: tlsFetch(tppCert) };
    const as = await oauth.processDiscoveryResponse(new URL(app.url), await oauth.discoveryRequest(new URL(app.url), { [oauth.customFetch]: tlsFetch() }));
    const oauthClient: oauth.Client = { client_id: tpp.clientId, use_mtls_endpoint_aliases: true };
    const clientAuth = oauth.TlsClientAuth();
    const codeVerifier = oauth.generateRandomCodeVerifier();
    const state = oauth.generateRandomState();
    const parResponse = await oauth.pushedAuthorizationRequest(as, oauthClient, clientAuth, {
      redirect_uri: REDIRECT_URI, response_type: 'code', scope: 'openid offline_access accounts', prompt: 'consent', state,
      code_challenge: await oauth.calculatePKCECodeChallenge(codeVerifier), code_challenge_method: 'S256',
    }, options);
    const { request_uri: requestUri } = await oauth.processPushedAuthorizationResponse(as, oauthClient, parResponse);
    const url = new URL(as.authorization_endpoint!);
    url.searchParams.set('client_id', tpp.clientId);
    url.searchParams.set('request_uri', requestUri);
    const callback = await signInAndConsent({ url, codeVerifier, state }, alice, { browser: new FormBrowser(tlsFetch()) });
    const params = oauth.validateAuthResponse(as, oauthClient, callback, state);
    const tokens = await oauth.processAuthorizationCodeResponse(as, oauthClient,
      await oauth.authorizationCodeGrantRequest(as, oauthClient, clientAuth, params, REDIRECT_URI, codeVerifier, options));
    const refreshed = await oauth.processRefreshTokenResponse(as, oauthClient,
      await oauth.refreshTokenGrantRequest(as, oauthClient, clientAuth, tokens.refresh_token!, options));
    expect(await client.tokenIntrospection(rs, refreshed.access_token)).toMatchObject({ active: true, cnf: { 'x5t#S256': thumbprint(tppCert.cert) } });
  });

  test('self_signed_tls_client_auth: the registered certificate authenticates, another does not', async () => {
    const cert = new X509Certificate(selfSigned.cert);
    const jwk = { ...cert.publicKey.export({ format: 'jwk' }), x5c: [cert.raw.toString('base64')], kid: 'self' };
    const tpp = await mtlsClient({ token_endpoint_auth_method: 'self_signed_tls_client_auth', jwks: { keys: [jwk] } }, selfSigned);
    const tokens = await client.clientCredentialsGrant(tpp.config, { scope: 'accounts' });
    expect(tokens.access_token).toBeTruthy();

    const wrong = await client.discovery(new URL(app.url), tpp.clientId, { use_mtls_endpoint_aliases: true }, client.TlsClientAuth(), { [client.customFetch]: tlsFetch(tppCert) });
    wrong[client.customFetch] = tlsFetch(tppCert);
    await expect(client.clientCredentialsGrant(wrong, { scope: 'accounts' })).rejects.toMatchObject({ error: 'invalid_client' });
  });

  test('a certificate whose subject differs from the registered DN, or none at all, is invalid_client', async () => {
    const tpp = await mtlsClient({ token_endpoint_auth_method: 'tls_client_auth', tls_client_auth_subject_dn: 'CN=tpp-one,O=Fintech Ltd,C=GB' }, otherCert);
    await expect(client.clientCredentialsGrant(tpp.config, { scope: 'accounts' })).rejects.toMatchObject({ error: 'invalid_client' });
    const noCert = await client.discovery(new URL(app.url), tpp.clientId, { use_mtls_endpoint_aliases: true }, client.TlsClientAuth(), { [client.customFetch]: tlsFetch() });
    noCert[client.customFetch] = tlsFetch();
    await expect(client.clientCredentialsGrant(noCert, { scope: 'accounts' })).rejects.toMatchObject({ error: 'invalid_client' });
  });

  test('a self-signed certificate with the registered DN is not accepted for tls_client_auth (chain required)', async () => {
    const forged = pki.client('forged', '/C=GB/O=Fintech Ltd/CN=tpp-one', { selfSigned: true });
    const tpp = await mtlsClient({ token_endpoint_auth_method: 'tls_client_auth', tls_client_auth_subject_dn: 'CN=tpp-one,O=Fintech Ltd,C=GB' }, forged);
    await expect(client.clientCredentialsGrant(tpp.config, { scope: 'accounts' })).rejects.toMatchObject({ error: 'invalid_client' });
  });
});

describe('client certificate from a TLS-terminating proxy', () => {
  test('the header is ignored unless TRUSTED_PROXY_CERT_HEADER is configured', async () => {
    const plainDb = await createTestDatabase();
    const plain = await startTestApp(plainDb);
    const proxied = await startTestApp(plainDb, { TRUSTED_PROXY_CERT_HEADER: 'X-Client-Cert', TLS_CLIENT_CA_FILE: pki.caFile });
    try {
      const created = await plain.container.clients.createClient({
        client_name: 'Proxy TPP', redirect_uris: [], response_types: [], grant_types: ['client_credentials'],
        tls_client_certificate_bound_access_tokens: true, token_endpoint_auth_method: 'tls_client_auth', tls_client_auth_subject_dn: 'CN=tpp-one,O=Fintech Ltd,C=GB',
      });
      const body = new URLSearchParams({ grant_type: 'client_credentials', client_id: created.client_id, scope: 'accounts' });
      const headers = { 'content-type': 'application/x-www-form-urlencoded', 'x-client-cert': encodeURIComponent(tppCert.cert) };

      const ignored = await fetch(`${plain.url}/token`, { method: 'POST', body, headers });
      expect(ignored.status).toBe(401);
      expect(await ignored.json()).toMatchObject({ error: 'invalid_client' });

      const accepted = await fetch(`${proxied.url}/token`, { method: 'POST', body, headers });
      expect(accepted.status).toBe(200);
      const { access_token: accessToken } = await accepted.json() as { access_token: string };
      const row = await proxied.container.database.db.selectFrom('oidc_models').select('payload').where('model', '=', 'ClientCredentials').execute();
      expect(row.some((r) => (r.payload as Record<string, unknown>)['x5t#S256'] === thumbprint(tppCert.cert))).toBe(true);
      expect(accessToken).toBeTruthy();

      // A certificate that does not chain to the configured CA is refused even from the proxy.
      const forged = pki.client('proxy-forged', '/C=GB/O=Fintech Ltd/CN=tpp-one', { selfSigned: true });
      const refused = await fetch(`${proxied.url}/token`, { method: 'POST', body, headers: { ...headers, 'x-client-cert': encodeURIComponent(forged.cert) } });
      expect(refused.status).toBe(401);
    } finally {
      await proxied.close();
      await plain.close();
      await plainDb.drop();
    }
  });
});
