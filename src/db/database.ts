import { mkdirSync } from 'node:fs';
import { resolve } from 'node:path';

import { PGlite } from '@electric-sql/pglite';
import { Kysely, PostgresDialect, sql, type Transaction } from 'kysely';
import { PGliteDialect } from 'kysely-pglite-dialect';
import pg from 'pg';

import { listenPglite, listenPostgres, type ChangeFeed, type ChangeHandlers } from './notifications.js';
import type { DB } from './schema.js';

export type Db = Kysely<DB>;
/** What repositories accept: the database or an open transaction on it. */
export type Executor = Kysely<DB> | Transaction<DB>;

export interface Database {
  readonly db: Db;
  readonly kind: 'postgres' | 'pglite';
  /** true when the database answers a trivial query within a short time */
  ping(): Promise<boolean>;
  /**
   * Runs one statement the hot paths issue thousands of times a second. On PostgreSQL it is
   * a named prepared statement (parsed and planned once per connection, which doubles
   * throughput over Kysely's unnamed statements); on PGlite a plain parameterised query.
   * `name` must identify `text` uniquely; values are always bound parameters, never spliced.
   */
  prepared<Row>(name: string, text: string, values: readonly unknown[]): Promise<Row[]>;
  /** LISTENs on `channel` (see notifications.ts for what a cache must do with it) */
  listen(channel: string, handlers: ChangeHandlers): Promise<ChangeFeed>;
  /** connections in use / idle / waiting (pg pool only) */
  poolStats(): { total: number; idle: number; waiting: number } | undefined;
  close(): Promise<void>;
}

export interface DatabaseOptions {
  readonly databaseUrl: string | undefined;
  readonly dataDir: string;
  readonly poolMax?: number;
  /** an already open PGlite (tests clone one from a snapshot) */
  readonly pglite?: PGlite;
}

// int8 (count(*), sums) as JS numbers: every int8 we read is a row count far below 2^53.
pg.types.setTypeParser(20, (value: string) => Number(value));

export async function openDatabase(options: DatabaseOptions): Promise<Database> {
  const { databaseUrl } = options;
  if (databaseUrl !== undefined) {
    const pool = new pg.Pool({
      connectionString: databaseUrl,
      max: options.poolMax ?? 10,
      // Fail fast instead of queueing forever when the database is unreachable or saturated.
      connectionTimeoutMillis: 5_000,
      idleTimeoutMillis: 30_000,
      // Bounds every statement: a stuck query must not hold a request (and a connection) forever.
      statement_timeout: 10_000,
      application_name: 'portcullis',
    });
    // An idle client losing its connection (database restart) must not crash the process.
    pool.on('error', () => undefined);
    const db = new Kysely<DB>({ dialect: new PostgresDialect({ pool }) });
    return {
      db,
      kind: 'postgres',
      ping: () => ping(db),
      prepared: async <Row>(name: string, text: string, values: readonly unknown[]) =>
        (await pool.query<Row & pg.QueryResultRow>({ name, text, values: [...values] })).rows as Row[],
      listen: (channel, handlers) => listenPostgres(databaseUrl, channel, handlers),
      poolStats: () => ({ total: pool.totalCount, idle: pool.idleCount, waiting: pool.waitingCount }),
      close: () => db.destroy(),
    };
  }

  let pglite = options.pglite;
  // A PGlite handed in belongs to the caller, who closes it; one we open, we close.
  const owned = pglite === undefined;
  if (pglite === undefined) {
    const dir = resolve(options.dataDir, 'pglite');
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    pglite = await PGlite.create(dir);
  }
  const db = new Kysely<DB>({ dialect: new PGliteDialect(pglite) });
  const embedded = pglite;
  return {
    db,
    kind: 'pglite',
    ping: () => ping(db),
    prepared: async <Row>(_name: string, text: string, values: readonly unknown[]) =>
      (await embedded.query<Row>(text, [...values])).rows,
    listen: (channel, handlers) => listenPglite(embedded, channel, handlers),
    poolStats: () => undefined,
    close: async () => { if (owned) await db.destroy(); },
  };
}

async function ping(db: Db): Promise<boolean> {
  try {
    await sql`select 1`.execute(db);
    return true;
  } catch {
    return false;
  }
}
