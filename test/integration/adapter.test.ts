import { createHash, randomBytes } from 'node:crypto';

import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import type { Adapter, AdapterPayload } from 'oidc-provider';
import { errors } from 'oidc-provider';

import { openDatabase, type Database } from '../../src/db/database.js';
import { migrateToLatest } from '../../src/db/migrate.js';
import { createAdapterFactory } from '../../src/oidc/adapter.js';
import { RequestScope } from '../../src/oidc/request-scope.js';
import { SecretBox } from '../../src/services/secret-box.js';
import type { ClientStore } from '../../src/services/clients.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';

let testDb: TestDatabase;
let database: Database;
/** The adapter's clock: tests move it instead of sleeping. */
let clock = new Date('2030-01-01T00:00:00.000Z');
let adapterFor: (model: string) => Adapter;
const scope = new RequestScope();

const clientCalls: string[] = [];
const clients: ClientStore = {
  async findProviderMetadata(clientId) {
    clientCalls.push(`find:${clientId}`);
    return clientId === 'known-client' ? { client_id: clientId, client_name: 'Known' } : undefined;
  },
  async saveProviderMetadata(clientId) { clientCalls.push(`save:${clientId}`); },
  async deleteClient(clientId) { clientCalls.push(`delete:${clientId}`); },
};

beforeAll(async () => {
  testDb = await createTestDatabase();
  database = await openDatabase({
    databaseUrl: testDb.url,
    dataDir: '/nonexistent',
    pglite: testDb.kind === 'pglite' ? await testDb.pglite() : undefined,
  });
  await migrateToLatest(database.db);
  const factory = createAdapterFactory({ db: database.db, prepared: database.prepared, scope, clients, box: new SecretBox(Buffer.alloc(32, 7).toString('base64')), now: () => clock });
  adapterFor = (model) => factory(model);
});

afterAll(async () => {
  await database?.close();
  await testDb?.drop();
});

function newId(): string {
  return randomBytes(32).toString('base64url');
}

function sha256(value: string): string {
  return createHash('sha256').update(value, 'utf8').digest('base64url');
}

function advance(seconds: number): void {
  clock = new Date(clock.getTime() + seconds * 1000);
}

function epoch(date: Date): number {
  return Math.floor(date.getTime() / 1000);
}

function tokenPayload(kind: string, id: string, grantId: string, extra: Record<string, unknown> = {}): AdapterPayload {
  return {
    kind,
    jti: id,
    grantId,
    accountId: 'account-1',
    clientId: 'client-1',
    iat: epoch(clock),
    exp: epoch(clock) + 600,
    scope: 'openid accounts',
    ...extra,
  } as AdapterPayload;
}

async function rowsOfModel(model: string, key: string) {
  return database.db.selectFrom('oidc_models').selectAll().where('model', '=', model).where('key', '=', key).execute();
}

async function countGrantRows(grantId: string): Promise<Record<string, number>> {
  const rows = await database.db.selectFrom('oidc_models').select('model').where('grant_id', '=', grantId).execute();
  const counts: Record<string, number> = {};
  for (const row of rows) counts[row.model] = (counts[row.model] ?? 0) + 1;
  return counts;
}

/** A Grant plus an AuthorizationCode, two AccessTokens and a RefreshToken issued under it. */
async function seedGrant(): Promise<{ grantId: string; code: string; accessTokens: string[]; refreshToken: string }> {
  const grantId = newId();
  const code = newId();
  const accessTokens = [newId(), newId()];
  const refreshToken = newId();
  await adapterFor('Grant').upsert(grantId, { kind: 'Grant', jti: grantId, accountId: 'account-1', clientId: 'client-1' } as AdapterPayload, 3600);
  await adapterFor('AuthorizationCode').upsert(code, tokenPayload('AuthorizationCode', code, grantId), 60);
  for (const at of accessTokens) await adapterFor('AccessToken').upsert(at, tokenPayload('AccessToken', at, grantId), 600);
  await adapterFor('RefreshToken').upsert(refreshToken, tokenPayload('RefreshToken', refreshToken, grantId), 3600);
  return { grantId, code, accessTokens, refreshToken };
}

