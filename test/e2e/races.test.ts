import { mkdirSync, writeFileSync } from 'node:fs';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { exportJWK, generateKeyPair } from 'jose';

import { createAdminApp } from '../../src/admin/app.js';
import { startTestApp, type TestApp } from '../support/app.js';
import { FormBrowser, requirePage, type Page } from '../support/browser.js';
import { createTestDatabase, usingPostgres, type TestDatabase } from '../support/database.js';
import {
  authorizeCode, CLIENT_ASSERTION_TYPE, clientAssertion, dpopKeyPair, dpopProof, postForm, pushValid,
  redeemCode, registerResourceServer, type CraftedClient, type HttpResult, type KeyPair, type ResourceServerCredentials,
} from '../support/fapi-crafting.js';
import { freePort } from '../support/processes.js';
import { startRoundRobinProxy, type RoundRobinProxy } from '../support/round-robin-proxy.js';
import { enrolTotp } from '../support/sca.js';
import { createCustomer, pushAuthorization, registerTpp, type Customer } from '../support/tpp.js';

/**
 * Races on real PostgreSQL across two instances of the app that share one database and one
 * issuer, behind a round-robin proxy (so the parallel requests of every race are split
 * between instance A and instance B). Each scenario asserts exactly one winner AND that
 * the audit trail records exactly what happened.
 *
 * PGlite has one connection: every "parallel" request would be serialised, so the file
 * runs only with TEST_DATABASE_URL. With RELIABILITY_JSON_DIR set it writes races.json
 * (trials, winners per trial, 5xx count per scenario) for the reliability table.
 *
 * Behaviour these tests pin down (read from src/oidc/adapter.ts and oidc-provider 9):
 * - A code is consumed by one conditional UPDATE; every other racer gets invalid_grant and
 *   revokes the grant (RFC 6749 §4.1.2), so after a race even the winner's tokens are
 *   inactive and the consent is revoked, audited once: a racer that fails inside the
 *   adapter's consume() revokes it through the consent service, one that arrives after
 *   consumption through oidc-provider's revoke() (grant.revoked).
 * - A pushed request_uri is consumed when the authorization response is produced
 *   (oidc-provider's respond step), not at GET /auth: parallel GET /auth all open an
 *   interaction, and exactly one of them can end in a code; the others are redirected to
 *   the client with error=invalid_request_uri. Their consents were recorded before that
 *   (consent.granted, status authorised) and stay authorised without any token.
 * - A refresh or code redemption that passed oidc-provider's grant check before a
 *   revocation committed still answers 200 and saves its tokens afterwards: the audit shows
 *   token.issued after consent.revoked, and the rows stay until they expire. Those tokens
 *   are inactive everywhere (introspection and userinfo look the grant up), which is what
 *   is asserted; the figures are reported as `issuedAfterRevocation` / `leftoverRows`.
 * - Replay of a DPoP proof at /token is refused with 400 invalid_grant (oidc-provider's
 *   "DPoP proof JWT Replay detected", shown as "grant request is invalid"), at userinfo
 *   and at /grants with 401.
 */
const describeOnPostgres = usingPostgres() ? describe : describe.skip;

const PASSWORD = 'races need a long password';
const ISSUED = 'token.issued';

interface TrialSummary { winners: number; fiveXx: number; statuses: Record<string, number>; [detail: string]: unknown }
interface ScenarioSummary { trials: number; parallel: number; winnersPerTrial: number[]; fiveXx: number; details: TrialSummary[] }

/** Every scenario's trials, registered when it starts: a failing scenario is reported too. */
const scenarios = new Map<string, { parallel: number; trials: TrialSummary[]; printed: boolean }>();

function scenario(name: string, parallel: number): TrialSummary[] {
  const entry = { parallel, trials: [] as TrialSummary[], printed: false };
  scenarios.set(name, entry);
  return entry.trials;
}

function summarise(parallel: number, trials: TrialSummary[]): ScenarioSummary {
  return { trials: trials.length, parallel, winnersPerTrial: trials.map((t) => t.winners), fiveXx: trials.reduce((sum, t) => sum + t.fiveXx, 0), details: trials };
}

