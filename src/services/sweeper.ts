import type { Logger } from 'pino';

import type { Db } from '../db/database.js';
import { sweepExpired } from '../db/repositories/oidc-models.js';

export const SWEEP_BATCH_SIZE = 1000;
/** Upper bound of batches per run, so one run never holds the database for long. */
const MAX_BATCHES_PER_RUN = 100;

/** Expires consents past their end and deletes expired oidc-provider rows, in bounded batches, on a timer. */
export class Sweeper {
  readonly #db: Db;
  readonly #log: Logger;
  readonly #now: () => Date;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<number> | undefined;

  readonly #expireConsents: (() => Promise<number>) | undefined;

  /** `expireConsents` marks consents past their end as expired (audited, tokens revoked). */
  constructor(db: Db, log: Logger, now: () => Date, expireConsents?: () => Promise<number>) {
    this.#db = db;
    this.#log = log;
    this.#now = now;
    this.#expireConsents = expireConsents;
  }

  /** One run: batches until a batch comes back short (or the per-run bound). Returns rows removed. */
  async sweepOnce(batchSize = SWEEP_BATCH_SIZE): Promise<number> {
    let total = this.#expireConsents === undefined ? 0 : await this.#expireConsents();
    for (let i = 0; i < MAX_BATCHES_PER_RUN; i += 1) {
      const removed = await sweepExpired(this.#db, this.#now(), batchSize);
      total += removed;
      if (removed < batchSize) break;
    }
    return total;
  }

  start(intervalSeconds: number): void {
    if (this.#timer !== undefined) return;
    this.#timer = setInterval(() => {
      if (this.#running !== undefined) return;
      this.#running = this.sweepOnce()
        .then((n) => { if (n > 0) this.#log.debug({ removed: n }, 'swept expired rows'); return n; })
        .catch((error: unknown) => { this.#log.warn({ err: error }, 'sweep failed; will retry'); return 0; })
        .finally(() => { this.#running = undefined; });
    }, intervalSeconds * 1000);
    this.#timer.unref();
  }

  stop(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
  }
}
