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
  /** requests that may wait for a pool connection before new ones fail at once (pg pool only) */
  readonly poolMaxWaiting?: number;
  /** an already open PGlite (tests clone one from a snapshot) */
  readonly pglite?: PGlite;
}

// int8 (count(*), sums) as JS numbers: every int8 we read is a row count far below 2^53.
pg.types.setTypeParser(20, (value: string) => Number(value));

/** `code` of the error a query gets at once when too many are already waiting for a connection. */
export const POOL_QUEUE_FULL = 'PORTCULLIS_POOL_QUEUE_FULL';

/**
 * Bounds on a slow or saturated PostgreSQL, so that a request fails (503) in seconds instead
 * of queueing behind it: waiting for a pool connection (or for a new one to connect), waiting
 * for a row or table lock, and running any one statement. Each bound applies per statement.
 */
const CONNECT_TIMEOUT_MS = 1_500;
const LOCK_TIMEOUT_MS = 1_000;
const STATEMENT_TIMEOUT_MS = 5_000;

export async function openDatabase(options: DatabaseOptions): Promise<Database> {
  const { databaseUrl } = options;
  if (databaseUrl !== undefined) {
    const max = options.poolMax ?? 10;
    const pool = new pg.Pool({
      connectionString: databaseUrl,
      max,
      connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
      idleTimeoutMillis: 30_000,
      // Notices a peer that vanished without closing the connection (network partition).
      keepAlive: true,
      lock_timeout: LOCK_TIMEOUT_MS,
      statement_timeout: STATEMENT_TIMEOUT_MS,
      application_name: 'portcullis',
    });
    // A client losing its connection (database restart) must not crash the process: pg emits
    // 'error' on it, and only idle clients have the pool's listener. The query in flight fails
    // on its own, and the pool discards the broken client when it is released.
    pool.on('error', () => undefined);
    pool.on('connect', (client) => { client.on('error', () => undefined); });
    // pg's pool queues without limit: past this many waiters a query fails at once.
    const maxWaiting = options.poolMaxWaiting ?? Math.max(100, max * 20);
    const admit = () => {
      if (pool.waitingCount >= maxWaiting) {
        throw Object.assign(new Error('too many queries waiting for a database connection'), { code: POOL_QUEUE_FULL });
      }
    };
    const bounded = {
      Client: pg.Client,
      options: pool.options,
      connect: async () => { admit(); return pool.connect(); },
      end: () => pool.end(),
    };
    const db = new Kysely<DB>({ dialect: new PostgresDialect({ pool: bounded }) });
    return {
      db,
      kind: 'postgres',
      ping: () => ping(db),
      prepared: async <Row>(name: string, text: string, values: readonly unknown[]) => {
        admit();
        return (await pool.query<Row & pg.QueryResultRow>({ name, text, values: [...values] })).rows as Row[];
      },
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
