import { afterAll, beforeAll, expect, test } from '@jest/globals';

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