describe('generic model adapter: storage', () => {
  test('upsert then find returns the payload with jti re-attached', async () => {
    const id = newId();
    const grantId = newId();
    const payload = tokenPayload('AccessToken', id, grantId, { claims: { userinfo: { name: null } }, extra: { nested: [1, 'two'] } });
    await adapterFor('AccessToken').upsert(id, payload, 600);
    const found = await adapterFor('AccessToken').find(id);
    expect(found).toEqual(payload);
    expect(found?.jti).toBe(id);
  });

  test('the row is keyed by SHA-256 (base64url) of the id and never holds the id', async () => {
    const id = newId();
    const grantId = newId();
    await adapterFor('AccessToken').upsert(id, tokenPayload('AccessToken', id, grantId), 600);

    const rows = await rowsOfModel('AccessToken', sha256(id));
    expect(rows).toHaveLength(1);
    const [row] = rows;
    expect(row?.key).toBe(sha256(id));
    expect(row?.key).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(row?.grant_id).toBe(grantId);
    expect(row?.payload).not.toHaveProperty('jti');
    expect(JSON.stringify(row)).not.toContain(id);

    // Nothing anywhere in the table holds the id in clear.
    const everything = await database.db.selectFrom('oidc_models').selectAll().execute();
    expect(JSON.stringify(everything)).not.toContain(id);
  });

  test('a Session row holds neither the session id (cookie value) nor any other copy of it', async () => {
    const id = newId();
    const uid = newId();
    await adapterFor('Session').upsert(id, { kind: 'Session', jti: id, uid, accountId: 'account-1', loginTs: epoch(clock) } as AdapterPayload, 600);
    const rows = await rowsOfModel('Session', sha256(id));
    expect(rows).toHaveLength(1);
    expect(rows[0]?.uid).toBe(uid);
    expect(JSON.stringify(rows)).not.toContain(id);
  });

  test('a jti different from the id is kept in the payload', async () => {
    const id = newId();
    const otherJti = newId();
    await adapterFor('Interaction').upsert(id, { kind: 'Interaction', jti: otherJti } as AdapterPayload, 600);
    expect((await adapterFor('Interaction').find(id))?.jti).toBe(otherJti);
  });

  test('upsert replaces the payload and the expiry of an existing row', async () => {
    const id = newId();
    const adapter = adapterFor('Interaction');
    await adapter.upsert(id, { kind: 'Interaction', jti: id, returnTo: 'first' } as AdapterPayload, 10);
    await adapter.upsert(id, { kind: 'Interaction', jti: id, returnTo: 'second' } as AdapterPayload, 600);
    expect(await rowsOfModel('Interaction', sha256(id))).toHaveLength(1);
    advance(60);
    expect(await adapter.find(id)).toMatchObject({ returnTo: 'second', jti: id });
  });

  test('the same id under two models is two independent rows', async () => {
    const id = newId();
    await adapterFor('AccessToken').upsert(id, tokenPayload('AccessToken', id, newId()), 600);
    expect(await adapterFor('RefreshToken').find(id)).toBeUndefined();
    await adapterFor('RefreshToken').destroy(id);
    expect(await adapterFor('AccessToken').find(id)).toBeDefined();
  });

  test('find of an unknown id returns undefined', async () => {
    expect(await adapterFor('AccessToken').find(newId())).toBeUndefined();
    expect(await adapterFor('Session').findByUid(newId())).toBeUndefined();
    expect(await adapterFor('DeviceCode').findByUserCode('NOPE-NOPE')).toBeUndefined();
  });
});

