import { AsyncLocalStorage } from 'node:async_hooks';

import type { Context, Next } from 'koa';

/**
 * Rows read ahead within one request: the adapter reads a presented token under every token
 * model together with its grant (one round trip) and hands the results to oidc-provider's
 * parallel finds and the `Grant.find` that follow in the same request. A stashed row is
 * taken once; nothing outlives its request, so nothing can be served stale to a later one.
 */
export class RequestScope {
  readonly #storage = new AsyncLocalStorage<Map<string, unknown>>();

  middleware() {
    return (_ctx: Context, next: Next): Promise<void> => this.#storage.run(new Map(), next);
  }

  /** Remembers `value` for this request (outside a request: does nothing). */
  stash(key: string, value: unknown): void {
    this.#storage.getStore()?.set(key, value);
  }

  /** The stashed value, once: `found` is false when nothing was stashed under `key`. */
  take(key: string): { found: true; value: unknown } | { found: false } {
    const store = this.#storage.getStore();
    if (store === undefined || !store.has(key)) return { found: false };
    const value = store.get(key);
    store.delete(key);
    return { found: true, value };
  }
}
