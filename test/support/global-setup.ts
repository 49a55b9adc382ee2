import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { PGlite } from '@electric-sql/pglite';

/**
 * A fresh PGlite costs 4–6 s of initdb; each test file instead loads this snapshot of an
 * empty cluster (≈ 1 s). Migrations still run per database, as in production.
 */
export default async function globalSetup(): Promise<void> {
  if (process.env.TEST_DATABASE_URL) return;
  const pglite = await PGlite.create();
  const dump = await pglite.dumpDataDir('none');
  await pglite.close();
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-test-'));
  const file = join(dir, 'pglite-snapshot.tar');
  writeFileSync(file, Buffer.from(await dump.arrayBuffer()));
  process.env.PORTCULLIS_PGLITE_SNAPSHOT = file;
}
