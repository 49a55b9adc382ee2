import { sql } from 'kysely';
import { Migrator, type MigrationResultSet } from 'kysely/migration';

import { migrations } from '../../migrations/index.js';
import type { Db } from './database.js';

/**
 * Brings the schema to the latest migration. Safe when several instances start at
 * once: Kysely's PostgreSQL adapter serialises migrators with an advisory lock held
 * for the whole run, and a migrator that waited finds nothing left to do. Waiting for
 * another instance's migration (and running one) is expected to take longer than the
 * pool's lock and statement timeouts allow a request: this one connection lifts them.
 */
export async function migrateToLatest(db: Db): Promise<string[]> {
  return db.connection().execute(async (connection) => {
    await sql`set lock_timeout = 0`.execute(connection);
    await sql`set statement_timeout = 0`.execute(connection);
    try {
      return await migrate(connection);
    } finally {
      await sql`reset lock_timeout`.execute(connection);
      await sql`reset statement_timeout`.execute(connection);
    }
  });
}

async function migrate(db: Db): Promise<string[]> {
  const migrator = new Migrator({
    db,
    provider: { getMigrations: async () => ({ ...migrations }) },
    migrationTableName: 'schema_migrations',
    migrationLockTableName: 'schema_migrations_lock',
  });
  const result: MigrationResultSet = await migrator.migrateToLatest();
  if (result.error !== undefined) {
    const failed = result.results?.find((r) => r.status === 'Error')?.migrationName ?? 'unknown';
    throw new Error(`migration ${failed} failed: ${result.error instanceof Error ? result.error.message : 'unknown error'}`);
  }
  return (result.results ?? []).filter((r) => r.status === 'Success').map((r) => r.migrationName);
}
