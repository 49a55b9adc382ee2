import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import * as client from 'openid-client';

import { createAdminApp } from '../../src/admin/app.js';
import { ADMIN_OPENAPI } from '../../src/admin/openapi.js';
import { startTestApp, type TestApp } from '../support/app.js';
import { FormBrowser, requirePage } from '../support/browser.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';
import { enrolTotp } from '../support/sca.js';
import { createCustomer, pushAuthorization, registerTpp, type Tpp } from '../support/tpp.js';

let database: TestDatabase;
let app: TestApp;
let admin: Server;
let adminUrl: string;
let tpp: Tpp;
let writeKey: string;
let readKey: string;
let customers = 0;

beforeAll(async () => {
  database = await createTestDatabase();
  app = await startTestApp(database);
  admin = createServer(createAdminApp(app.container).callback());
  await new Promise<void>((resolve) => admin.listen(0, '127.0.0.1', resolve));
  adminUrl = `http://127.0.0.1:${(admin.address() as AddressInfo).port}/admin/v1`;
  tpp = await registerTpp(app);
  writeKey = (await app.container.apiKeys.create('payments api', ['admin:read', 'admin:write'], { actor: 'test' })).key;
  readKey = (await app.container.apiKeys.create('reporting', ['admin:read'], { actor: 'test' })).key;
});

afterAll(async () => {
  admin?.closeAllConnections();
  await new Promise<void>((resolve) => (admin ? admin.close(() => resolve()) : resolve()));
  await app?.close();
  await database?.drop();
});

const call = (method: string, path: string, key?: string) => fetch(`${adminUrl}${path}`, { method, headers: key === undefined ? {} : { authorization: `Bearer ${key}` } });

async function consent(type: 'payment' | 'accounts'): Promise<string> {
  customers += 1;
  const customer = await createCustomer(app, `admin${customers}`, 'admin test password');
  const { authenticator } = await enrolTotp(app, customer);
  const details = type === 'payment'
    ? [{ type: 'payment_initiation', instructedAmount: { currency: 'GBP', amount: '12.00' }, creditorName: 'Shop', creditorAccount: { iban: 'GB33BUKB20201555555555' } }]
    : [{ type: 'account_information', actions: ['list_accounts'] }];
  const started = await pushAuthorization(tpp, { scope: type === 'payment' ? 'openid payments' : 'openid accounts', authorization_details: JSON.stringify(details) });
  const browser = new FormBrowser();
  const login = requirePage(await browser.navigate(started.url.toString()));
  const page = requirePage(await browser.submit(login, 'form[action$="/login"]', { username: customer.username, password: customer.password, otp: await authenticator.code() }));
  const fields: Record<string, string | string[]> = type === 'payment' ? { debtor_account: `${customer.username}-current` } : { accounts: [`${customer.username}-current`] };
  const result = await browser.submit(page, 'form[action$="/consent"]', fields, { name: 'decision', value: 'allow' });
  const tokens = await client.authorizationCodeGrant(tpp.config, new URL(result.leftTo!), { pkceCodeVerifier: started.codeVerifier, expectedState: started.state }, undefined, { DPoP: tpp.dpop });
  return String(tokens.grant_id);
}

describe('admin API authentication', () => {
  test('no key, a malformed or unknown key: 401 with the error envelope', async () => {
    for (const key of [undefined, 'nonsense', 'pcak_AAAA']) {
      const response = await call('GET', '/keys', key);
      expect(response.status).toBe(401);
      const body = await response.json() as { error: { code: string; request_id: string } };
      expect(body.error.code).toBe('UNAUTHENTICATED');
      expect(body.error.request_id).toBe(response.headers.get('x-request-id'));
    }
  });

  test('a read-only key cannot change anything: 403', async () => {
    expect((await call('GET', '/keys', readKey)).status).toBe(200);
    expect((await call('POST', '/keys/rotate', readKey)).status).toBe(403);
  });

  test('a revoked or expired key stops working', async () => {
    const { id, key } = await app.container.apiKeys.create('temporary', ['admin:read'], { actor: 'test' }, 1);
    expect((await call('GET', '/keys', key)).status).toBe(200);
    await app.container.apiKeys.revoke(id, { actor: 'test' });
    expect((await call('GET', '/keys', key)).status).toBe(401);
    const stored = await app.container.database.db.selectFrom('api_keys').select(['key_hash', 'last_used_at']).where('id', '=', id).executeTakeFirstOrThrow();
    expect(stored.key_hash).not.toContain(key);
    expect(stored.last_used_at).not.toBeNull();
  });

  test('unknown routes are JSON 404s', async () => {
    const response = await call('GET', '/nope', writeKey);
    expect(response.status).toBe(404);
    expect(await response.json()).toMatchObject({ error: { code: 'NOT_FOUND' } });
  });
});