describe('generic model adapter: expiry', () => {
  test('expiresIn undefined: expires_at is null and the row is found forever', async () => {
    const id = newId();
    await adapterFor('Grant').upsert(id, { kind: 'Grant', jti: id, accountId: 'account-1', clientId: 'client-1' } as AdapterPayload);
    const rows = await rowsOfModel('Grant', sha256(id));
    expect(rows[0]?.expires_at).toBeNull();
    const saved = clock;
    try {
      advance(100 * 365 * 24 * 3600);
      expect(await adapterFor('Grant').find(id)).toMatchObject({ jti: id, accountId: 'account-1' });
    } finally {
      clock = saved;
    }
  });

  test('expiresIn=60: found at +59 s, not at +61 s', async () => {
    const id = newId();
    const start = clock;
    await adapterFor('AccessToken').upsert(id, tokenPayload('AccessToken', id, newId()), 60);
    const rows = await rowsOfModel('AccessToken', sha256(id));
    expect(rows[0]?.expires_at?.getTime()).toBe(start.getTime() + 60_000);

    advance(59);
    expect(await adapterFor('AccessToken').find(id)).toBeDefined();
    advance(2);
    expect(await adapterFor('AccessToken').find(id)).toBeUndefined();
  });

  test('expired rows are invisible to findByUid and findByUserCode too', async () => {
    const sessionId = newId();
    const uid = newId();
    const codeId = newId();
    const userCode = `EXP-${randomBytes(4).toString('hex')}`;
    await adapterFor('Session').upsert(sessionId, { kind: 'Session', jti: sessionId, uid } as AdapterPayload, 30);
    await adapterFor('DeviceCode').upsert(codeId, { kind: 'DeviceCode', jti: codeId, userCode } as AdapterPayload, 30);
    expect(await adapterFor('Session').findByUid(uid)).toBeDefined();
    expect(await adapterFor('DeviceCode').findByUserCode(userCode)).toBeDefined();
    advance(31);
    expect(await adapterFor('Session').findByUid(uid)).toBeUndefined();
    expect(await adapterFor('DeviceCode').findByUserCode(userCode)).toBeUndefined();
  });
});

describe('generic model adapter: lookups and destroy', () => {
  test('findByUid finds a Session by its uid', async () => {
    const id = newId();
    const uid = newId();
    const payload = { kind: 'Session', jti: id, uid, accountId: 'account-7', loginTs: epoch(clock) } as AdapterPayload;
    await adapterFor('Session').upsert(id, payload, 600);
    const found = await adapterFor('Session').findByUid(uid);
    // The id comes back too (kept sealed in the row), so a session found by uid saves in place.
    expect(found).toMatchObject({ kind: 'Session', jti: id, uid, accountId: 'account-7' });
    // A uid belongs to its model only.
    expect(await adapterFor('Interaction').findByUid(uid)).toBeUndefined();
  });

  test('findByUserCode finds a DeviceCode by its user code', async () => {
    const id = newId();
    const userCode = `ABCD-${randomBytes(4).toString('hex')}`;
    await adapterFor('DeviceCode').upsert(id, { kind: 'DeviceCode', jti: id, userCode, clientId: 'client-1', grantId: newId() } as AdapterPayload, 600);
    expect(await adapterFor('DeviceCode').findByUserCode(userCode)).toMatchObject({ kind: 'DeviceCode', jti: id, userCode, clientId: 'client-1' });
    expect(await adapterFor('AuthorizationCode').findByUserCode(userCode)).toBeUndefined();
  });

  test('destroy removes the row; destroying an unknown id is a no-op', async () => {
    const id = newId();
    await adapterFor('Interaction').upsert(id, { kind: 'Interaction', jti: id } as AdapterPayload, 600);
    await adapterFor('Interaction').destroy(id);
    expect(await adapterFor('Interaction').find(id)).toBeUndefined();
    expect(await rowsOfModel('Interaction', sha256(id))).toHaveLength(0);
    await expect(adapterFor('Interaction').destroy(newId())).resolves.toBeUndefined();
  });
});

