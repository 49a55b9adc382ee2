import { exportJWK, generateKeyPair } from 'jose';
import * as client from 'openid-client';

import type { TestApp } from './app.js';
import { FormBrowser, requirePage } from './browser.js';

export const REDIRECT_URI = 'https://tpp.example/callback';

export interface Tpp {
  readonly clientId: string;
  readonly config: client.Configuration;
  readonly dpop: client.DPoPHandle;
  readonly dpopKeys: client.CryptoKeyPair;
}

/** A TPP registered with the CLI's service: private_key_jwt (ES256), DPoP-bound tokens, PAR. */
export async function registerTpp(app: TestApp, extra: Record<string, unknown> = {}): Promise<Tpp> {
  const { publicKey, privateKey } = await generateKeyPair('ES256', { extractable: true });
  const jwk = { ...(await exportJWK(publicKey)), kid: 'tpp-key-1', alg: 'ES256', use: 'sig' };
  const created = await app.container.clients.createClient({
    client_name: 'Budget Buddy',
    redirect_uris: [REDIRECT_URI],
    jwks: { keys: [jwk] },
    scope: 'openid profile email offline_access accounts payments grant_management_query grant_management_revoke',
    ...extra,
  });
  const config = await client.discovery(
    new URL(app.url),
    created.client_id,
    { token_endpoint_auth_method: 'private_key_jwt' },
    client.PrivateKeyJwt({ key: privateKey, kid: 'tpp-key-1' }),
    { execute: [client.allowInsecureRequests] },
  );
  const dpopKeys = await client.randomDPoPKeyPair('ES256');
  return { clientId: created.client_id, config, dpop: client.getDPoPHandle(config, dpopKeys), dpopKeys };
}

export async function resourceServer(app: TestApp): Promise<client.Configuration> {
  const rs = await app.container.clients.createResourceServer('Bank API');
  return client.discovery(new URL(app.url), rs.client_id, rs.client_secret, client.ClientSecretBasic(rs.client_secret), {
    execute: [client.allowInsecureRequests],
  });
}

export interface Customer {
  readonly id: string;
  readonly username: string;
  readonly password: string;
}

export async function createCustomer(app: TestApp, username = 'alice', password = 'correct horse battery staple'): Promise<Customer> {
  const created = await app.container.customers.create({ username, password, name: 'Alice Example', email: `${username}@example.com` });
  await app.container.customers.addBankAccount(username, { id: `${username}-current`, name: 'Current account', iban: 'GB82WEST12345698765432', currency: 'GBP', balance: '1250.00' });
  await app.container.customers.addBankAccount(username, { id: `${username}-savings`, name: 'Savings', iban: 'DE89370400440532013000', currency: 'EUR', balance: '10.50' });
  return { id: created.id, username, password };
}

export interface StartedAuthorization {
  readonly url: URL;
  readonly codeVerifier: string;
  readonly state: string;
}

export async function pushAuthorization(tpp: Tpp, params: Record<string, string> = {}): Promise<StartedAuthorization> {
  const codeVerifier = client.randomPKCECodeVerifier();
  const state = client.randomState();
  const url = await client.buildAuthorizationUrlWithPAR(tpp.config, {
    redirect_uri: REDIRECT_URI,
    scope: 'openid profile accounts offline_access',
    code_challenge: await client.calculatePKCECodeChallenge(codeVerifier),
    code_challenge_method: 'S256',
    state,
    // OIDC Core §11: offline_access (a refresh token) needs prompt=consent.
    prompt: 'consent',
    ...params,
  }, { DPoP: tpp.dpop });
  return { url, codeVerifier, state };
}

/** A customer signs in and consents through the real pages; returns the callback URL. */
export async function signInAndConsent(
  started: StartedAuthorization,
  customer: Customer,
  { decision = 'allow', accounts, browser = new FormBrowser() }: { decision?: 'allow' | 'deny'; accounts?: string[]; browser?: FormBrowser } = {},
): Promise<URL> {
  const login = requirePage(await browser.navigate(started.url.toString()));
  let result = await browser.submit(login, 'form[action$="/login"]', { username: customer.username, password: customer.password });
  if (result.page !== undefined) {
    const consent = result.page;
    const chosen = accounts ?? consent.document.querySelectorAll('input[name=accounts]').map((i) => i.getAttribute('value') ?? '');
    result = await browser.submit(consent, 'form[action$="/consent"]', { accounts: chosen }, { name: 'decision', value: decision });
  }
  if (result.leftTo === undefined) throw new Error(`expected a redirect to the client, got a page: ${result.page?.html.slice(0, 300)}`);
  return new URL(result.leftTo);
}

export async function authorizeAndRedeem(tpp: Tpp, customer: Customer, params: Record<string, string> = {}) {
  const started = await pushAuthorization(tpp, params);
  const callback = await signInAndConsent(started, customer);
  return client.authorizationCodeGrant(tpp.config, callback, { pkceCodeVerifier: started.codeVerifier, expectedState: started.state }, undefined, { DPoP: tpp.dpop });
}
