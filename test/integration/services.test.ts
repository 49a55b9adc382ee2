import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';

import { exportJWK, generateKeyPair, type JWK } from 'jose';

import { openDatabase, type Database } from '../../src/db/database.js';
import { migrateToLatest } from '../../src/db/migrate.js';
import { AuditLog } from '../../src/services/audit.js';
import { AuthenticationService } from '../../src/services/authentication.js';
import { ClientService, KIND_METADATA, PROFILE_METADATA } from '../../src/services/clients.js';
import { ConsentService } from '../../src/services/consents.js';
import { CustomerService } from '../../src/services/customers.js';
import { ConflictError, NotFoundError, ValidationError } from '../../src/services/errors.js';
import { KeyService, SIGNING_ALGS } from '../../src/services/keys.js';
import { PasswordHasher } from '../../src/services/passwords.js';
import { SecretBox } from '../../src/services/secret-box.js';
import { TotpService } from '../../src/services/totp.js';
import { ServerSecrets } from '../../src/services/server-secrets.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';

let testDb: TestDatabase;
let database: Database;
const box = new SecretBox(Buffer.alloc(32, 7).toString('base64'));
const passwords = new PasswordHasher({ memoryCost: 19456, timeCost: 2, parallelism: 1, maxConcurrent: 2 });
let customers: CustomerService;
let clientService: ClientService;
let authentication: AuthenticationService;

beforeAll(async () => {
  testDb = await createTestDatabase();
  database = await openDatabase({
    databaseUrl: testDb.url,
    dataDir: '/nonexistent',
    pglite: testDb.kind === 'pglite' ? await testDb.pglite() : undefined,
  });
  await migrateToLatest(database.db);
  customers = new CustomerService(database.db, passwords);
  clientService = new ClientService(database.db, box, async () => {});
  const audit = new AuditLog(database.db, () => new Date());
  const totp = new TotpService({ db: database.db, box, recoveryKey: Buffer.alloc(32, 1).toString('base64url'), audit, now: () => new Date() });
  authentication = new AuthenticationService({
    db: database.db, passwords, totp, audit, now: () => new Date(),
    rules: { maxFailures: 5, blockSeconds: 1800, permanentAfterBlocks: 3, ipMaxFailures: 1000, ipWindowSeconds: 900, sessionIdleSeconds: 300 },
  });
});

/** Password-only sign-in (the knowledge factor): the user id, or undefined whatever went wrong. */
async function verifyPassword(username: string, password: string): Promise<{ userId: string } | undefined> {
  const outcome = await authentication.signIn({ username, password, otp: undefined, needSca: false, context: { ip: '198.51.100.1' } });
  return outcome.ok ? { userId: outcome.userId } : undefined;
}

afterAll(async () => {
  await database?.close();
  await testDb?.drop();
});

const PASSWORD = 'correct horse battery staple';
const IBAN_DE = 'DE89 3704 0044 0532 0130 00';
const IBAN_GB = 'GB82WEST12345698765432';

