import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';

import { PGlite } from '@electric-sql/pglite';
import pg from 'pg';

/**
 * One database per test file: a new PostgreSQL database on TEST_DATABASE_URL when it is
 * set, otherwise an in-memory PGlite cloned from the global snapshot.
 */
export interface TestDatabase {
  readonly kind: 'postgres' | 'pglite';
  /** set for PostgreSQL */
  readonly url: string | undefined;
  /** set for PGlite; a new instance per call (each app container owns and closes its own) */
  pglite(): Promise<PGlite>;
  drop(): Promise<void>;
}

export const usingPostgres = (): boolean => Boolean(process.env.TEST_DATABASE_URL);

/**
 * A new database on the server `adminUrl` points at, named `<prefix>_<random>` (the name
 * is generated here, never taken from input), and how to drop it.
 */
export async function createScratchDatabase(adminUrl: string, prefix: string): Promise<{ url: string; drop(): Promise<void> }> {
  const name = `${prefix}_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  await admin.query(`create database ${name}`);
  await admin.end();
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    async drop() {
      const client = new pg.Client({ connectionString: adminUrl });
      await client.connect();
      await client.query(`drop database if exists ${name} with (force)`);
      await client.end();
    },
  };
}

export async function createTestDatabase(): Promise<TestDatabase> {
  const adminUrl = process.env.TEST_DATABASE_URL;
  if (adminUrl) {
    const scratch = await createScratchDatabase(adminUrl, 'portcullis_test');
    return { kind: 'postgres', ...scratch, pglite: () => { throw new Error('not a PGlite test database'); } };
  }

  const snapshot = process.env.PORTCULLIS_PGLITE_SNAPSHOT;
  if (!snapshot) throw new Error('PGlite snapshot missing: is jest globalSetup configured?');
  // PGlite has one connection per instance: a test file that restarts the app keeps its
  // data by reusing the same instance (handed over, never closed by the app under test).
  let shared: Promise<PGlite> | undefined;
  return {
    kind: 'pglite',
    url: undefined,
    pglite() {
      shared ??= PGlite.create({ loadDataDir: new Blob([readFileSync(snapshot)]) });
      return shared;
    },
    async drop() {
      await (await shared)?.close();
    },
  };
}
