import type { PGlite } from '@electric-sql/pglite';
import pg from 'pg';

/**
 * LISTEN / NOTIFY: how one instance learns that another changed something it caches.
 *
 * Invariant for callers: while `live` is false, notifications may be missed, so a cache
 * must not serve from memory; `onGap` is called whenever that may have happened (the
 * connection dropped, or was just (re-)established), and the cache must then forget
 * everything it holds.
 */
export interface ChangeFeed {
  readonly live: boolean;
  close(): Promise<void>;
}

export interface ChangeHandlers {
  onChange(payload: string): void;
  onGap(): void;
}

const CHANNEL = /^[a-z_]{1,63}$/;
const RECONNECT_MS = 1_000;

function assertChannel(channel: string): void {
  // The channel is an identifier in LISTEN (it cannot be a bound parameter): constants only.
  if (!CHANNEL.test(channel)) throw new Error('invalid channel name');
}

/** A dedicated connection (not from the pool) that LISTENs, reconnecting every second while down. */
class PostgresChangeFeed implements ChangeFeed {
  readonly #connectionString: string;
  readonly #channel: string;
  readonly #handlers: ChangeHandlers;
  #client: pg.Client | undefined;
  #live = false;
  #closed = false;
  #retry: NodeJS.Timeout | undefined;

  constructor(connectionString: string, channel: string, handlers: ChangeHandlers) {
    this.#connectionString = connectionString;
    this.#channel = channel;
    this.#handlers = handlers;
  }

  get live(): boolean {
    return this.#live;
  }

  async connect(): Promise<void> {
    const client = new pg.Client({ connectionString: this.#connectionString, keepAlive: true, connectionTimeoutMillis: 1_500, application_name: 'portcullis-listen' });
    this.#client = client;
    client.on('error', () => this.#lost(client));
    client.on('end', () => this.#lost(client));
    client.on('notification', (message) => {
      if (message.channel === this.#channel && message.payload !== undefined) this.#handlers.onChange(message.payload);
    });
    try {
      await client.connect();
      await client.query(`listen ${this.#channel}`);
      if (this.#client !== client || this.#closed) return;
      this.#live = true;
      // Changes made while nobody listened were missed.
      this.#handlers.onGap();
    } catch {
      this.#lost(client);
    }
  }

  #lost(client: pg.Client): void {
    if (this.#client !== client) return;
    this.#client = undefined;
    this.#live = false;
    this.#handlers.onGap();
    client.end().catch(() => undefined);
    if (this.#closed) return;
    this.#retry = setTimeout(() => { void this.connect(); }, RECONNECT_MS);
    this.#retry.unref();
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#live = false;
    if (this.#retry !== undefined) clearTimeout(this.#retry);
    const client = this.#client;
    this.#client = undefined;
    await client?.end().catch(() => undefined);
  }
}

export async function listenPostgres(connectionString: string, channel: string, handlers: ChangeHandlers): Promise<ChangeFeed> {
  assertChannel(channel);
  const feed = new PostgresChangeFeed(connectionString, channel, handlers);
  await feed.connect();
  return feed;
}

/** PGlite runs in this process: its notifications cannot be missed. */
export async function listenPglite(pglite: PGlite, channel: string, handlers: ChangeHandlers): Promise<ChangeFeed> {
  assertChannel(channel);
  const unsubscribe = await pglite.listen(channel, (payload) => handlers.onChange(payload));
  return { live: true, close: () => unsubscribe() };
}