async function expectRejection(promise: Promise<unknown>, type: typeof ValidationError | typeof ConflictError | typeof NotFoundError, code: string): Promise<void> {
  const error = await promise.then(
    () => { throw new Error(`expected a ${type.name} ${code}, but the call succeeded`); },
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(type);
  expect(error).toMatchObject({ code });
}

describe('CustomerService', () => {
  let aliceId: string;

  beforeAll(async () => {
    const created = await customers.create({ username: '  Alice.Example ', password: PASSWORD, name: 'Alice Example', email: 'alice@example.com' });
    expect(created.username).toBe('alice.example');
    aliceId = created.id;
    await customers.create({ username: 'bob', password: `${PASSWORD} bob` });
  });

  test('password sign-in: the right password gives the user id, whatever the case of the username', async () => {
    expect(await verifyPassword('alice.example', PASSWORD)).toEqual({ userId: aliceId });
    expect(await verifyPassword(' ALICE.example ', PASSWORD)).toEqual({ userId: aliceId });
  });

  test('password sign-in: wrong password, unknown user and malformed username all give undefined', async () => {
    expect(await verifyPassword('alice.example', `${PASSWORD}!`)).toBeUndefined();
    expect(await verifyPassword('alice.example', '')).toBeUndefined();
    expect(await verifyPassword('alice.example', 'x'.repeat(5000))).toBeUndefined();
    expect(await verifyPassword('nobody-here', PASSWORD)).toBeUndefined();
    expect(await verifyPassword('a', PASSWORD)).toBeUndefined();
    expect(await verifyPassword('alice example', PASSWORD)).toBeUndefined();
    expect(await verifyPassword("alice'; drop table users; --", PASSWORD)).toBeUndefined();
    expect(await verifyPassword('аlice.example', PASSWORD)).toBeUndefined(); // Cyrillic а
    // Another user's password does not open this account.
    expect(await verifyPassword('alice.example', `${PASSWORD} bob`)).toBeUndefined();
  });

  test('a duplicate username (compared lower-cased) is a ConflictError USERNAME_TAKEN', async () => {
    await expectRejection(customers.create({ username: 'ALICE.EXAMPLE', password: 'another password 123' }), ConflictError, 'USERNAME_TAKEN');
    // The original password still works.
    expect(await verifyPassword('alice.example', PASSWORD)).toEqual({ userId: aliceId });
  });

  test('concurrent creation of one username: exactly one succeeds', async () => {
    const results = await Promise.allSettled(Array.from({ length: 5 }, () => customers.create({ username: 'carol', password: PASSWORD })));
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    for (const r of results) {
      if (r.status === 'rejected') expect(r.reason).toMatchObject({ name: 'ConflictError', code: 'USERNAME_TAKEN' });
    }
  });

  test('invalid input is rejected before anything is stored', async () => {
    await expectRejection(customers.create({ username: 'ab', password: PASSWORD }), ValidationError, 'INVALID_USERNAME');
    await expectRejection(customers.create({ username: 'dave', password: 'short' }), ValidationError, 'INVALID_PASSWORD');
    await expectRejection(customers.create({ username: 'dave', password: `${PASSWORD}\u0000` }), ValidationError, 'INVALID_PASSWORD');
    await expectRejection(customers.create({ username: 'dave', password: 'é'.repeat(513) }), ValidationError, 'INVALID_PASSWORD');
    await expectRejection(customers.create({ username: 'dave', password: PASSWORD, email: 'not an email' }), ValidationError, 'INVALID_EMAIL');
    await expectRejection(customers.create({ username: 'dave', password: PASSWORD, name: 'Dave\u0007' }), ValidationError, 'INVALID_TEXT');
    expect(await database.db.selectFrom('users').select('id').where('username', '=', 'dave').execute()).toEqual([]);
  });

  test('the password is stored as an argon2id hash with the configured cost', async () => {
    const row = await database.db.selectFrom('users').select('password_hash').where('id', '=', aliceId).executeTakeFirstOrThrow();
    expect(row.password_hash.startsWith('$argon2id$')).toBe(true);
    expect(row.password_hash).toContain('m=19456');
    expect(row.password_hash).toContain('t=2');
    expect(row.password_hash).toContain('p=1');
    expect(row.password_hash).not.toContain(PASSWORD);
  });

  test('profile and requireByUsername', async () => {
    expect(await customers.profile(aliceId)).toEqual({ id: aliceId, username: 'alice.example', name: 'Alice Example', email: 'alice@example.com' });
    expect((await customers.requireByUsername('Alice.Example')).id).toBe(aliceId);
    await expectRejection(customers.requireByUsername('nobody-here'), NotFoundError, 'USER_NOT_FOUND');
  });

  describe('addBankAccount', () => {
    test('adds a valid account with a normalised IBAN', async () => {
      const account = await customers.addBankAccount('alice.example', { id: 'alice-current', name: ' Current account ', iban: IBAN_DE, currency: 'EUR', balance: '1250.50' });
      expect(account).toEqual({ id: 'alice-current', userId: aliceId, name: 'Current account', iban: 'DE89370400440532013000', currency: 'EUR', balance: '1250.50' });
      const listed = await customers.bankAccounts(aliceId);
      expect(listed).toHaveLength(1);
      expect(listed[0]).toMatchObject({ id: 'alice-current', userId: aliceId, iban: 'DE89370400440532013000', currency: 'EUR' });
      expect(Number(listed[0]?.balance)).toBe(1250.5);
    });

    test('balance defaults to 0 and keeps up to 4 decimals exactly', async () => {
      await customers.addBankAccount('alice.example', { id: 'alice-savings', name: 'Savings', iban: IBAN_GB, currency: 'GBP' });
      await customers.addBankAccount('alice.example', { id: 'alice-precise', name: 'Precise', iban: IBAN_GB, currency: 'GBP', balance: '-9999999999999999.9999' });
      const byId = new Map((await customers.bankAccounts(aliceId)).map((a) => [a.id, a.balance]));
      expect(Number(byId.get('alice-savings'))).toBe(0);
      // numeric(20, 4) keeps every digit: compare as text, never as a float.
      expect(byId.get('alice-precise')).toBe('-9999999999999999.9999');
    });

    test('validates IBAN, currency, balance, id and name', async () => {
      const base = { id: 'alice-x', name: 'X', iban: IBAN_DE, currency: 'EUR', balance: '1.00' };
      await expectRejection(customers.addBankAccount('alice.example', { ...base, iban: 'DE89 3704 0044 0532 0130 01' }), ValidationError, 'INVALID_IBAN');
      await expectRejection(customers.addBankAccount('alice.example', { ...base, iban: 'DE89' }), ValidationError, 'INVALID_IBAN');
      await expectRejection(customers.addBankAccount('alice.example', { ...base, iban: 'not an iban at all' }), ValidationError, 'INVALID_IBAN');
      await expectRejection(customers.addBankAccount('alice.example', { ...base, currency: 'eur' }), ValidationError, 'INVALID_CURRENCY');
      await expectRejection(customers.addBankAccount('alice.example', { ...base, currency: 'EURO' }), ValidationError, 'INVALID_CURRENCY');
      for (const balance of ['1e5', '1,000.00', '12.34567', 'NaN', '', ' 1', '12345678901234567']) {
        await expectRejection(customers.addBankAccount('alice.example', { ...base, balance }), ValidationError, 'INVALID_BALANCE');
      }
      await expectRejection(customers.addBankAccount('alice.example', { ...base, id: 'has space' }), ValidationError, 'INVALID_ACCOUNT_ID');
      await expectRejection(customers.addBankAccount('alice.example', { ...base, id: '' }), ValidationError, 'INVALID_ACCOUNT_ID');
      await expectRejection(customers.addBankAccount('alice.example', { ...base, name: '   ' }), ValidationError, 'INVALID_ACCOUNT_NAME');
      await expectRejection(customers.addBankAccount('nobody-here', base), NotFoundError, 'USER_NOT_FOUND');
      expect((await customers.bankAccounts(aliceId)).map((a) => a.id)).not.toContain('alice-x');
    });

    test("another user's (or the same user's) existing account id is a ConflictError ACCOUNT_ID_TAKEN", async () => {
      await customers.addBankAccount('alice.example', { id: 'shared-id', name: 'Alice', iban: IBAN_DE, currency: 'EUR' });
      await expectRejection(customers.addBankAccount('bob', { id: 'shared-id', name: 'Bob', iban: IBAN_GB, currency: 'GBP' }), ConflictError, 'ACCOUNT_ID_TAKEN');
      await expectRejection(customers.addBankAccount('alice.example', { id: 'shared-id', name: 'Again', iban: IBAN_GB, currency: 'GBP' }), ConflictError, 'ACCOUNT_ID_TAKEN');
      const bob = await customers.requireByUsername('bob');
      expect(await customers.bankAccounts(bob.id)).toEqual([]);
      const row = await database.db.selectFrom('bank_accounts').select(['user_id', 'name']).where('id', '=', 'shared-id').executeTakeFirstOrThrow();
      expect(row).toEqual({ user_id: aliceId, name: 'Alice' });
    });
  });
});

describe('ClientService', () => {
  let publicJwk: JWK;

  beforeAll(async () => {
    const { publicKey } = await generateKeyPair('ES256', { extractable: true });
    publicJwk = { ...(await exportJWK(publicKey)), kid: 'k1', alg: 'ES256', use: 'sig' };
  });

  test('createResourceServer: the secret is stored encrypted, and findProviderMetadata decrypts it', async () => {
    const { client_id: clientId, client_secret: secret } = await clientService.createResourceServer('Accounts API');
    expect(clientId).toMatch(/^rs-/);
    expect(secret.length).toBeGreaterThanOrEqual(43);

    const row = await database.db.selectFrom('clients').selectAll().where('client_id', '=', clientId).executeTakeFirstOrThrow();
    expect(row.secret_enc).not.toBeNull();
    expect(row.secret_enc?.startsWith('v1.')).toBe(true);
    expect(row.metadata).not.toHaveProperty('client_secret');
    expect(JSON.stringify(row)).not.toContain(secret);
    expect(JSON.stringify(row.metadata)).not.toContain(secret);
    expect(row.secret_enc).not.toContain(secret);
    expect(row.secret_enc).not.toContain(Buffer.from(secret, 'base64url').toString('base64'));
    expect(row.kind).toBe('resource_server');

    const metadata = await clientService.findProviderMetadata(clientId);
    expect(metadata).toMatchObject({
      client_id: clientId,
      client_secret: secret,
      client_name: 'Accounts API',
      token_endpoint_auth_method: 'client_secret_basic',
      [KIND_METADATA]: 'resource_server',
      [PROFILE_METADATA]: 'oidc',
    });
  });

  test('each resource server gets its own secret; a bad name is rejected', async () => {
    const a = await clientService.createResourceServer('RS A');
    const b = await clientService.createResourceServer('RS B');
    expect(a.client_secret).not.toBe(b.client_secret);
    expect(a.client_id).not.toBe(b.client_id);
    await expectRejection(clientService.createResourceServer(''), ValidationError, 'INVALID_NAME');
    await expectRejection(clientService.createResourceServer('<script>'), ValidationError, 'INVALID_NAME');
  });

  test('the sealed secret is bound to its purpose and key', () => {
    const sealed = box.seal('s3cret', 'client_secret');
    expect(box.open(sealed, 'client_secret')).toBe('s3cret');
    expect(() => box.open(sealed, 'signing_key')).toThrow();
    expect(() => new SecretBox(Buffer.alloc(32, 8).toString('base64')).open(sealed, 'client_secret')).toThrow();
  });

  test('createClient: FAPI 2.0 defaults for a valid TPP', async () => {
    const created = await clientService.createClient({
      client_id: 'tpp-valid-1',
      client_name: 'Valid TPP',
      redirect_uris: ['https://tpp.example/cb'],
      jwks: { keys: [publicJwk] },
    });
    expect(created).toMatchObject({ client_id: 'tpp-valid-1', client_name: 'Valid TPP', profile: 'fapi2' });
    const metadata = await clientService.findProviderMetadata('tpp-valid-1');
    expect(metadata).toMatchObject({
      client_id: 'tpp-valid-1',
      token_endpoint_auth_method: 'private_key_jwt',
      dpop_bound_access_tokens: true,
      require_pushed_authorization_requests: true,
      response_types: ['code'],
      grant_types: ['authorization_code', 'refresh_token'],
      [KIND_METADATA]: 'tpp',
      [PROFILE_METADATA]: 'fapi2',
    });
    expect(metadata).not.toHaveProperty('client_secret');
    await expectRejection(clientService.createClient({ client_id: 'tpp-valid-1', redirect_uris: ['https://tpp.example/cb'], jwks: { keys: [publicJwk] } }), ConflictError, 'CLIENT_EXISTS');
  });

  test('createClient rejects unknown members, missing or empty jwks, other auth methods, unbound tokens', async () => {
    const valid = { redirect_uris: ['https://tpp.example/cb'], jwks: { keys: [publicJwk] } };
    const invalid: unknown[] = [
      { ...valid, client_secret: 'x' },
      { ...valid, require_pushed_authorization_requests: false },
      { ...valid, response_types: ['code id_token'] },
      { ...valid, [KIND_METADATA]: 'resource_server' },
      { ...valid, [PROFILE_METADATA]: 'oidc' },
      { redirect_uris: ['https://tpp.example/cb'] },
      { ...valid, jwks: { keys: [] } },
      { ...valid, jwks: {} },
      { ...valid, jwks: null },
      { ...valid, jwks: 'not-a-jwks' },
      { ...valid, token_endpoint_auth_method: 'client_secret_basic' },
      { ...valid, token_endpoint_auth_method: 'client_secret_post' },
      { ...valid, token_endpoint_auth_method: 'none' },
      { ...valid, token_endpoint_auth_method: 'tls_client_auth' },
      { ...valid, token_endpoint_auth_method: 'tls_client_auth', tls_client_certificate_bound_access_tokens: true },
      { ...valid, redirect_uris: ['http://tpp.example/cb'] },
      { ...valid, redirect_uris: [] },
      { ...valid, grant_types: ['implicit'] },
      { ...valid, grant_types: ['password'] },
      { ...valid, dpop_bound_access_tokens: false },
      { ...valid, dpop_bound_access_tokens: 'true' },
      { ...valid, profile: 'custom' },
      { ...valid, client_id: 'a b' },
      { ...valid, client_id: 'x' },
      [valid],
      null,
      'metadata',
    ];
    const before = await database.db.selectFrom('clients').select('client_id').execute();
    for (const input of invalid) {
      await expectRejection(clientService.createClient(input), ValidationError, 'INVALID_CLIENT_METADATA');
    }
    expect(await database.db.selectFrom('clients').select('client_id').execute()).toHaveLength(before.length);
  });

  test('createClient turns a validator failure into INVALID_CLIENT_METADATA', async () => {
    const strict = new ClientService(database.db, box, async () => {
      throw Object.assign(new Error('invalid_client_metadata'), { error_description: 'redirect_uris must use https' });
    });
    const error = await strict.createClient({ client_id: 'tpp-refused', redirect_uris: ['https://tpp.example/cb'], jwks: { keys: [publicJwk] } }).then(() => undefined, (e: unknown) => e);
    expect(error).toBeInstanceOf(ValidationError);
    expect(error).toMatchObject({ code: 'INVALID_CLIENT_METADATA', message: 'redirect_uris must use https' });
    expect(await clientService.findProviderMetadata('tpp-refused')).toBeUndefined();
  });

  test('saveProviderMetadata keeps a secret encrypted and never stores portcullis members', async () => {
    await clientService.saveProviderMetadata('dyn-client-1', {
      client_id: 'dyn-client-1', client_secret: 'dynamic-secret-value-123', client_name: 'Dyn',
      [KIND_METADATA]: 'resource_server', [PROFILE_METADATA]: 'oidc',
    });
    const row = await database.db.selectFrom('clients').selectAll().where('client_id', '=', 'dyn-client-1').executeTakeFirstOrThrow();
    expect(JSON.stringify(row)).not.toContain('dynamic-secret-value-123');
    expect(row.metadata).toEqual({ client_name: 'Dyn' });
    expect(row.kind).toBe('tpp');
    expect(await clientService.findProviderMetadata('dyn-client-1')).toMatchObject({ client_secret: 'dynamic-secret-value-123', [KIND_METADATA]: 'tpp' });
    await clientService.deleteClient('dyn-client-1');
    expect(await clientService.findProviderMetadata('dyn-client-1')).toBeUndefined();
  });
});

const LIFECYCLE = { activationDelaySeconds: 60, retentionSeconds: 300 };

describe('KeyService', () => {
  test('ensureSigningKeys run twice concurrently creates exactly one active key per algorithm', async () => {
    const keysA = new KeyService(database.db, box, LIFECYCLE);
    const keysB = new KeyService(database.db, box, LIFECYCLE);
    await Promise.all([keysA.ensureSigningKeys(), keysB.ensureSigningKeys()]);
    await keysA.ensureSigningKeys();

    const rows = await database.db.selectFrom('signing_keys').selectAll().execute();
    expect(rows).toHaveLength(SIGNING_ALGS.length);
    for (const alg of SIGNING_ALGS) {
      expect(rows.filter((r) => r.alg === alg && r.state === 'active')).toHaveLength(1);
    }
    expect((await keysB.list()).map((k) => k.alg).sort()).toEqual([...SIGNING_ALGS].sort());
  });

  test('private keys are stored encrypted: no `d` (or other private member) in any row', async () => {
    const keys = new KeyService(database.db, box, LIFECYCLE);
    const { keys: privateJwks } = await keys.providerJwks();
    expect(privateJwks).toHaveLength(SIGNING_ALGS.length);

    const rows = await database.db.selectFrom('signing_keys').selectAll().execute();
    const stored = JSON.stringify(rows);
    for (const jwk of privateJwks) {
      expect(typeof jwk.d).toBe('string');
      expect(stored).not.toContain(jwk.d);
      for (const member of ['p', 'q', 'dp', 'dq', 'qi'] as const) {
        const value = jwk[member];
        if (typeof value === 'string') expect(stored).not.toContain(value);
      }
    }
    for (const row of rows) {
      expect(row.public_jwk).not.toHaveProperty('d');
      expect(row.public_jwk).toMatchObject({ kid: row.kid, alg: row.alg, use: 'sig' });
      expect(row.private_jwk_enc.startsWith('v1.')).toBe(true);
      const privateJwk = privateJwks.find((k) => k.kid === row.kid);
      // The public half stored matches the private key handed to oidc-provider.
      expect(privateJwk?.n ?? privateJwk?.x).toBeDefined();
      expect(privateJwk?.n ?? privateJwk?.x).toBe(row.public_jwk.n ?? row.public_jwk.x);
    }
  });
  test('lifecycle: rotate publishes, activation after the delay retires the old key, retention removes it', async () => {
    const keys = new KeyService(database.db, box, LIFECYCLE);
    await keys.ensureSigningKeys();
    const before = await keys.list();
    const oldPs = before.find((k) => k.alg === 'PS256' && k.state === 'active')!;
    const fingerprint = await keys.fingerprint();

    const published = await keys.rotate();
    expect(published.map((k) => k.alg).sort()).toEqual([...SIGNING_ALGS].sort());
    expect(published.every((k) => k.state === 'published' && k.activates_after !== null)).toBe(true);
    expect(await keys.fingerprint()).not.toBe(fingerprint);
    // Published keys are in the JWKS after the active ones: the active key still signs.
    const jwks = (await keys.providerJwks()).keys;
    expect(jwks.find((k) => k.alg === 'PS256')?.kid).toBe(oldPs.kid);
    expect(jwks.map((k) => k.kid)).toEqual(expect.arrayContaining(published.map((k) => k.kid)));

    const now = Date.now();
    expect(await keys.advance(new Date(now + 30_000))).toEqual({ activated: [], removed: [] });
    const { activated } = await keys.advance(new Date(now + 61_000));
    expect(activated.sort()).toEqual(published.map((k) => k.kid).sort());
    const after = await keys.list();
    const newPs = published.find((k) => k.alg === 'PS256')!;
    expect(after.find((k) => k.kid === newPs.kid)?.state).toBe('active');
    expect(after.find((k) => k.kid === oldPs.kid)?.state).toBe('retired');
    expect((await keys.providerJwks()).keys.find((k) => k.alg === 'PS256')?.kid).toBe(newPs.kid);
    expect((await keys.providerJwks()).keys.map((k) => k.kid)).toContain(oldPs.kid);

    const { removed } = await keys.advance(new Date(now + 61_000 + 301_000));
    expect(removed).toContain(oldPs.kid);
    expect((await keys.list()).map((k) => k.kid)).not.toContain(oldPs.kid);
    const row = await database.db.selectFrom('signing_keys').select(['state', 'private_jwk_enc']).where('kid', '=', oldPs.kid).executeTakeFirstOrThrow();
    expect(row).toEqual({ state: 'removed', private_jwk_enc: '' });
  });
});

describe('ServerSecrets', () => {
  test('get returns the same value on repeated and concurrent calls, across instances', async () => {
    const secrets = new ServerSecrets(database.db, box);
    const concurrent = await Promise.all(Array.from({ length: 10 }, () => new ServerSecrets(database.db, box).get('cookie-keys')));
    expect(new Set(concurrent).size).toBe(1);
    const [value] = concurrent;
    expect(value).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(await secrets.get('cookie-keys')).toBe(value);
    expect(await secrets.get('cookie-keys')).toBe(value);

    const rows = await database.db.selectFrom('server_secrets').selectAll().where('name', '=', 'cookie-keys').execute();
    expect(rows).toHaveLength(1);
    expect(JSON.stringify(rows)).not.toContain(value);
  });

  test('different names get different secrets', async () => {
    const secrets = new ServerSecrets(database.db, box);
    const [a, b] = await Promise.all([secrets.get('csrf'), secrets.get('dpop-nonce')]);
    expect(a).not.toBe(b);
    expect(await secrets.get('csrf')).toBe(a);
  });
});

describe('removing a client', () => {
  test('deleting a client revokes its consents (audited) and removes its grants, in one transaction', async () => {
    const audit = new AuditLog(database.db, () => new Date());
    const consents = new ConsentService(database.db, audit, () => new Date());
    const withAudit = new ClientService(database.db, box, async () => {}, { audit });
    const owner = await customers.create({ username: 'consenting', password: PASSWORD });
    const created = await withAudit.createResourceServer('To be removed');
    await consents.recordGranted({ grantId: 'grant-of-removed-client', clientId: created.client_id, userId: owner.id, scopes: 'accounts', details: [], expiresAt: null }, { actor: 'test' });
    await withAudit.deleteClient(created.client_id);
    expect((await consents.get('grant-of-removed-client')).status).toBe('revoked');
    const events = await database.db.selectFrom('audit_events').select(['type', 'client_id']).where('type', '=', 'consent.revoked').execute();
    expect(events).toContainEqual({ type: 'consent.revoked', client_id: created.client_id });
    expect(await database.db.selectFrom('clients').select('client_id').where('client_id', '=', created.client_id).execute()).toHaveLength(0);
  });
});