describe('generic model adapter: consume', () => {
  test('consume sets `consumed` (epoch seconds of the injected clock) on the next find', async () => {
    const { code } = await seedGrant();
    const adapter = adapterFor('AuthorizationCode');
    expect((await adapter.find(code))?.consumed).toBeUndefined();
    advance(5);
    const consumedAt = clock;
    await adapter.consume(code);
    const found = await adapter.find(code);
    expect(found?.consumed).toBe(epoch(consumedAt));
    expect(found?.jti).toBe(code);
  });

  test('`consumed` in an upserted payload is ignored and a later upsert does not clear consumption', async () => {
    const id = newId();
    const adapter = adapterFor('AuthorizationCode');
    await adapter.upsert(id, tokenPayload('AuthorizationCode', id, newId(), { consumed: 1 }), 60);
    expect((await adapter.find(id))?.consumed).toBeUndefined();
    await adapter.consume(id);
    await adapter.upsert(id, tokenPayload('AuthorizationCode', id, newId()), 60);
    expect((await adapter.find(id))?.consumed).toBe(epoch(clock));
  });

  test('a second consume of an AuthorizationCode rejects with InvalidGrant', async () => {
    const { code } = await seedGrant();
    const adapter = adapterFor('AuthorizationCode');
    await adapter.consume(code);
    await expect(adapter.consume(code)).rejects.toBeInstanceOf(errors.InvalidGrant);
  });

  test('a second consume of a PushedAuthorizationRequest rejects with InvalidRequestUri', async () => {
    const id = newId();
    const adapter = adapterFor('PushedAuthorizationRequest');
    await adapter.upsert(id, { kind: 'PushedAuthorizationRequest', jti: id, clientId: 'client-1', request: 'eyJ.x.y' } as AdapterPayload, 60);
    await adapter.consume(id);
    await expect(adapter.consume(id)).rejects.toBeInstanceOf(errors.InvalidRequestUri);
    expect((await adapter.find(id))?.consumed).toBe(epoch(clock));
  });

  test('an expired code or request cannot be consumed', async () => {
    const { code } = await seedGrant();
    const par = newId();
    await adapterFor('PushedAuthorizationRequest').upsert(par, { kind: 'PushedAuthorizationRequest', jti: par, clientId: 'client-1' } as AdapterPayload, 60);
    advance(3600);
    await expect(adapterFor('AuthorizationCode').consume(code)).rejects.toBeInstanceOf(errors.InvalidGrant);
    await expect(adapterFor('PushedAuthorizationRequest').consume(par)).rejects.toBeInstanceOf(errors.InvalidRequestUri);
  });

  test('an Interaction payload is sealed: neither the session cookie value nor its own id is readable', async () => {
    const id = newId();
    const sessionCookie = newId();
    const payload = { kind: 'Interaction', jti: id, returnTo: `https://as.example/auth/${id}`, session: { cookie: sessionCookie, uid: 'u1', accountId: 'a1' } } as AdapterPayload;
    await adapterFor('Interaction').upsert(id, payload, 600);
    const row = await database.db.selectFrom('oidc_models').select(['payload']).where('model', '=', 'Interaction').where('key', '=', sha256(id)).executeTakeFirstOrThrow();
    expect(JSON.stringify(row)).not.toContain(sessionCookie);
    expect(JSON.stringify(row)).not.toContain(id);
    expect(await adapterFor('Interaction').find(id)).toMatchObject({ jti: id, returnTo: `https://as.example/auth/${id}`, session: { cookie: sessionCookie } });
  });

  test('consuming an unknown id rejects (and touches nothing)', async () => {
    const other = await seedGrant();
    await expect(adapterFor('AuthorizationCode').consume(newId())).rejects.toBeInstanceOf(errors.InvalidGrant);
    await expect(adapterFor('PushedAuthorizationRequest').consume(newId())).rejects.toBeInstanceOf(errors.InvalidRequestUri);
    expect(await countGrantRows(other.grantId)).toEqual({ Grant: 1, AuthorizationCode: 1, AccessToken: 2, RefreshToken: 1 });
  });

  test('a failed consume of an AuthorizationCode removes its whole grant, and nothing of other grants', async () => {
    const victim = await seedGrant();
    const bystander = await seedGrant();
    const adapter = adapterFor('AuthorizationCode');
    expect(await countGrantRows(victim.grantId)).toEqual({ Grant: 1, AuthorizationCode: 1, AccessToken: 2, RefreshToken: 1 });

    await adapter.consume(victim.code);
    await expect(adapter.consume(victim.code)).rejects.toBeInstanceOf(errors.InvalidGrant);

    expect(await countGrantRows(victim.grantId)).toEqual({});
    expect(await adapterFor('Grant').find(victim.grantId)).toBeUndefined();
    for (const at of victim.accessTokens) expect(await adapterFor('AccessToken').find(at)).toBeUndefined();
    expect(await adapterFor('RefreshToken').find(victim.refreshToken)).toBeUndefined();

    expect(await countGrantRows(bystander.grantId)).toEqual({ Grant: 1, AuthorizationCode: 1, AccessToken: 2, RefreshToken: 1 });
    expect(await adapterFor('Grant').find(bystander.grantId)).toBeDefined();
  });

  test('race: of 50 concurrent consume() calls of one code exactly one wins', async () => {
    const { code } = await seedGrant();
    const adapter = adapterFor('AuthorizationCode');
    const results = await Promise.allSettled(Array.from({ length: 50 }, () => adapter.consume(code)));
    const fulfilled = results.filter((r) => r.status === 'fulfilled');
    const rejected = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    expect(fulfilled).toHaveLength(1);
    expect(rejected).toHaveLength(49);
    for (const r of rejected) expect(r.reason).toBeInstanceOf(errors.InvalidGrant);
  });

  test('race: of 50 concurrent consume() calls of one PAR exactly one wins', async () => {
    const id = newId();
    const adapter = adapterFor('PushedAuthorizationRequest');
    await adapter.upsert(id, { kind: 'PushedAuthorizationRequest', jti: id, clientId: 'client-1' } as AdapterPayload, 60);
    const results = await Promise.allSettled(Array.from({ length: 50 }, () => adapter.consume(id)));
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    const rejected = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    expect(rejected).toHaveLength(49);
    for (const r of rejected) expect(r.reason).toBeInstanceOf(errors.InvalidRequestUri);
  });
});

