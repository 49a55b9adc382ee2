import { sql } from 'kysely';

import type { Container } from '../../src/container.js';
import type { Db } from '../../src/db/database.js';

/**
 * The growth scenario (issue #8 point 6): a database holding 1 M live tokens (access,
 * refresh and client-credentials tokens with their grants) and 100 k customers, plus
 * 300 k expired rows for the sweeper. Rows are written by SQL (generate_series): what is
 * measured is how the hot paths behave over large tables, not how fast they were filled.
 */

export const LIVE_TOKENS = 1_000_000;
export const CUSTOMERS = 100_000;
export const EXPIRED = 300_000;

export interface GrowthFigures {
  readonly populateSeconds: number;
  readonly rowsBefore: number;
  readonly expiredInserted: number;
  readonly swept: number;
  readonly sweepSeconds: number;
  readonly sweepRuns: number;
  readonly expiredLeft: number;
  readonly rowsAfter: number;
}

async function count(db: Db, where: ReturnType<typeof sql> = sql`true`): Promise<number> {
  return db.transaction().execute(async (trx) => {
    await sql`set local statement_timeout = 0`.execute(trx);
    const { rows } = await sql<{ n: number }>`select count(*)::int as n from oidc_models where ${where}`.execute(trx);
    return rows[0]!.n;
  });
}

/** Bulk statements run far beyond a request's statement timeout: lifted for their transaction. */
async function bulk(db: Db, statement: ReturnType<typeof sql>): Promise<void> {
  await db.transaction().execute(async (trx) => {
    await sql`set local statement_timeout = 0`.execute(trx);
    await statement.execute(trx);
  });
}

export async function populateGrowth(db: Db): Promise<GrowthFigures> {
  const started = performance.now();
  // A dummy argon2id string: these customers never sign in; they make the table large.
  await bulk(db, sql`
    insert into users (username, password_hash, name)
    select 'growth-' || g, '$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g', 'Growth ' || g
    from generate_series(1, ${CUSTOMERS}) g`);
  // One grant per ten tokens; keys look like ours (base64url SHA-256).
  await bulk(db, sql`
    insert into oidc_models (model, key, payload, grant_id, expires_at)
    select 'Grant', 'growth-grant-' || g, jsonb_build_object('accountId', 'growth-' || g, 'clientId', 'growth-client', 'kind', 'Grant', 'iat', extract(epoch from now())::int),
           'growth-grant-' || g, now() + interval '90 days'
    from generate_series(1, ${LIVE_TOKENS / 10}) g`);
  await bulk(db, sql`
    insert into oidc_models (model, key, payload, grant_id, expires_at)
    select (array['AccessToken', 'RefreshToken', 'ClientCredentials'])[1 + g % 3],
           translate(encode(sha256(('growth-' || g)::bytea), 'base64'), '+/=', '-_'),
           jsonb_build_object('accountId', 'growth-' || (g / 10), 'clientId', 'growth-client', 'kind', 'AccessToken', 'scope', 'accounts',
                              'grantId', 'growth-grant-' || (1 + g / 10), 'iat', extract(epoch from now())::int, 'exp', extract(epoch from now())::int + 86400),
           'growth-grant-' || (1 + g / 10), now() + interval '1 day'
    from generate_series(1, ${LIVE_TOKENS}) g`);
  await bulk(db, sql`
    insert into oidc_models (model, key, payload, grant_id, expires_at)
    select 'AccessToken', translate(encode(sha256(('expired-' || g)::bytea), 'base64'), '+/=', '-_'),
           jsonb_build_object('kind', 'AccessToken', 'clientId', 'growth-client'), null, now() - interval '1 minute'
    from generate_series(1, ${EXPIRED}) g`);
  await bulk(db, sql`analyze`);
  return {
    populateSeconds: (performance.now() - started) / 1000,
    rowsBefore: await count(db),
    expiredInserted: EXPIRED,
    swept: 0, sweepSeconds: 0, sweepRuns: 0, expiredLeft: EXPIRED, rowsAfter: 0,
  };
}

/** Runs the sweeper as the server's timer would, until no expired row is left (bounded). */
export async function sweepGrowth(container: Container): Promise<Pick<GrowthFigures, 'swept' | 'sweepSeconds' | 'sweepRuns' | 'expiredLeft' | 'rowsAfter'>> {
  const { db } = container.database;
  const started = performance.now();
  let swept = 0;
  let runs = 0;
  for (; runs < 20; runs += 1) {
    const removed = await container.sweeper.sweepOnce();
    swept += removed;
    if (removed === 0) break;
  }
  return {
    swept,
    sweepSeconds: (performance.now() - started) / 1000,
    sweepRuns: runs,
    expiredLeft: await count(db, sql`expires_at <= now()`),
    rowsAfter: await count(db),
  };
}
