import { AsyncLocalStorage } from 'node:async_hooks';

import type { Context, Next } from 'koa';

/**
 * Rows read ahead within one request: the adapter reads a presented token under every token
 * model together with its grant (one round trip) and hands the results to oidc-provider's
 * parallel finds and the `Grant.find` that follow in the same request. A stashed row is
 * taken once; nothing outlives its request, so nothing can be served stale to a later one.
 */
interface Store {
  readonly rows: Map<string, unknown>;
  /** who is asking: for audit events written below oidc-provider (the client adapter) */
  readonly context: { readonly ip: string; readonly requestId: string | undefined };
}

export class RequestScope {
  readonly #storage = new AsyncLocalStorage<Store>();

  /** Must run after the request id is assigned. */
  middleware() {
    return (ctx: Context, next: Next): Promise<void> => this.#storage.run({
      rows: new Map(),
      context: { ip: ctx.ip, requestId: typeof ctx.state.requestId === 'string' ? ctx.state.requestId : undefined },
    }, next);
  }

  /** The current request's client IP and request id (undefined outside a request). */
  context(): Store['context'] | undefined {
    return this.#storage.getStore()?.context;
  }

  /** Remembers `value` for this request (outside a request: does nothing). */
  stash(key: string, value: unknown): void {
    this.#storage.getStore()?.rows.set(key, value);
  }

  /** The stashed value, once: `found` is false when nothing was stashed under `key`. */
  take(key: string): { found: true; value: unknown } | { found: false } {
    const rows = this.#storage.getStore()?.rows;
    if (rows === undefined || !rows.has(key)) return { found: false };
    const value = rows.get(key);
    rows.delete(key);
    return { found: true, value };
  }
}