/** Prints a scenario's figures (at its end, or in afterAll when it failed before). */
function record(name: string): void {
  const entry = scenarios.get(name);
  if (entry === undefined || entry.printed) return;
  entry.printed = true;
  const s = summarise(entry.parallel, entry.trials);
  console.log(`[races] ${name}: ${s.trials} trials × ${s.parallel} parallel; winners per trial ${JSON.stringify(s.winnersPerTrial)}; 5xx ${s.fiveXx}\n${entry.trials.map((t, i) => `  #${i + 1} ${JSON.stringify(t)}`).join('\n')}`);
}

/** Adds a trial's outcome before its assertions run, so that a failing trial is recorded too. */
function pushTrial(trials: TrialSummary[], trial: TrialSummary): TrialSummary {
  trials.push(trial);
  return trial;
}

function tally(statuses: readonly (number | string)[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const status of statuses) counts[status] = (counts[status] ?? 0) + 1;
  return counts;
}

const fiveXx = (statuses: number[]): number => statuses.filter((s) => s >= 500).length;
const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

let database: TestDatabase;
let a: TestApp;
let b: TestApp;
let proxy: RoundRobinProxy;
/** Instance A's container with the proxy's URL: every request made through it lands on A or B in turn. */
let front: TestApp;
const adminServers: Server[] = [];
const adminUrls: string[] = [];
let adminKey: string;
let customers = 0;

async function startAdmin(app: TestApp): Promise<string> {
  const server = createServer(createAdminApp(app.container).callback());
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  adminServers.push(server);
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}/admin/v1`;
}

beforeAll(async () => {
  if (!usingPostgres()) return;
  database = await createTestDatabase();
  const port = await freePort();
  const issuer = `http://127.0.0.1:${port}`;
  // The losers of the one-time-code race are real failed sign-ins from 127.0.0.1.
  const overrides = { ISSUER: issuer, SIGNIN_IP_MAX_FAILURES: '100000' };
  a = await startTestApp(database, overrides);
  b = await startTestApp(database, overrides);
  proxy = await startRoundRobinProxy(port, () => [a.url, b.url]);
  front = { ...a, url: proxy.url };
  adminUrls.push(await startAdmin(a), await startAdmin(b));
  adminKey = (await a.container.apiKeys.create('races', ['admin:read', 'admin:write'], { actor: 'test' })).key;
}, 60_000);

afterAll(async () => {
  for (const server of adminServers) {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
  await proxy?.close();
  await b?.close();
  await a?.close();
  await database?.drop();
  for (const name of scenarios.keys()) record(name);
  const dir = process.env.RELIABILITY_JSON_DIR;
  if (dir && scenarios.size > 0) {
    const summary = Object.fromEntries([...scenarios].map(([name, { parallel, trials }]) => [name, summarise(parallel, trials)]));
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'races.json'), `${JSON.stringify({ database: 'postgresql', instances: 2, scenarios: summary }, null, 2)}\n`);
  }
});

// ---- helpers ----------------------------------------------------------------------------

const db = () => a.container.database.db;

async function newCustomer(prefix: string): Promise<Customer> {
  customers += 1;
  return createCustomer(front, `${prefix}${customers}`, PASSWORD);
}

/** A FAPI client (private_key_jwt ES256, DPoP, PAR) whose key the test holds, with the scopes and grant types given. */
async function craftedClient(name: string, scope: string, grantTypes: string[]): Promise<CraftedClient> {
  const { publicKey, privateKey } = await generateKeyPair('ES256', { extractable: true });
  const publicJwk = { ...(await exportJWK(publicKey)), kid: 'race-key-1', alg: 'ES256', use: 'sig' };
  const withCode = grantTypes.includes('authorization_code');
  const created = await front.container.clients.createClient({
    client_name: name,
    redirect_uris: withCode ? ['https://tpp.example/callback'] : [],
    response_types: withCode ? ['code'] : [],
    grant_types: grantTypes,
    jwks: { keys: [publicJwk] },
    scope,
  });
  return { clientId: created.client_id, key: { kid: 'race-key-1', alg: 'ES256', privateKey, publicJwk }, rsaKey: undefined };
}

interface AuditRow { seq: number; type: string; actor: string | null; clientId: string | null; userId: string | null; requestId: string | null; data: Record<string, unknown> }

async function auditMark(): Promise<number> {
  const row = await db().selectFrom('audit_events').select((eb) => eb.fn.max('seq').as('seq')).executeTakeFirst();
  return Number(row?.seq ?? 0);
}

/**
 * Audit events after `mark`, once the trail has stopped growing: oidc-provider's events
 * (token.issued, grant.revoked → consent.revoked) are written after the response.
 */
async function settledAudit(mark: number): Promise<AuditRow[]> {
  const started = Date.now();
  let previous = -1;
  for (;;) {
    const rows = await db().selectFrom('audit_events').select(['seq', 'type', 'actor', 'client_id', 'user_id', 'request_id', 'data'])
      .where('seq', '>', mark).orderBy('seq').execute();
    if (rows.length === previous && Date.now() - started >= 400) {
      return rows.map((r) => ({ seq: Number(r.seq), type: r.type, actor: r.actor, clientId: r.client_id, userId: r.user_id, requestId: r.request_id, data: r.data }));
    }
    if (Date.now() - started > 10_000) throw new Error('the audit trail did not settle');
    previous = rows.length;
    await sleep(150);
  }
}

const ofGrant = (rows: AuditRow[], type: string, grantId: string) => rows.filter((r) => r.type === type && r.data.grant_id === grantId);

