import { Writable } from 'node:stream';

import { afterAll, beforeAll, expect, test } from '@jest/globals';
import * as client from 'openid-client';

import { createLogger } from '../../src/logger.js';
import { startTestApp, type TestApp } from '../support/app.js';
import { FormBrowser, requirePage } from '../support/browser.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';
import { enrolTotp } from '../support/sca.js';
import { pushAuthorization, registerTpp, resourceServer } from '../support/tpp.js';

/**
 * Full flows at log level trace with distinctive secrets; none of them may appear in any
 * log line (passwords, codes, tokens, cookies, assertions, DPoP proofs, TOTP secrets).
 */
let database: TestDatabase;
let app: TestApp;
const lines: string[] = [];

beforeAll(async () => {
  database = await createTestDatabase();
  const sink = new Writable({ write(chunk: Buffer, _encoding, done) { lines.push(...chunk.toString('utf8').split('\n').filter(Boolean)); done(); } });
  app = await startTestApp(database, { LOG_LEVEL: 'trace' }, undefined, createLogger('trace', sink));
});

afterAll(async () => {
  await app?.close();
  await database?.drop();
});

test('no secret of a full flow reaches the logs', async () => {
  const password = 'CanaryPassword-7f3a91';
  const customer = await app.container.customers.create({ username: 'canary', password, name: 'Canary' });
  await app.container.customers.addBankAccount('canary', { id: 'canary-current', name: 'Current', iban: 'GB82WEST12345698765432', currency: 'GBP' });
  const { authenticator, recoveryCodes } = await enrolTotp(app, { id: customer.id, username: 'canary', password });
  const tpp = await registerTpp(app);
  const rs = await resourceServer(app);
  const secrets: string[] = [password, authenticator.secret, ...recoveryCodes];

  const started = await pushAuthorization(tpp, { scope: 'openid offline_access accounts', authorization_details: JSON.stringify([{ type: 'account_information', actions: ['list_accounts'] }]) });
  const browser = new FormBrowser();
  const login = requirePage(await browser.navigate(started.url.toString()));
  // A failed attempt too: the attempted password is just as secret.
  const wrong = 'CanaryWrongPassword-19c2';
  secrets.push(wrong);
  const retry = requirePage(await browser.submit(login, 'form[action$="/login"]', { username: 'canary', password: wrong, otp: '000000' }));
  const otp = await authenticator.code();
  const consent = requirePage(await browser.submit(retry, 'form[action$="/login"]', { username: 'canary', password, otp }));
  const result = await browser.submit(consent, 'form[action$="/consent"]', { accounts: ['canary-current'] }, { name: 'decision', value: 'allow' });
  const callback = new URL(result.leftTo!);
  const tokens = await client.authorizationCodeGrant(tpp.config, callback, { pkceCodeVerifier: started.codeVerifier, expectedState: started.state }, undefined, { DPoP: tpp.dpop });
  await client.tokenIntrospection(rs, tokens.access_token);
  await client.tokenRevocation(rs, tokens.refresh_token!);

  secrets.push(callback.searchParams.get('code')!, started.codeVerifier, tokens.access_token, tokens.refresh_token!, String(started.url.searchParams.get('request_uri')));
  for (const cookie of await browser.jar.getCookies(app.url)) if (cookie.value.length >= 16) secrets.push(cookie.value);
  for (const input of consent.document.querySelectorAll('input[name=csrf]')) secrets.push(input.getAttribute('value')!);

  expect(lines.length).toBeGreaterThan(5);
  const log = lines.join('\n');
  for (const secret of secrets) expect({ secret, found: log.includes(secret) }).toEqual({ secret, found: false });
  // One line per request, with the documented fields.
  const requestLines = lines.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.msg === 'request');
  expect(requestLines.length).toBeGreaterThan(5);
  expect(requestLines[0]).toEqual(expect.objectContaining({ requestId: expect.any(String), method: expect.any(String), route: expect.any(String), status: expect.any(Number), latencyMs: expect.any(Number) }));
});
