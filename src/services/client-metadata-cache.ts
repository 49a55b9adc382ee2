/**
 * Client metadata as oidc-provider reads it, cached in memory: every token, PAR and
 * introspection request authenticates a client, and reading it from the database was one
 * round trip of the few each request makes.
 *
 * Invariants:
 * - An entry is served only while the change feed is live (LISTEN connected): every
 *   committed change to a client row evicts it on every instance (migration 0006), and a
 *   gap in the feed clears everything. Not live → every read goes to the database.
 * - A read that raced an eviction is not stored: the generation counter moves on every
 *   eviction, and a value loaded under an older generation may predate the change.
 * - Bounded: at most `maxEntries` (oldest first out) and each entry at most `ttlMs` old,
 *   a backstop should a notification ever go missing unnoticed.
 * - Unknown and disabled clients are never cached (their ids come from requests).
 */
export interface ClientMetadataCacheOptions {
  readonly live: () => boolean;
  readonly now?: () => number;
  readonly ttlMs?: number;
  readonly maxEntries?: number;
}

interface Entry {
  readonly value: Readonly<Record<string, unknown>>;
  readonly storedAt: number;
}

export class ClientMetadataCache {
  readonly #entries = new Map<string, Entry>();
  readonly #live: () => boolean;
  readonly #now: () => number;
  readonly #ttlMs: number;
  readonly #maxEntries: number;
  #generation = 0;

  constructor(options: ClientMetadataCacheOptions) {
    this.#live = options.live;
    this.#now = options.now ?? Date.now;
    this.#ttlMs = options.ttlMs ?? 60_000;
    this.#maxEntries = options.maxEntries ?? 10_000;
  }

  /** The cached value, or what `load` returns (stored when it is safe to). */
  async get(clientId: string, load: () => Promise<Record<string, unknown> | undefined>): Promise<Record<string, unknown> | undefined> {
    if (!this.#live()) return load();
    const entry = this.#entries.get(clientId);
    if (entry !== undefined && this.#now() - entry.storedAt < this.#ttlMs) return { ...entry.value };
    const generation = this.#generation;
    const value = await load();
    if (value !== undefined && generation === this.#generation && this.#live()) {
      this.#entries.delete(clientId);
      if (this.#entries.size >= this.#maxEntries) this.#entries.delete(this.#entries.keys().next().value!);
      this.#entries.set(clientId, { value: Object.freeze({ ...value }), storedAt: this.#now() });
    }
    return value;
  }

  evict(clientId: string): void {
    this.#generation += 1;
    this.#entries.delete(clientId);
  }

  clear(): void {
    this.#generation += 1;
    this.#entries.clear();
  }

  get size(): number {
    return this.#entries.size;
  }
}
