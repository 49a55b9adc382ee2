import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';

import { buildContainer, type Container } from '../../src/container.js';
import { createLogger } from '../../src/logger.js';
import { sha256Base64Url } from '../../src/services/secret-box.js';
import { TEST_MASTER_KEY, testConfig, type TestApp } from '../support/app.js';
import { FormBrowser, requirePage } from '../support/browser.js';
import { createTestDatabase, usingPostgres, type TestDatabase } from '../support/database.js';
import { DIRECTORY_ISSUER, keyPair, pollUntil, signSsa, ssaClaims, startJwksHost, type JwksHost, type KeyPair } from '../support/directory.js';
import { authorizeCode, clientAssertion, CLIENT_ASSERTION_TYPE, dpopKeyPair, dpopProof, postForm, pushValid, redeemCode, registerCraftedClient } from '../support/fapi-crafting.js';
import { freePort, runCli, startServerProcess, type ServerProcess } from '../support/processes.js';
import { createCustomer, type Customer } from '../support/tpp.js';

/**
 * Process faults (issue #9): the real server (dist/src/main.js) is started with a test-only
 * failpoint (PORTCULLIS_FAILPOINTS, failpoints.ts) that SIGKILLs it at one chosen step; it
 * is restarted without it, and the invariants are checked on the database:
 * - no token from a code that was not consumed (and a consumed code never yields one later);
 * - no authorised consent without its grant and its audit event;
 * - no registered client without its audit event;
 * - the audit chain intact (portcullis audit verify) whatever was being appended.
 * PostgreSQL only: a SIGKILLed process must leave a database another process can open.
 */
const describeOnPostgres = usingPostgres() ? describe : describe.skip;
const RELIABILITY_DIR = process.env.RELIABILITY_JSON_DIR;

let database: TestDatabase;
let container: Container;
let directoryKey: KeyPair;
let directory: JwksHost;
let tppJwks: JwksHost;
let port: number;
let env: Record<string, string>;
let dataDir: string;
const figures: Record<string, { killed: boolean; restartMs: number; invariants: string }> = {};

/** The server as the test's helpers see it: its URL, our container on the same database. */
const at = (server: ServerProcess): TestApp => ({ url: server.url, container } as unknown as TestApp);

async function crashAt(failpoint: string, drive: (server: ServerProcess) => Promise<void>): Promise<ServerProcess> {
  const armed = await startServerProcess({ ...env, PORTCULLIS_FAILPOINTS: failpoint }, port);
  const exited = new Promise<NodeJS.Signals | null>((resolve) => armed.child.once('exit', (_code, signal) => resolve(signal)));
  await drive(armed).catch(() => undefined); // the request dies with the process
  const signal = await Promise.race([exited, new Promise<'alive'>((resolve) => setTimeout(() => resolve('alive'), 10_000))]);
  if (signal !== 'SIGKILL') {
    await armed.stop();
    throw new Error(`the server did not die at ${failpoint} (${String(signal)}): ${armed.output().slice(-2000)}`);
  }
  const restarting = Date.now();
  const server = await startServerProcess(env, port);
  figures[failpoint] = { killed: true, restartMs: Date.now() - restarting, invariants: 'pending' };
  return server;
}

async function auditVerifies(): Promise<void> {
  const verified = await runCli(['audit', 'verify', '--json'], env);
  expect(verified.code).toBe(0);
  expect(JSON.parse(verified.stdout)).toMatchObject({ ok: true });
}

async function eventsOfType(type: string): Promise<{ client_id: string | null; user_id: string | null; data: Record<string, unknown> }[]> {
  return container.database.db.selectFrom('audit_events').select(['client_id', 'user_id', 'data']).where('type', '=', type).execute();
}

async function modelRows(grantId: string): Promise<{ model: string; consumed: boolean }[]> {
  const rows = await container.database.db.selectFrom('oidc_models').select(['model', 'consumed_at']).where('grant_id', '=', grantId).execute();
  return rows.map((r) => ({ model: r.model, consumed: r.consumed_at !== null }));
}