describe('generic model adapter: revokeByGrantId', () => {
  test('deletes every AccessToken, RefreshToken and AuthorizationCode of the grant, keeps the Grant and other grants', async () => {
    const target = await seedGrant();
    const other = await seedGrant();
    const sessionId = newId();
    await adapterFor('Session').upsert(sessionId, { kind: 'Session', jti: sessionId, uid: newId() } as AdapterPayload, 600);

    await adapterFor('AccessToken').revokeByGrantId(target.grantId);

    expect(await countGrantRows(target.grantId)).toEqual({ Grant: 1 });
    expect(await adapterFor('Grant').find(target.grantId)).toMatchObject({ jti: target.grantId });
    expect(await adapterFor('AuthorizationCode').find(target.code)).toBeUndefined();
    for (const at of target.accessTokens) expect(await adapterFor('AccessToken').find(at)).toBeUndefined();
    expect(await adapterFor('RefreshToken').find(target.refreshToken)).toBeUndefined();

    expect(await countGrantRows(other.grantId)).toEqual({ Grant: 1, AuthorizationCode: 1, AccessToken: 2, RefreshToken: 1 });
    expect(await adapterFor('AccessToken').find(other.accessTokens[0] ?? '')).toBeDefined();
    expect(await adapterFor('Session').find(sessionId)).toBeDefined();
  });

  test('revoking an unknown grant is a no-op', async () => {
    const other = await seedGrant();
    await expect(adapterFor('RefreshToken').revokeByGrantId(newId())).resolves.toBeUndefined();
    expect(await countGrantRows(other.grantId)).toEqual({ Grant: 1, AuthorizationCode: 1, AccessToken: 2, RefreshToken: 1 });
  });
});