async function consentStatus(grantId: string): Promise<string | undefined> {
  return (await db().selectFrom('consents').select('status').where('grant_id', '=', grantId).executeTakeFirst())?.status;
}

/** oidc_models rows (any model) still carrying the grant id. */
async function rowsOfGrant(grantId: string): Promise<Record<string, number>> {
  const rows = await db().selectFrom('oidc_models').select(['model', (eb) => eb.fn.countAll<number>().as('count')])
    .where('grant_id', '=', grantId).groupBy('model').execute();
  return Object.fromEntries(rows.map((r) => [r.model, Number(r.count)]));
}

/** The body of a private_key_jwt token-endpoint request, signed before any race starts. */
async function tokenForm(client: CraftedClient, params: Record<string, string>, assertion?: string): Promise<Record<string, string>> {
  return { client_id: client.clientId, client_assertion_type: CLIENT_ASSERTION_TYPE, client_assertion: assertion ?? await clientAssertion(front, client), ...params };
}

const post = (path: string, form: Record<string, string>, headers: Record<string, string> = {}): Promise<HttpResult> => postForm(`${front.url}${path}`, form, headers);

async function introspectVia(rs: ResourceServerCredentials, token: string): Promise<HttpResult> {
  return post('/token/introspection', { token }, { authorization: rs.authorization });
}

async function activeAnywhere(rs: ResourceServerCredentials, token: string): Promise<boolean> {
  // two calls: one on each instance
  const results = await Promise.all([introspectVia(rs, token), introspectVia(rs, token)]);
  for (const result of results) if (result.status !== 200) throw new Error(`introspection failed: ${result.status} ${result.text}`);
  return results.some((r) => r.body.active === true);
}

function adminCall(instance: 0 | 1, method: string, path: string): Promise<Response> {
  return fetch(`${adminUrls[instance]}${path}`, { method, headers: { authorization: `Bearer ${adminKey}` } });
}

/** GET or DELETE on our own resource endpoints with a DPoP-bound access token. */
async function protectedCall(method: string, path: string, accessToken: string, proof: string): Promise<{ status: number; body: string }> {
  const response = await fetch(`${front.url}${path}`, { method, headers: { authorization: `DPoP ${accessToken}`, dpop: proof, accept: 'application/json' } });
  return { status: response.status, body: await response.text() };
}

