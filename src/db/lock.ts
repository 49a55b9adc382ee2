import { sql } from 'kysely';

import type { Db, Executor } from './database.js';

/**
 * Runs `work` in a transaction holding a transaction-scoped advisory lock, so that
 * instances starting together do one-time set-up (keys, secrets) exactly once. Waiting
 * for the instance that holds it may take longer than a request's 1 s lock timeout.
 */
const SET_UP_LOCK_TIMEOUT = '30s';

export async function withAdvisoryLock<T>(db: Db, lockName: string, work: (trx: Executor) => Promise<T>): Promise<T> {
  return db.transaction().execute(async (trx) => {
    await sql`select set_config('lock_timeout', ${SET_UP_LOCK_TIMEOUT}, true)`.execute(trx);
    await sql`select pg_advisory_xact_lock(hashtext(${lockName}))`.execute(trx);
    return work(trx);
  });
}