describe('ReplayDetection', () => {
  test('first find of a fresh id is undefined (first use); the second returns a payload (replay)', async () => {
    const id = newId();
    const adapter = adapterFor('ReplayDetection');
    expect(await adapter.find(id)).toBeUndefined();
    const replay = await adapter.find(id);
    expect(replay).toMatchObject({ kind: 'ReplayDetection', jti: id });
    expect(replay?.exp).toBe(epoch(clock) + 310);
    // The table only knows the hash.
    const rows = await rowsOfModel('ReplayDetection', sha256(id));
    expect(rows).toHaveLength(1);
    expect(JSON.stringify(rows)).not.toContain(id);
  });

  test('20 concurrent finds of one fresh id: exactly one sees first use', async () => {
    const id = newId();
    const adapter = adapterFor('ReplayDetection');
    const results = await Promise.all(Array.from({ length: 20 }, () => adapter.find(id)));
    expect(results.filter((r) => r === undefined)).toHaveLength(1);
    for (const r of results.filter((x) => x !== undefined)) expect(r).toMatchObject({ kind: 'ReplayDetection', jti: id });
  });

  test('after the provisional expiry the id counts as a first use again, once', async () => {
    const id = newId();
    const adapter = adapterFor('ReplayDetection');
    expect(await adapter.find(id)).toBeUndefined();
    advance(309);
    expect(await adapter.find(id)).toBeDefined();
    advance(2);
    expect(await adapter.find(id)).toBeUndefined();
    expect(await adapter.find(id)).toBeDefined();
  });

  test('a save within the provisional expiry (DPoP proofs: 300 s) writes nothing: the row already lives long enough', async () => {
    const id = newId();
    const adapter = adapterFor('ReplayDetection');
    expect(await adapter.find(id)).toBeUndefined();
    const [before] = await rowsOfModel('ReplayDetection', sha256(id));
    // oidc-provider's ReplayDetection.unique(): find(), then save(exp - now).
    await adapter.upsert(id, { kind: 'ReplayDetection', jti: id, iss: 'client-1', exp: epoch(clock) + 300, iat: epoch(clock) } as AdapterPayload, 300);
    expect(await rowsOfModel('ReplayDetection', sha256(id))).toEqual([before]);
    advance(309);
    expect(await adapter.find(id)).toBeDefined();
  });

  test('a longer expiry (an assertion valid for an hour) is written and replaces the provisional one', async () => {
    const id = newId();
    const adapter = adapterFor('ReplayDetection');
    expect(await adapter.find(id)).toBeUndefined();
    await adapter.upsert(id, { kind: 'ReplayDetection', jti: id, iss: 'client-1', exp: epoch(clock) + 3600, iat: epoch(clock) } as AdapterPayload, 3600);
    advance(3599);
    expect(await adapter.find(id)).toBeDefined();
    advance(2);
    expect(await adapter.find(id)).toBeUndefined();
  });
});

