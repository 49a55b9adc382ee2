import type Provider from 'oidc-provider';
import type { Logger } from 'pino';

import type { KeyService } from '../services/keys.js';

/**
 * The provider currently serving requests. oidc-provider takes its signing keys at
 * construction, so a key change builds a new provider and swaps it in; every piece of
 * state (sessions, interactions, tokens, cookie keys) lives in the database, so requests
 * of a running flow simply continue on the new instance.
 */
export class ProviderHolder {
  #current: Provider;

  constructor(initial: Provider) {
    this.#current = initial;
  }

  get current(): Provider {
    return this.#current;
  }

  replace(next: Provider): void {
    this.#current = next;
  }
}

/**
 * Runs the key lifecycle step and reloads the provider when the key set changed (here or
 * on another instance). Every instance runs it every `refreshSeconds` (≤ 60).
 */
export class KeyRefresher {
  readonly #keys: KeyService;
  readonly #holder: ProviderHolder;
  readonly #build: () => Promise<Provider>;
  readonly #log: Logger;
  readonly #now: () => Date;
  #fingerprint: string | undefined;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<boolean> | undefined;

  constructor(deps: { keys: KeyService; holder: ProviderHolder; build: () => Promise<Provider>; log: Logger; now: () => Date }) {
    this.#keys = deps.keys;
    this.#holder = deps.holder;
    this.#build = deps.build;
    this.#log = deps.log;
    this.#now = deps.now;
  }

  /** Remembers the key set the current provider was built with. */
  async prime(): Promise<void> {
    this.#fingerprint = await this.#keys.fingerprint();
  }

  /** One lifecycle step and reload check; true when the provider was replaced. */
  async refreshOnce(): Promise<boolean> {
    this.#running ??= (async () => {
      try {
        const { activated, removed } = await this.#keys.advance(this.#now());
        if (activated.length > 0 || removed.length > 0) this.#log.info({ activated, removed }, 'signing keys changed state');
        const fingerprint = await this.#keys.fingerprint();
        if (fingerprint === this.#fingerprint) return false;
        this.#holder.replace(await this.#build());
        this.#fingerprint = fingerprint;
        this.#log.info('signing keys reloaded');
        return true;
      } finally {
        this.#running = undefined;
      }
    })();
    return this.#running;
  }

  start(intervalSeconds: number): void {
    if (this.#timer !== undefined) return;
    this.#timer = setInterval(() => {
      this.refreshOnce().catch((error: unknown) => this.#log.warn({ err: error }, 'key refresh failed; will retry'));
    }, intervalSeconds * 1000);
    this.#timer.unref();
  }

  stop(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
  }
}
