import globalSetup from '../../test/support/global-setup.js';
import { createTestDatabase, type TestDatabase } from '../../test/support/database.js';

/**
 * The database a script runs the app on, the way the tests do (test/support/database.ts):
 * - TEST_DATABASE_URL set: a new, throw-away database on that server (dropped at the end);
 * - else DATABASE_URL set: that database itself (the script's clients, customers and
 *   tokens stay in it: point it at a scratch database);
 * - else: embedded PGlite, in memory, cloned from a fresh snapshot.
 */
export async function scriptDatabase(): Promise<{ database: TestDatabase; description: string }> {
  if (process.env.TEST_DATABASE_URL) {
    const database = await createTestDatabase();
    return { database, description: `PostgreSQL (throw-away database on ${redact(process.env.TEST_DATABASE_URL)})` };
  }
  const url = process.env.DATABASE_URL;
  if (url) {
    return {
      database: { kind: 'postgres', url, pglite: () => { throw new Error('not a PGlite database'); }, async drop() { /* not ours to drop */ } },
      description: `PostgreSQL (${redact(url)}, used as is)`,
    };
  }
  await globalSetup();
  return { database: await createTestDatabase(), description: 'PGlite (in memory)' };
}

function redact(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    return parsed.toString();
  } catch {
    return 'an unparsable URL';
  }
}