describe('consents', () => {
  test('the payment API marks a payment consent consumed exactly once, even when racing', async () => {
    const grantId = await consent('payment');
    const attempts = await Promise.all(Array.from({ length: 10 }, () => call('POST', `/consents/${grantId}/consume`, writeKey)));
    expect(attempts.map((r) => r.status).sort()).toEqual([200, ...Array<number>(9).fill(409)]);
    expect(await (await call('GET', `/consents/${grantId}`, readKey)).json()).toMatchObject({ status: 'consumed', type: 'payment_initiation' });
    const events = await app.container.database.db.selectFrom('audit_events').select('actor').where('type', '=', 'consent.consumed').execute();
    expect(events).toHaveLength(1);
    expect(events[0]!.actor).toMatch(/^apikey:/);
  });

  test('an account-information consent cannot be consumed; unknown ids are 404', async () => {
    const grantId = await consent('accounts');
    expect((await call('POST', `/consents/${grantId}/consume`, writeKey)).status).toBe(409);
    expect((await call('POST', '/consents/unknown/consume', writeKey)).status).toBe(404);
    const list = await (await call('GET', `/consents?client_id=${tpp.clientId}`, readKey)).json() as { consents: { grant_id: string }[] };
    expect(list.consents.map((c) => c.grant_id)).toContain(grantId);
    expect((await call('GET', '/consents?user_id=not-a-uuid', readKey)).status).toBe(400);
  });
});

test('the OpenAPI document lists exactly the routes the admin app serves', async () => {
  const served = await (await call('GET', '/openapi.json')).json() as typeof ADMIN_OPENAPI;
  expect(served.openapi).toBe('3.1.0');
  const documented = Object.entries(served.paths).flatMap(([path, ops]) => Object.keys(ops).map((m) => `${m.toUpperCase()} ${path}`)).sort();
  const routes = (createAdminApp(app.container).middleware as unknown as { router?: { stack: { path: string; methods: string[] }[] } }[])
    .flatMap((mw) => mw.router?.stack ?? [])
    .flatMap((layer) => layer.methods.filter((m) => m !== 'HEAD').map((m) => `${m} ${layer.path.replace('/admin/v1', '').replace(/:(\w+)/g, (_s, name: string) => `{${({ grantId: 'grant_id', clientId: 'client_id' } as Record<string, string>)[name] ?? name}}`)}`))
    .sort();
  expect(routes).toEqual(documented);
});

test('/metrics on the admin port: requests by route and status, consents, tokens', async () => {
  const grantId = await consent('payment');
  expect((await call('POST', `/consents/${grantId}/consume`, writeKey)).status).toBe(200);
  const response = await fetch(adminUrl.replace('/admin/v1', '/metrics'));
  expect(response.status).toBe(200);
  expect(response.headers.get('content-type')).toMatch(/text\/plain/);
  const text = await response.text();
  expect(text).toMatch(/^portcullis_consents_total\{status="consumed"\} [1-9]/m);
  expect(text).toMatch(/^portcullis_tokens_issued_total\{grant_type="authorization_code"\} [1-9]/m);
  expect(text).toMatch(/^portcullis_sca_total\{outcome="success"\} [1-9]/m);
  expect(text).toMatch(/^http_requests_total\{[^}]*route="\/token"[^}]*status="200"[^}]*\} [1-9]/m);
  expect(text).not.toMatch(/route="\/interaction\/[A-Za-z0-9_-]{20,}/); // random ids never become labels
});