describe('a token read together with its grant', () => {
  /** Runs `body` as one request would: inside the request scope. */
  const inRequest = <T>(body: () => Promise<T>): Promise<T> => new Promise((resolve, reject) => {
    scope.middleware()({ ip: '127.0.0.1', state: {} } as never, () => body().then(resolve, reject));
  });

  test('within a request, Grant.find after AccessToken.find is answered from the same read (no second query)', async () => {
    const { grantId, accessTokens } = await seedGrant();
    await inRequest(async () => {
      expect(await adapterFor('AccessToken').find(accessTokens[0]!)).toMatchObject({ grantId });
      // The grant row goes now: the read-ahead (same snapshot as the token) still answers,
      // proving Grant.find did not query again …
      await database.db.deleteFrom('oidc_models').where('model', '=', 'Grant').where('key', '=', sha256(grantId)).execute();
      expect(await adapterFor('Grant').find(grantId)).toMatchObject({ jti: grantId, kind: 'Grant' });
      // … once: a second Grant.find in the same request reads the database.
      expect(await adapterFor('Grant').find(grantId)).toBeUndefined();
    });
  });

  test('a token whose grant is gone: Grant.find answers undefined from the read-ahead', async () => {
    const { grantId, accessTokens } = await seedGrant();
    await database.db.deleteFrom('oidc_models').where('model', '=', 'Grant').where('key', '=', sha256(grantId)).execute();
    await inRequest(async () => {
      expect(await adapterFor('AccessToken').find(accessTokens[0]!)).toMatchObject({ grantId });
      expect(await adapterFor('Grant').find(grantId)).toBeUndefined();
    });
  });

  test('an expired grant is not read ahead as live', async () => {
    const { grantId, refreshToken } = await seedGrant();
    await database.db.updateTable('oidc_models').set({ expires_at: new Date(clock.getTime() - 1000) }).where('model', '=', 'Grant').where('key', '=', sha256(grantId)).execute();
    await inRequest(async () => {
      expect(await adapterFor('RefreshToken').find(refreshToken)).toMatchObject({ grantId });
      expect(await adapterFor('Grant').find(grantId)).toBeUndefined();
    });
  });

  test('the parallel finds of every token model and the grant lookup after them cost one statement', async () => {
    const { grantId, accessTokens } = await seedGrant();
    const statements: string[] = [];
    const counted = createAdapterFactory({
      db: database.db, scope, clients, box: new SecretBox(Buffer.alloc(32, 7).toString('base64')), now: () => clock,
      prepared: (name, text, values) => { statements.push(name); return database.prepared(name, text, values); },
    });
    await inRequest(async () => {
      // oidc-provider's findToken() without a hint: three finds at once, then Grant.find
      const [access, machine, refresh] = await Promise.all(['AccessToken', 'ClientCredentials', 'RefreshToken'].map((model) => counted(model).find(accessTokens[0]!)));
      expect(access).toMatchObject({ kind: 'AccessToken', jti: accessTokens[0], grantId });
      expect(machine).toBeUndefined();
      expect(refresh).toBeUndefined();
      expect(await counted('Grant').find(grantId)).toMatchObject({ jti: grantId });
    });
    expect(statements).toEqual(['oidc_models_find_token_with_grant']);
  });

  test('nothing is carried over to another request', async () => {
    const { grantId, accessTokens } = await seedGrant();
    await inRequest(() => adapterFor('AccessToken').find(accessTokens[0]!));
    await database.db.deleteFrom('oidc_models').where('model', '=', 'Grant').where('key', '=', sha256(grantId)).execute();
    await inRequest(async () => { expect(await adapterFor('Grant').find(grantId)).toBeUndefined(); });
    expect(await adapterFor('Grant').find(grantId)).toBeUndefined();
  });
});

describe('Client adapter', () => {
  test('delegates to the ClientStore', async () => {
    const adapter = adapterFor('Client');
    expect(await adapter.find('known-client')).toEqual({ client_id: 'known-client', client_name: 'Known' });
    expect(await adapter.find('unknown-client')).toBeUndefined();
    await adapter.upsert('c-2', { client_id: 'c-2' } as AdapterPayload);
    await adapter.destroy('c-3');
    expect(clientCalls).toEqual(['find:known-client', 'find:unknown-client', 'save:c-2', 'delete:c-3']);
    await expect(adapter.consume('known-client')).rejects.toBeInstanceOf(errors.InvalidRequest);
    expect(await database.db.selectFrom('oidc_models').select('key').where('model', '=', 'Client').execute()).toEqual([]);
  });
});
