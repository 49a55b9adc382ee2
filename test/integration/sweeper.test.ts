import { randomBytes } from 'node:crypto';

import { afterAll, beforeAll, beforeEach, describe, expect, test } from '@jest/globals';
import type { KyselyPlugin } from 'kysely';
import type { AdapterPayload } from 'oidc-provider';
import { pino } from 'pino';

import { openDatabase, type Database, type Db } from '../../src/db/database.js';
import { migrateToLatest } from '../../src/db/migrate.js';
import { sweepExpired } from '../../src/db/repositories/oidc-models.js';
import { createAdapterFactory } from '../../src/oidc/adapter.js';
import { RequestScope } from '../../src/oidc/request-scope.js';
import { SecretBox } from '../../src/services/secret-box.js';
import type { ClientStore } from '../../src/services/clients.js';
import { Sweeper } from '../../src/services/sweeper.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';

let testDb: TestDatabase;
let database: Database;
const start = new Date('2030-01-01T00:00:00.000Z');
let clock = start;
const now = (): Date => clock;
const log = pino({ level: 'silent' });

const clients: ClientStore = {
  async findProviderMetadata() { return undefined; },
  async saveProviderMetadata() { /* unused */ },
  async deleteClient() { /* unused */ },
};

beforeAll(async () => {
  testDb = await createTestDatabase();
  database = await openDatabase({
    databaseUrl: testDb.url,
    dataDir: '/nonexistent',
    pglite: testDb.kind === 'pglite' ? await testDb.pglite() : undefined,
  });
  await migrateToLatest(database.db);
});

afterAll(async () => {
  await database?.close();
  await testDb?.drop();
});

beforeEach(async () => {
  clock = start;
  await database.db.deleteFrom('oidc_models').execute();
});

function newKey(): string {
  return randomBytes(32).toString('base64url');
}

const MODELS = ['AccessToken', 'RefreshToken', 'AuthorizationCode', 'Session', 'Interaction', 'ReplayDetection'];

/** Inserts `count` rows expiring at `expiresAt` (null: never), in multi-row statements. */
async function insertRows(count: number, expiresAt: Date | null): Promise<void> {
  for (let done = 0; done < count; done += 500) {
    const rows = Array.from({ length: Math.min(500, count - done) }, (_, i) => ({
      model: MODELS[(done + i) % MODELS.length] ?? 'AccessToken',
      key: newKey(),
      payload: JSON.stringify({ kind: 'x' }),
      expires_at: expiresAt,
    }));
    await database.db.insertInto('oidc_models').values(rows).execute();
  }
}

async function countRows(): Promise<{ total: number; expired: number }> {
  const rows = await database.db.selectFrom('oidc_models').select(['expires_at']).execute();
  return {
    total: rows.length,
    expired: rows.filter((r) => r.expires_at !== null && r.expires_at.getTime() <= clock.getTime()).length,
  };
}

/** The same database, recording the number of rows each statement run through it affected. */
function observed(db: Db): { db: Db; deletes: number[] } {
  const deletes: number[] = [];
  const plugin: KyselyPlugin = {
    transformQuery: (args) => args.node,
    transformResult: async (args) => {
      // The sweeper issues nothing but its DELETE statements through this instance.
      deletes.push(Number(args.result.numAffectedRows ?? 0));
      return args.result;
    },
  };
  return { db: db.withPlugin(plugin), deletes };
}

describe('sweepExpired (repository)', () => {
  test('removes at most batchSize expired rows per call, never live or non-expiring ones', async () => {
    await insertRows(2500, new Date(start.getTime() - 1000));
    await insertRows(10, new Date(start.getTime() + 3600_000));
    await insertRows(5, null);

    expect(await sweepExpired(database.db, clock, 1000)).toBe(1000);
    expect(await countRows()).toEqual({ total: 1515, expired: 1500 });
    expect(await sweepExpired(database.db, clock, 1000)).toBe(1000);
    expect(await sweepExpired(database.db, clock, 1000)).toBe(500);
    expect(await sweepExpired(database.db, clock, 1000)).toBe(0);
    expect(await countRows()).toEqual({ total: 15, expired: 0 });
  });

  test('a row expiring exactly now is swept', async () => {
    await insertRows(3, clock);
    await insertRows(2, new Date(clock.getTime() + 1));
    expect(await sweepExpired(database.db, clock, 1000)).toBe(3);
    expect((await countRows()).total).toBe(2);
  });
});

