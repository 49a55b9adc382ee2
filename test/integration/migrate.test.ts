import { afterAll, beforeAll, expect, test } from '@jest/globals';
import { sql } from 'kysely';

import { openDatabase, type Database } from '../../src/db/database.js';
import { migrateToLatest } from '../../src/db/migrate.js';
import { migrations } from '../../migrations/index.js';
import { createTestDatabase, usingPostgres, type TestDatabase } from '../support/database.js';

let testDb: TestDatabase;
const opened: Database[] = [];

async function open(): Promise<Database> {
  const database = await openDatabase({ databaseUrl: testDb.url, dataDir: '/nonexistent', pglite: testDb.kind === 'pglite' ? await testDb.pglite() : undefined });
  opened.push(database);
  return database;
}

beforeAll(async () => {
  testDb = await createTestDatabase();
});

afterAll(async () => {
  for (const database of opened) await database.close();
  await testDb?.drop();
});

test('instances starting together migrate once: every migration applied exactly once, no error', async () => {
  // On PostgreSQL these are separate pools racing for the migration lock. PGlite is one
  // process with one connection (DATA_DIR is locked to one process): its starts are
  // sequential by construction, so they are run one after the other.
  const instances = await Promise.all(Array.from({ length: usingPostgres() ? 4 : 2 }, () => open()));
  const results = usingPostgres()
    ? await Promise.all(instances.map((instance) => migrateToLatest(instance.db)))
    : [await migrateToLatest(instances[0]!.db), await migrateToLatest(instances[1]!.db)];
  const applied = results.flat();
  expect(applied.sort()).toEqual(Object.keys(migrations).sort());

  const rows = await instances[0]!.db.selectFrom('schema_migrations' as never).select('name' as never).execute();
  expect(rows).toHaveLength(Object.keys(migrations).length);
  // A later start finds nothing to do.
  expect(await migrateToLatest(instances[1]!.db)).toEqual([]);
});

(usingPostgres() ? test : test.skip)('an instance waits for another\'s migration longer than a request may wait for a lock (1 s)', async () => {
  const instance = await open();
  const holder = await open();
  // Kysely's PostgreSQL migration lock (PostgresAdapter LOCK_ID), held here by "another instance" for 2.5 s.
  const released = holder.db.connection().execute(async (connection) => {
    await sql`select pg_advisory_lock(3853314791062309107)`.execute(connection);
    await new Promise((resolve) => setTimeout(resolve, 2500));
    await sql`select pg_advisory_unlock(3853314791062309107)`.execute(connection);
  });
  await new Promise((resolve) => setTimeout(resolve, 200));
  const started = Date.now();
  expect(await migrateToLatest(instance.db)).toEqual([]);
  expect(Date.now() - started).toBeGreaterThan(2000);
  await released;
  // The connection went back to the pool with the request timeouts in force again.
  const { rows } = await sql<{ lock_timeout: string }>`select current_setting('lock_timeout') as lock_timeout`.execute(instance.db);
  expect(rows[0]!.lock_timeout).toBe('1s');
});