describe('clients, customers and audit events', () => {
  test('disabling a client stops its authentication and removes its tokens; enabling restores authentication', async () => {
    const victim = await registerTpp(app, { grant_types: ['authorization_code', 'refresh_token', 'client_credentials'] });
    const tokens = await client.clientCredentialsGrant(victim.config, { scope: 'accounts' }, { DPoP: victim.dpop });
    const disabled = await call('POST', `/clients/${victim.clientId}/disable`, writeKey);
    expect(disabled.status).toBe(200);
    expect(await disabled.json()).toMatchObject({ client_id: victim.clientId, disabled: true });
    const rows = await app.container.database.db.selectFrom('oidc_models').select('key').where('model', '=', 'ClientCredentials').execute();
    expect(rows.length).toBe(0);
    await expect(client.clientCredentialsGrant(victim.config, { scope: 'accounts' }, { DPoP: victim.dpop })).rejects.toMatchObject({ error: 'invalid_client' });
    expect((await call('POST', `/clients/${victim.clientId}/enable`, writeKey)).status).toBe(200);
    await expect(client.clientCredentialsGrant(victim.config, { scope: 'accounts' }, { DPoP: victim.dpop })).resolves.toMatchObject({ token_type: 'dpop' });
    expect(tokens.access_token).toBeTruthy();
    expect((await call('POST', '/clients/no-such-client/disable', writeKey)).status).toBe(404);
    expect((await call('POST', `/clients/${victim.clientId}/disable`, readKey)).status).toBe(403);
  });

  test('clients are listed without secrets, page by page', async () => {
    const rs = await app.container.clients.createResourceServer('Listed API');
    const first = await (await call('GET', '/clients?limit=1', readKey)).json() as { clients: Record<string, unknown>[]; next: string };
    expect(first.clients).toHaveLength(1);
    const all: string[] = [];
    let next: string | null = null;
    do {
      const page = await (await call('GET', `/clients?limit=2${next === null ? '' : `&after=${next}`}`, readKey)).json() as { clients: { client_id: string }[]; next: string | null };
      all.push(...page.clients.map((c) => c.client_id));
      next = page.clients.length === 0 ? null : page.next;
    } while (next !== null);
    expect(all).toContain(rs.client_id);
    const shown = await (await call('GET', `/clients/${rs.client_id}`, readKey)).text();
    expect(shown).not.toContain(rs.client_secret);
    expect((await call('GET', '/clients?limit=0', readKey)).status).toBe(400);
  });

  test('resetting a customer\'s authenticator; audit events filtered and paginated', async () => {
    customers += 1;
    const customer = await createCustomer(app, `reset${customers}`, 'reset test password');
    await enrolTotp(app, customer);
    expect((await call('POST', `/users/${customer.username}/reset-totp`, writeKey)).status).toBe(200);
    expect(await app.container.totp.isEnrolled(customer.id)).toBe(false);
    const events = await (await call('GET', `/audit-events?type=totp.reset&user_id=${customer.id}`, readKey)).json() as { events: { type: string; actor: string }[] };
    expect(events.events).toEqual([expect.objectContaining({ type: 'totp.reset', actor: expect.stringMatching(/^apikey:/) })]);
    const page = await (await call('GET', '/audit-events?limit=2', readKey)).json() as { events: { seq: number }[]; next: string };
    expect(page.events).toHaveLength(2);
    const older = await (await call('GET', `/audit-events?limit=2&before=${page.next}`, readKey)).json() as { events: { seq: number }[] };
    expect(older.events[0]!.seq).toBeLessThan(page.events[1]!.seq);
    expect((await call('GET', '/audit-events?before=abc', readKey)).status).toBe(400);
  });
});

test('the users collection: listed and shown without secrets, with their enrolment and lock state', async () => {
  customers += 1;
  const customer = await createCustomer(app, `listed${customers}`, 'listed customer password');
  await enrolTotp(app, customer);
  const shown = await call('GET', `/users/${customer.username}`, readKey);
  expect(shown.status).toBe(200);
  const text = await shown.text();
  expect(JSON.parse(text)).toMatchObject({ id: customer.id, username: customer.username, totp_enrolled: true, locked_permanently: false, failed_attempts: 0 });
  expect(text).not.toMatch(/argon2|password|secret/);
  const page = await (await call('GET', '/users?limit=200', readKey)).json() as { users: { username: string }[] };
  expect(page.users.map((u) => u.username)).toContain(customer.username);
  expect((await call('GET', '/users/nobody-like-this', readKey)).status).toBe(404);
  expect((await call('GET', '/users', undefined)).status).toBe(401);
});
