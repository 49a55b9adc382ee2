import { afterAll, beforeAll, expect, test } from '@jest/globals';

import { startTestApp, type TestApp } from '../support/app.js';
import { FormBrowser, requirePage } from '../support/browser.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';
import { pushAuthorization, registerTpp } from '../support/tpp.js';

/** The limiter wired into the real app: headers on limited classes, 429 with Retry-After. */
let database: TestDatabase;
let app: TestApp;

beforeAll(async () => {
  database = await createTestDatabase();
  app = await startTestApp(database, { RATE_LIMIT_TOKEN: '3/60', RATE_LIMIT_SIGNIN: '2/60' });
});

afterAll(async () => {
  await app?.close();
  await database?.drop();
});

test('the token endpoint: X-RateLimit headers, then 429 slow_down with Retry-After', async () => {
  const statuses: number[] = [];
  let last: Response | undefined;
  for (let i = 0; i < 4; i += 1) {
    last = await fetch(`${app.url}/token`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'grant_type=client_credentials' });
    statuses.push(last.status);
    expect(last.headers.get('x-ratelimit-limit')).toBe('3');
    expect(last.headers.get('x-ratelimit-reset')).toMatch(/^\d+$/);
  }
  expect(statuses.slice(0, 3).every((s) => s !== 429)).toBe(true);
  expect(statuses[3]).toBe(429);
  expect(last!.headers.get('retry-after')).toMatch(/^\d+$/);
  expect(await last!.json()).toMatchObject({ error: 'slow_down' });
});

test('sign-in posts are limited per IP; the page is limited separately', async () => {
  const tpp = await registerTpp(app);
  const browser = new FormBrowser();
  const started = await pushAuthorization(tpp);
  const login = requirePage(await browser.navigate(started.url.toString()));
  const statuses: number[] = [];
  for (let i = 0; i < 3; i += 1) {
    const result = await browser.submit(login, 'form[action$="/login"]', { username: 'nobody', password: 'not the password' });
    statuses.push(result.page?.status ?? 0);
  }
  expect(statuses).toEqual([401, 401, 429]);
  // Discovery and health are never limited.
  const discovery = await fetch(`${app.url}/.well-known/openid-configuration`);
  expect(discovery.headers.get('x-ratelimit-limit')).toBeNull();
});