describe('Sweeper.sweepOnce', () => {
  test('removes exactly the expired rows, in batches of the given size', async () => {
    await insertRows(2500, new Date(start.getTime() - 1000));
    await insertRows(10, new Date(start.getTime() + 3600_000));
    await insertRows(5, null);
    const { db, deletes } = observed(database.db);

    expect(await new Sweeper(db, log, now).sweepOnce(1000)).toBe(2500);
    expect(deletes).toEqual([1000, 1000, 500]);
    expect(await countRows()).toEqual({ total: 15, expired: 0 });

    // Nothing left: one short batch.
    deletes.length = 0;
    expect(await new Sweeper(db, log, now).sweepOnce(1000)).toBe(0);
    expect(deletes).toEqual([0]);
  });

  test('an exact multiple of the batch size ends with one empty batch', async () => {
    await insertRows(2000, new Date(start.getTime() - 1000));
    const { db, deletes } = observed(database.db);
    expect(await new Sweeper(db, log, now).sweepOnce(1000)).toBe(2000);
    expect(deletes).toEqual([1000, 1000, 0]);
  });

  test('one run stops after a bounded number of batches; the next run continues', async () => {
    await insertRows(2500, new Date(start.getTime() - 1000));
    const { db, deletes } = observed(database.db);
    const sweeper = new Sweeper(db, log, now);

    // 100 batches of 10 at most per run.
    expect(await sweeper.sweepOnce(10)).toBe(1000);
    expect(deletes).toHaveLength(100);
    expect(deletes.every((n) => n === 10)).toBe(true);
    expect((await countRows()).total).toBe(1500);

    expect(await sweeper.sweepOnce(10)).toBe(1000);
    expect(await sweeper.sweepOnce(10)).toBe(500);
    expect((await countRows()).total).toBe(0);
  });

  test('two sweepers running at once remove every expired row exactly once between them', async () => {
    await insertRows(2500, new Date(start.getTime() - 1000));
    await insertRows(10, new Date(start.getTime() + 3600_000));
    const removed = await Promise.all([
      new Sweeper(database.db, log, now).sweepOnce(100),
      new Sweeper(database.db, log, now).sweepOnce(100),
    ]);
    expect(removed[0] + removed[1]).toBe(2500);
    expect(await countRows()).toEqual({ total: 10, expired: 0 });
  });

  test('rows written through the adapter: expired ones go once the clock passes their expiry, live ones stay findable', async () => {
    const adapterFor = createAdapterFactory({ db: database.db, prepared: database.prepared, scope: new RequestScope(), clients, box: new SecretBox(Buffer.alloc(32, 7).toString('base64')), now });
    const shortLived = Array.from({ length: 30 }, () => newKey());
    const longLived = Array.from({ length: 10 }, () => newKey());
    const grantId = newKey();
    for (const id of shortLived) {
      await adapterFor('AccessToken').upsert(id, { kind: 'AccessToken', jti: id, grantId } as AdapterPayload, 60);
    }
    for (const id of longLived) {
      await adapterFor('RefreshToken').upsert(id, { kind: 'RefreshToken', jti: id, grantId } as AdapterPayload, 86_400);
    }
    await adapterFor('Grant').upsert(grantId, { kind: 'Grant', jti: grantId } as AdapterPayload);
    const sweeper = new Sweeper(database.db, log, now);

    expect(await sweeper.sweepOnce(7)).toBe(0);
    clock = new Date(start.getTime() + 61_000);
    expect(await sweeper.sweepOnce(7)).toBe(30);

    for (const id of longLived) expect(await adapterFor('RefreshToken').find(id)).toMatchObject({ jti: id });
    expect(await adapterFor('Grant').find(grantId)).toMatchObject({ jti: grantId });
    expect((await countRows()).total).toBe(11);
  });
});