/** GET straight to one instance, with the issuer's Host (as the load balancer forwards it); returns the status. */
function directGet(instance: TestApp, path: string, headers: Record<string, string>): Promise<number> {
  const target = new URL(instance.url);
  return new Promise((resolve, reject) => {
    const req = request({ host: target.hostname, port: target.port, path, method: 'GET', headers: { ...headers, host: new URL(front.url).host } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end();
  });
}

// ---- scenarios --------------------------------------------------------------------------

describeOnPostgres('races across two instances on one PostgreSQL database', () => {
  test('100 parallel redemptions of one authorization code, × 20 trials: one token response, the rest invalid_grant', async () => {
    const TRIALS = 20;
    const PARALLEL = 100;
    const tpp = await craftedClient('Code Race TPP', 'openid offline_access accounts', ['authorization_code', 'refresh_token']);
    const rs = await registerResourceServer(front);
    const customer = await newCustomer('coderace');
    const keys = await dpopKeyPair();
    const trials = scenario('authorization_code', PARALLEL);

    for (const trial of range(TRIALS)) {
      const authorized = await authorizeCode(front, tpp, customer);
      const requests = await Promise.all(range(PARALLEL).map(async () => ({
        form: await tokenForm(tpp, { grant_type: 'authorization_code', code: authorized.code, code_verifier: authorized.codeVerifier, redirect_uri: 'https://tpp.example/callback' }),
        dpop: await dpopProof(keys, { htu: `${front.url}/token` }),
      })));
      const mark = await auditMark();
      const served = [...proxy.served];
      const results = await Promise.all(requests.map(({ form, dpop }) => post('/token', form, { dpop })));
      const statuses = results.map((r) => r.status);
      const winners = results.filter((r) => r.status === 200);
      const losers = results.filter((r) => r.status !== 200);
      const summaryOfTrial = pushTrial(trials, { winners: winners.length, fiveXx: fiveXx(statuses), statuses: tally(statuses) });

      expect({ trial, winners: winners.length, fiveXx: fiveXx(statuses) }).toEqual({ trial, winners: 1, fiveXx: 0 });
      expect(new Set(losers.map((l) => `${l.status} ${String(l.body.error)}`))).toEqual(new Set(['400 invalid_grant']));
      // both instances took part
      expect(proxy.served[0]! - served[0]!).toBeGreaterThan(PARALLEL / 2 - 2);
      expect(proxy.served[1]! - served[1]!).toBeGreaterThan(PARALLEL / 2 - 2);

      const winner = winners[0]!.body;
      const grantId = String(winner.grant_id);
      const events = await settledAudit(mark);
      // Exactly one token.issued: the winner's, for its grant.
      expect(events.filter((e) => e.type === ISSUED)).toEqual([expect.objectContaining({ clientId: tpp.clientId, userId: customer.id, data: expect.objectContaining({ grant_type: 'authorization_code', grant_id: grantId }) })]);
      // RFC 6749 §4.1.2: the code was presented again, so the grant is gone and the winner's tokens are inactive.
      expect(await activeAnywhere(rs, String(winner.access_token))).toBe(false);
      expect(await activeAnywhere(rs, String(winner.refresh_token))).toBe(false);
      const leftover = await rowsOfGrant(grantId);
      expect(leftover.Grant).toBeUndefined();
      expect(leftover.AuthorizationCode).toBeUndefined();
      // The consent follows the grant, revoked and audited exactly once, whichever way the
      // replay was noticed (the adapter's failed consume, or oidc-provider's revoke()).
      const status = await consentStatus(grantId);
      expect(status).toBe('revoked');
      expect(ofGrant(events, 'consent.revoked', grantId)).toHaveLength(1);
      expect(new Set(events.map((e) => e.type))).toEqual(new Set([ISSUED, 'consent.revoked']));

      Object.assign(summaryOfTrial, { consent: status, orphanTokenRows: leftover });
    }
    record('authorization_code');
  }, 150_000);

  test('one pushed request_uri in 20 parallel GET /auth, × 5: every request opens an interaction, exactly one ends in a code', async () => {
    const TRIALS = 5;
    const PARALLEL = 20;
    const FINISHING = 5;
    const tpp = await craftedClient('PAR Race TPP', 'openid offline_access accounts', ['authorization_code', 'refresh_token']);
    const customer = await newCustomer('parrace');
    const keys = await dpopKeyPair();
    const trials = scenario('par_request_uri', PARALLEL);

    for (const trial of range(TRIALS)) {
      const pushed = await pushValid(front, tpp);
      const browsers = range(PARALLEL).map(() => new FormBrowser());
      const mark = await auditMark();
      const opened = await Promise.all(browsers.map((browser) => browser.request(pushed.url.toString())));
      const openStatuses = opened.map((r) => r.status);
      const locations = opened.map((r) => r.headers.get('location') ?? '');
      for (const response of opened) await response.body?.cancel();
      // The request_uri is not consumed at /auth: all 20 are sent to an interaction of their own.
      expect({ trial, fiveXx: fiveXx(openStatuses) }).toEqual({ trial, fiveXx: 0 });
      expect(openStatuses.every((s) => s === 303)).toBe(true);
      expect(locations.every((l) => /\/interaction\/[\w-]+$/.test(l))).toBe(true);
      expect(new Set(locations).size).toBe(PARALLEL);

      // FINISHING of them sign in and reach the consent page, then approve at the same time.
      const consentPages = await Promise.all(range(FINISHING).map(async (i) => {
        const browser = browsers[i]!;
        const login = requirePage(await browser.navigate(new URL(locations[i]!, front.url).toString()));
        return requirePage(await browser.submit(login, 'form[action$="/login"]', { username: customer.username, password: customer.password }));
      }));
      const approvals = await Promise.all(consentPages.map((page, i) => {
        const accounts = page.document.querySelectorAll('input[name=accounts]').map((input) => input.getAttribute('value') ?? '');
        return browsers[i]!.submit(page, 'form[action$="/consent"]', { accounts }, { name: 'decision', value: 'allow' });
      }));
      const codes = approvals.map((r) => (r.leftTo === undefined ? null : new URL(r.leftTo).searchParams.get('code'))).filter((c): c is string => c !== null);
      const refusals = approvals.filter((r) => r.leftTo === undefined || new URL(r.leftTo).searchParams.get('code') === null)
        .map((r) => (r.leftTo === undefined ? `page ${r.page?.status}` : `redirect error=${new URL(r.leftTo).searchParams.get('error')}`));
      const approvalStatuses = approvals.map((r) => r.page?.status ?? 303);
      const summaryOfTrial = pushTrial(trials, {
        winners: codes.length, fiveXx: fiveXx([...openStatuses, ...approvalStatuses]), statuses: tally(openStatuses), interactions: new Set(locations).size, refusals: tally(refusals),
      });
      expect({ trial, codes: codes.length, fiveXx: fiveXx(approvalStatuses) }).toEqual({ trial, codes: 1, fiveXx: 0 });

      // The one code works; the request_uri is now refused at /auth.
      const redeemed = await redeemCode(front, tpp, { code: codes[0]!, codeVerifier: pushed.codeVerifier }, keys);
      expect(redeemed.status).toBe(200);
      const again = await fetch(pushed.url, { redirect: 'manual', headers: { accept: 'text/html' } });
      await again.body?.cancel();
      expect(again.status).toBeGreaterThanOrEqual(300);
      expect(again.headers.get('location') ?? '').not.toMatch(/\/interaction\//);

      // Audit: every approval was recorded (FINISHING consent.granted), one token.issued.
      const events = await settledAudit(mark);
      const granted = events.filter((e) => e.type === 'consent.granted' && e.userId === customer.id);
      expect(granted).toHaveLength(FINISHING);
      expect(events.filter((e) => e.type === ISSUED).map((e) => e.data.grant_id)).toEqual([redeemed.body.grant_id]);
      const grantIds = granted.map((e) => String(e.data.grant_id));
      const statuses = await Promise.all(grantIds.map(consentStatus));
      // consents approved on an interaction whose request_uri another approval had consumed
      Object.assign(summaryOfTrial, { authorisedConsentsWithoutCode: statuses.filter((s, i) => s === 'authorised' && grantIds[i] !== redeemed.body.grant_id).length });
    }
    record('par_request_uri');
  }, 120_000);

  describe('replay detection', () => {
    test('one DPoP proof (one jti) in 20 parallel token requests, × 5: one accepted', async () => {
      const client = await craftedClient('DPoP Race TPP', 'accounts', ['client_credentials']);
      const keys = await dpopKeyPair();
      const trials = scenario('dpop_jti_token', 20);
      for (const trial of range(5)) {
        const proof = await dpopProof(keys, { htu: `${front.url}/token` });
        const forms = await Promise.all(range(20).map(() => tokenForm(client, { grant_type: 'client_credentials', scope: 'accounts' })));
        const mark = await auditMark();
        const results = await Promise.all(forms.map((form) => post('/token', form, { dpop: proof })));
        const statuses = results.map((r) => r.status);
        const winners = results.filter((r) => r.status === 200).length;
        pushTrial(trials, { winners, fiveXx: fiveXx(statuses), statuses: tally(statuses) });
        expect({ trial, winners, fiveXx: fiveXx(statuses) }).toEqual({ trial, winners: 1, fiveXx: 0 });
        // oidc-provider answers a replayed proof at the token endpoint with invalid_grant ("DPoP proof JWT Replay detected").
        expect(new Set(results.filter((r) => r.status !== 200).map((r) => `${r.status} ${String(r.body.error)}`))).toEqual(new Set(['400 invalid_grant']));
        if (trial === 0) console.log(`[races] replayed DPoP proof at /token answers: ${results.find((r) => r.status !== 200)?.text}`);
        const events = await settledAudit(mark);
        expect(events.map((e) => [e.type, e.clientId, e.data.grant_type])).toEqual([[ISSUED, client.clientId, 'client_credentials']]);
      }
      record('dpop_jti_token');
    });

    test('one client-assertion jti in 20 parallel token requests, × 5: one accepted', async () => {
      const client = await craftedClient('Assertion Race TPP', 'accounts', ['client_credentials']);
      const keys = await dpopKeyPair();
      const trials = scenario('client_assertion_jti', 20);
      for (const trial of range(5)) {
        const assertion = await clientAssertion(front, client);
        const requests = await Promise.all(range(20).map(async () => ({
          form: await tokenForm(client, { grant_type: 'client_credentials', scope: 'accounts' }, assertion),
          dpop: await dpopProof(keys, { htu: `${front.url}/token` }),
        })));
        const mark = await auditMark();
        const results = await Promise.all(requests.map(({ form, dpop }) => post('/token', form, { dpop })));
        const statuses = results.map((r) => r.status);
        const winners = results.filter((r) => r.status === 200).length;
        pushTrial(trials, { winners, fiveXx: fiveXx(statuses), statuses: tally(statuses) });
        expect({ trial, winners, fiveXx: fiveXx(statuses) }).toEqual({ trial, winners: 1, fiveXx: 0 });
        expect(new Set(results.filter((r) => r.status !== 200).map((r) => `${r.status} ${String(r.body.error)}`))).toEqual(new Set(['401 invalid_client']));
        const events = await settledAudit(mark);
        expect(events.map((e) => [e.type, e.clientId, e.data.grant_type])).toEqual([[ISSUED, client.clientId, 'client_credentials']]);
      }
      record('client_assertion_jti');
    });

    describe('one DPoP proof at a protected endpoint of the server', () => {
      let client: CraftedClient;
      let keys: KeyPair;
      let accessToken: string;
      let grantId: string;

      beforeAll(async () => {
        client = await craftedClient('Resource Race TPP', 'openid offline_access accounts grant_management_query', ['authorization_code', 'refresh_token']);
        keys = await dpopKeyPair();
        const customer = await newCustomer('resrace');
        const authorized = await authorizeCode(front, client, customer, { scope: 'openid grant_management_query', prompt: undefined });
        const tokens = await redeemCode(front, client, authorized, keys);
        if (tokens.status !== 200) throw new Error(`redemption failed: ${tokens.text}`);
        accessToken = String(tokens.body.access_token);
        grantId = String(tokens.body.grant_id);
      });

      async function race(name: string, method: string, path: string): Promise<void> {
        const trials = scenario(name, 20);
        for (const _ of range(5)) {
          const proof = await dpopProof(keys, { htm: method, htu: `${front.url}${path}`, accessToken });
          const results = await Promise.all(range(20).map(() => protectedCall(method, path, accessToken, proof)));
          const statuses = results.map((r) => r.status);
          const winners = statuses.filter((s) => s === 200).length;
          pushTrial(trials, { winners, fiveXx: fiveXx(statuses), statuses: tally(statuses) });
        }
        record(name);
        // all trials first, then the verdict: the figures of every trial are in the report
        expect(trials.map((t) => [t.winners, t.fiveXx, Object.keys(t.statuses).sort()])).toEqual(trials.map(() => [1, 0, ['200', '401']]));
      }

      test('userinfo (/me), × 5: one accepted', async () => {
        await race('dpop_jti_userinfo', 'GET', '/me');
      });

      // src/oidc/grant-management.ts checks DPoP replay in an InMemoryReplayCache, one per
      // instance: a proof is accepted once on each instance (found by this file; reported).
      test('Grant Management GET /grants/{grant_id}, × 5: one accepted', async () => {
        await race('dpop_jti_grant_management', 'GET', `/grants/${grantId}`);
      });

      // The same proof sent to instance A, then to instance B (no race at all): the second use is a replay.
      test.each([['/me'], ['/grants/{grant_id}']])('%s: a proof used on instance A is refused on instance B', async (template) => {
        const path = template.replace('{grant_id}', grantId);
        const proof = await dpopProof(keys, { htm: 'GET', htu: `${front.url}${path}`, accessToken });
        const statuses: number[] = [];
        for (const instance of [a, b]) {
          statuses.push(await directGet(instance, path, { authorization: `DPoP ${accessToken}`, dpop: proof, accept: 'application/json' }));
        }
        expect(statuses).toEqual([200, 401]);
      });
    });
  });

  test('one TOTP code on four parallel sign-ins of one customer (two dashboard, two authorization), × 6: one accepted', async () => {
    const tpp = await registerTpp(front);
    const details = JSON.stringify([{ type: 'account_information', actions: ['list_accounts'] }]);
    const trials = scenario('totp_code', 4);
    for (const trial of range(6)) {
      const customer = await newCustomer('totprace');
      const { authenticator } = await enrolTotp(front, customer);
      const dashboard = await Promise.all(range(2).map(async () => {
        const browser = new FormBrowser();
        return { browser, page: requirePage(await browser.navigate(`${front.url}/account`)), form: 'form[action="/account/login"]' };
      }));
      const authorization = await Promise.all(range(2).map(async () => {
        const browser = new FormBrowser();
        const started = await pushAuthorization(tpp, { scope: 'openid accounts', authorization_details: details });
        const page = requirePage(await browser.navigate(started.url.toString()));
        return { browser, page, form: 'form[action$="/login"]' };
      }));
      for (const { page, form } of [...dashboard, ...authorization]) expect(page.document.querySelector(`${form} input[name=otp]`)).not.toBeNull();

      const code = await authenticator.code();
      const mark = await auditMark();
      const results = await Promise.all([...dashboard, ...authorization].map(({ browser, page, form }) => browser.submit(page, form, { username: customer.username, password: customer.password, otp: code })));
      const accepted = results.map((r, i) => {
        const page: Page | undefined = r.page;
        if (page === undefined) return false;
        return i < 2
          ? page.status === 200 && page.document.querySelector('form[action="/account/login"]') === null
          : page.document.querySelector('form[action$="/consent"]') !== null;
      });
      const statuses = results.map((r) => r.page?.status ?? 303);
      const winners = accepted.filter(Boolean).length;
      pushTrial(trials, { winners, fiveXx: fiveXx(statuses), statuses: tally(statuses), winner: accepted.indexOf(true) < 2 ? 'dashboard' : 'authorization' });
      expect({ trial, winners, fiveXx: fiveXx(statuses) }).toEqual({ trial, winners: 1, fiveXx: 0 });
      expect(statuses.filter((s, i) => !accepted[i] && s !== 401)).toEqual([]);

      const events = (await settledAudit(mark)).filter((e) => e.userId === customer.id);
      expect(events.filter((e) => e.type === 'sca.success')).toHaveLength(1);
      expect(events.filter((e) => e.type === 'signin.failure')).toHaveLength(3);
      expect(events.filter((e) => e.type !== 'sca.success' && e.type !== 'signin.failure')).toEqual([]);
    }
    record('totp_code');
  }, 60_000);

  describe('consent state machine', () => {
    let tpp: CraftedClient;
    let rs: ResourceServerCredentials;
    const SCOPE = 'openid offline_access accounts grant_management_revoke';

    beforeAll(async () => {
      tpp = await craftedClient('Revocation Race TPP', SCOPE, ['authorization_code', 'refresh_token']);
      rs = await registerResourceServer(front);
    });

    test('revocation on every channel at once, racing refreshes and introspections, × 8: one revocation, no active token after it', async () => {
      const REFRESHES = 8;
      const INTROSPECTIONS = 6;
      const trials = scenario('revocation_vs_use', 5 + REFRESHES + INTROSPECTIONS);
      for (const trial of range(8)) {
        const customer = await newCustomer('revrace');
        const { authenticator } = await enrolTotp(front, customer);
        const keys = await dpopKeyPair();
        const authorized = await authorizeCode(front, tpp, customer, { scope: SCOPE });
        const tokens = await redeemCode(front, tpp, authorized, keys);
        expect(tokens.status).toBe(200);
        const accessToken = String(tokens.body.access_token);
        const refreshToken = String(tokens.body.refresh_token);
        const grantId = String(tokens.body.grant_id);

        // The customer is signed in to the dashboard, looking at the consent's Revoke button.
        const browser = new FormBrowser();
        const login = requirePage(await browser.navigate(`${front.url}/account`));
        const dashboardPage = requirePage(await browser.submit(login, 'form[action="/account/login"]', { username: customer.username, password: customer.password, otp: await authenticator.code() }));
        const revokeForm = `form[action="/account/consents/${grantId}/revoke"]`;
        expect(dashboardPage.document.querySelector(revokeForm)).not.toBeNull();

        const refreshForms = await Promise.all(range(REFRESHES).map(async () => ({
          form: await tokenForm(tpp, { grant_type: 'refresh_token', refresh_token: refreshToken }),
          dpop: await dpopProof(keys, { htu: `${front.url}/token` }),
        })));
        const revocationForm = await tokenForm(tpp, { token: refreshToken, token_type_hint: 'refresh_token' });
        const deleteProof = await dpopProof(keys, { htm: 'DELETE', htu: `${front.url}/grants/${grantId}`, accessToken });

        const mark = await auditMark();
        const [adminA, adminB, dashboard, grantsApi, revocation, refreshes, introspections] = await Promise.all([
          adminCall(0, 'POST', `/consents/${grantId}/revoke`).then((r) => r.status),
          adminCall(1, 'POST', `/consents/${grantId}/revoke`).then((r) => r.status),
          browser.submit(dashboardPage, revokeForm, {}).then((r) => r.page?.status ?? 303),
          protectedCall('DELETE', `/grants/${grantId}`, accessToken, deleteProof).then((r) => r.status),
          post('/token/revocation', revocationForm).then((r) => r.status),
          Promise.all(refreshForms.map(({ form, dpop }) => post('/token', form, { dpop }))),
          Promise.all(range(INTROSPECTIONS).map(() => introspectVia(rs, accessToken))),
        ]);
        const statuses = [adminA, adminB, dashboard, grantsApi, revocation, ...refreshes.map((r) => r.status), ...introspections.map((r) => r.status)];
        expect({ trial, fiveXx: fiveXx(statuses) }).toEqual({ trial, fiveXx: 0 });

        const events = await settledAudit(mark);
        const revoked = ofGrant(events, 'consent.revoked', grantId);
        const summaryOfTrial = pushTrial(trials, { winners: revoked.length, fiveXx: fiveXx(statuses), statuses: tally(statuses) });
        // Exactly one revocation won, and its channel is the one that answered "done".
        expect(revoked).toHaveLength(1);
        const by = revoked[0]!;
        const channel = by.actor?.startsWith('apikey:') ? 'admin'
          : by.actor === 'customer' ? 'dashboard'
            : by.actor === 'client' && by.requestId ? 'grant_management' : 'revocation_endpoint';
        expect([adminA, adminB].filter((s) => s === 200)).toHaveLength(channel === 'admin' ? 1 : 0);
        expect([adminA, adminB].filter((s) => s !== 200).every((s) => s === 409)).toBe(true);
        expect(grantsApi === 204).toBe(channel === 'grant_management');
        expect(dashboard).toBe(200); // 303 back to /account whichever way it went
        expect(revocation).toBe(200); // RFC 7009: always 200
        expect(await consentStatus(grantId)).toBe('revoked');

        // Nothing of the grant is active any more, on either instance: not the original
        // tokens, not a token a refresh handed out while the revocation ran.
        const refreshed = refreshes.filter((r) => r.status === 200).map((r) => String(r.body.access_token));
        for (const token of [accessToken, refreshToken, ...refreshed]) expect(await activeAnywhere(rs, token)).toBe(false);
        expect(refreshes.filter((r) => r.status !== 200).every((r) => r.status === 400 && r.body.error === 'invalid_grant')).toBe(true);
        expect(introspections.every((r) => r.status === 200)).toBe(true);

        // The audit records exactly what happened: one token.issued per refresh answered 200,
        // at most one refresh-token revocation (the revocation endpoint), nothing else.
        const issued = ofGrant(events, ISSUED, grantId);
        expect(issued).toHaveLength(refreshed.length);
        expect(issued.every((e) => e.data.grant_type === 'refresh_token')).toBe(true);
        expect(ofGrant(events, 'token.revoked', grantId).length).toBeLessThanOrEqual(1);
        expect(events.filter((e) => !['consent.revoked', ISSUED, 'token.revoked'].includes(e.type))).toEqual([]);
        const issuedAfterRevocation = issued.filter((e) => e.seq > by.seq).length;

        Object.assign(summaryOfTrial, {
          channel, refreshed: refreshed.length, issuedAfterRevocation,
          activeIntrospections: introspections.filter((r) => r.body.active === true).length,
          leftoverRows: await rowsOfGrant(grantId),
        });
      }
      record('revocation_vs_use');
    }, 90_000);

    test('a fresh code redeemed while the consent is revoked on both instances, × 8: one revocation, no active token', async () => {
      const REDEMPTIONS = 4;
      const trials = scenario('revocation_vs_code_redemption', REDEMPTIONS + 2);
      for (const trial of range(8)) {
        const customer = await newCustomer('redeemrace');
        const keys = await dpopKeyPair();
        const authorized = await authorizeCode(front, tpp, customer, { scope: SCOPE });
        const grantId = (await db().selectFrom('consents').select('grant_id').where('user_id', '=', customer.id).executeTakeFirstOrThrow()).grant_id;
        const requests = await Promise.all(range(REDEMPTIONS).map(async () => ({
          form: await tokenForm(tpp, { grant_type: 'authorization_code', code: authorized.code, code_verifier: authorized.codeVerifier, redirect_uri: 'https://tpp.example/callback' }),
          dpop: await dpopProof(keys, { htu: `${front.url}/token` }),
        })));

        const mark = await auditMark();
        // The revocations start 0, 4, 8, … ms after the redemptions, to sweep the window in which they overlap.
        const revokeAfter = (instance: 0 | 1) => sleep(trial * 4).then(() => adminCall(instance, 'POST', `/consents/${grantId}/revoke`)).then((r) => r.status);
        const [adminA, adminB, redemptions] = await Promise.all([
          revokeAfter(0),
          revokeAfter(1),
          Promise.all(requests.map(({ form, dpop }) => post('/token', form, { dpop }))),
        ]);
        const statuses = [adminA, adminB, ...redemptions.map((r) => r.status)];
        expect({ trial, fiveXx: fiveXx(statuses) }).toEqual({ trial, fiveXx: 0 });
        const redeemed = redemptions.filter((r) => r.status === 200);
        expect(redeemed.length).toBeLessThanOrEqual(1);
        expect(redemptions.filter((r) => r.status !== 200).every((r) => r.status === 400 && r.body.error === 'invalid_grant')).toBe(true);

        const events = await settledAudit(mark);
        const revoked = ofGrant(events, 'consent.revoked', grantId);
        const summaryOfTrial = pushTrial(trials, { winners: revoked.length, fiveXx: fiveXx(statuses), statuses: tally(statuses), revokeDelayMs: trial * 4, redeemed: redeemed.length });
        expect(revoked).toHaveLength(1);
        const byAdmin = revoked[0]!.actor?.startsWith('apikey:') === true;
        expect([adminA, adminB].filter((s) => s === 200)).toHaveLength(byAdmin ? 1 : 0);
        expect(await consentStatus(grantId)).toBe('revoked');
        expect(ofGrant(events, ISSUED, grantId)).toHaveLength(redeemed.length);
        for (const r of redeemed) {
          expect(await activeAnywhere(rs, String(r.body.access_token))).toBe(false);
          expect(await activeAnywhere(rs, String(r.body.refresh_token))).toBe(false);
        }
        expect((await rowsOfGrant(grantId)).Grant).toBeUndefined();
        Object.assign(summaryOfTrial, {
          revokedBy: byAdmin ? 'admin' : String(revoked[0]!.actor), issuedAfterRevocation: ofGrant(events, ISSUED, grantId).filter((e) => e.seq > revoked[0]!.seq).length,
          leftoverRows: await rowsOfGrant(grantId),
        });
      }
      record('revocation_vs_code_redemption');
    }, 60_000);
  });

  test('after every race the audit chain is intact', async () => {
    expect(await a.container.audit.verify()).toMatchObject({ ok: true });
  });
});