/** PAR, sign-in and the consent POST (the step the failpoints sit in). */
async function signInAndApprove(server: ServerProcess, customer: Customer): Promise<void> {
  const client = await registerCraftedClient(at(server), { name: 'Fault TPP' });
  const pushed = await pushValid(at(server), client);
  const browser = new FormBrowser();
  const login = requirePage(await browser.navigate(pushed.url.toString()));
  const consent = requirePage(await browser.submit(login, 'form[action$="/login"]', { username: customer.username, password: customer.password }));
  const accounts = consent.document.querySelectorAll('input[name=accounts]').map((input) => input.getAttribute('value') ?? '');
  await browser.submit(consent, 'form[action$="/consent"]', { accounts }, { name: 'decision', value: 'allow' });
}

describeOnPostgres('a crash at each step leaves a consistent database', () => {
  beforeAll(async () => {
    database = await createTestDatabase();
    port = await freePort();
    directoryKey = await keyPair('ES256');
    directory = await startJwksHost([directoryKey]);
    tppJwks = await startJwksHost([await keyPair('ES256', 'tpp-1')]);
    dataDir = mkdtempSync(join(tmpdir(), 'portcullis-faults-'));
    const config = testConfig(database, { ISSUER: `http://127.0.0.1:${port}`, SSA_ISSUER: DIRECTORY_ISSUER, SSA_JWKS_URI: directory.url, FETCH_ALLOW_PRIVATE_NETWORKS: 'true' });
    container = await buildContainer(config, { log: createLogger('silent') });
    env = {
      DATABASE_URL: database.url!, MASTER_KEY: TEST_MASTER_KEY, DATA_DIR: dataDir, LOG_LEVEL: 'silent',
      SSA_ISSUER: DIRECTORY_ISSUER, SSA_JWKS_URI: directory.url, FETCH_ALLOW_PRIVATE_NETWORKS: 'true',
      ...Object.fromEntries(['SIGNIN', 'PAR', 'TOKEN', 'REGISTRATION', 'INTROSPECTION', 'REVOCATION', 'USERINFO', 'GRANTS', 'PAGES'].map((c) => [`RATE_LIMIT_${c}`, '100000/60'])),
    };
  }, 60_000);

  afterAll(async () => {
    await container?.close();
    await directory?.close();
    await tppJwks?.close();
    await database?.drop();
    rmSync(dataDir, { recursive: true, force: true });
    if (RELIABILITY_DIR !== undefined) {
      mkdirSync(RELIABILITY_DIR, { recursive: true });
      writeFileSync(join(RELIABILITY_DIR, 'process-faults.json'), `${JSON.stringify(figures, null, 2)}\n`);
    }
  });

  test('killed after a code is consumed, before its tokens are saved: no token, the code is spent, a retry revokes the consent', async () => {
    const customer = await createCustomer({ container } as TestApp, 'fault-code');
    let authorized: Awaited<ReturnType<typeof authorizeCode>> | undefined;
    let client: Awaited<ReturnType<typeof registerCraftedClient>> | undefined;
    const keys = await dpopKeyPair();
    const server = await crashAt('code.consumed', async (armed) => {
      client = await registerCraftedClient(at(armed), { name: 'Code fault TPP' });
      authorized = await authorizeCode(at(armed), client, customer);
      await redeemCode(at(armed), client, authorized, keys);
    });
    try {
      const [consent] = await container.consents.list({ userId: customer.id });
      const grantId = consent!.grantId;
      expect(await modelRows(grantId)).toEqual(expect.arrayContaining([{ model: 'AuthorizationCode', consumed: true }]));
      expect((await modelRows(grantId)).filter((r) => ['AccessToken', 'RefreshToken'].includes(r.model))).toEqual([]);
      expect((await eventsOfType('token.issued')).filter((e) => e.data.grant_id === grantId)).toEqual([]);
      // The TPP retries: the spent code is refused and, as a replay, takes the consent with it.
      const retry = await redeemCode(at(server), client!, authorized!, keys);
      expect(retry.status).toBe(400);
      expect(retry.body.error).toBe('invalid_grant');
      // (oidc-provider's grant.revoked event moves the consent just after the response)
      await pollUntil(async () => ((await container.consents.get(grantId)).status === 'revoked' ? true : undefined), 5000, 50);
      expect(await modelRows(grantId)).toEqual([]);
      await auditVerifies();
      figures['code.consumed']!.invariants = 'no token; code spent; retry refused and consent revoked; chain intact';
    } finally {
      await server.stop();
    }
  }, 120_000);

  test('killed after the grant is saved, before the consent is recorded: no consent, no token, chain intact', async () => {
    const customer = await createCustomer({ container } as TestApp, 'fault-grant');
    const server = await crashAt('consent.grant-saved', (armed) => signInAndApprove(armed, customer));
    try {
      expect(await container.consents.list({ userId: customer.id })).toEqual([]);
      expect((await eventsOfType('consent.granted')).filter((e) => e.user_id === customer.id)).toEqual([]);
      // The grant row written before the crash carries no code and no token: nothing can use it.
      const grants = await container.database.db.selectFrom('oidc_models').select(['grant_id']).where('model', '=', 'Grant').where('payload', '@>', JSON.stringify({ accountId: customer.id }) as never).execute();
      for (const { grant_id: grantId } of grants) expect((await modelRows(grantId!)).map((r) => r.model)).toEqual(['Grant']);
      await auditVerifies();
      figures['consent.grant-saved']!.invariants = 'no consent, no consent.granted, orphan grant without codes or tokens; chain intact';
    } finally {
      await server.stop();
    }
  }, 120_000);

  test('killed after the consent is recorded, before the authorization finishes: the consent has its grant and its audit event', async () => {
    const customer = await createCustomer({ container } as TestApp, 'fault-consent');
    const server = await crashAt('consent.recorded', (armed) => signInAndApprove(armed, customer));
    try {
      const consents = await container.consents.list({ userId: customer.id });
      expect(consents.map((c) => c.status)).toEqual(['authorised']);
      const grantId = consents[0]!.grantId;
      const grant = await container.database.db.selectFrom('oidc_models').select('model').where('model', '=', 'Grant').where('key', '=', sha256Base64Url(grantId)).execute();
      expect(grant).toHaveLength(1);
      expect((await eventsOfType('consent.granted')).filter((e) => e.data.grant_id === grantId)).toHaveLength(1);
      await auditVerifies();
      figures['consent.recorded']!.invariants = 'authorised consent has its grant and one consent.granted; chain intact';
    } finally {
      await server.stop();
    }
  }, 120_000);

  test('killed after a registration is committed, before the response: the client has its audit event', async () => {
    const ssa = await signSsa(directoryKey, ssaClaims(tppJwks.url, { software_roles: ['AISP'] }));
    const server = await crashAt('registration.client-saved', async (armed) => {
      await fetch(`${armed.url}/reg`, {
        method: 'POST', headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ software_statement: ssa, redirect_uris: ['https://tpp.example/callback'] }),
      });
    });
    try {
      const clients = await container.database.db.selectFrom('clients').select(['client_id']).where('software_id', 'is not', null).execute();
      expect(clients).toHaveLength(1);
      const registered = await eventsOfType('client.registered');
      expect(registered.map((e) => e.client_id)).toEqual([clients[0]!.client_id]);
      await auditVerifies();
      figures['registration.client-saved']!.invariants = 'the client has exactly one client.registered; chain intact';
    } finally {
      await server.stop();
    }
  }, 120_000);

  test('killed in the middle of an audit append: the chain verifies and later events continue it', async () => {
    const machine = await registerCraftedClient({ container, url: `http://127.0.0.1:${port}` } as unknown as TestApp, { name: 'Audit fault TPP', grantTypes: ['client_credentials'] });
    const keys = await dpopKeyPair();
    const tokenRequest = async (server: ServerProcess) => postForm(`${server.url}/token`, {
      grant_type: 'client_credentials', scope: 'accounts', client_id: machine.clientId,
      client_assertion_type: CLIENT_ASSERTION_TYPE, client_assertion: await clientAssertion(at(server), machine),
    }, { dpop: await dpopProof(keys, { htu: `${server.url}/token` }) });
    const before = await container.audit.verify();
    // token.issued is group-committed after the response: the append is where the process dies.
    const server = await crashAt('audit.appending', async (armed) => { await tokenRequest(armed); });
    try {
      expect(await container.audit.verify()).toEqual({ ok: true, events: before.events });
      expect((await tokenRequest(server)).status).toBe(200);
      // The server group-commits token.issued just after its response: wait for it to land.
      const after = await pollUntil(async () => {
        const verified = await container.audit.verify();
        return verified.events > before.events ? verified : undefined;
      }, 5000, 50);
      expect(after.ok).toBe(true);
      await auditVerifies();
      figures['audit.appending']!.invariants = 'the half-written append rolled back; chain verifies and continues';
    } finally {
      await server.stop();
    }
  }, 120_000);
});
