import argon2 from 'argon2';

import type { Argon2Params } from '../config.js';

/** Longest password accepted: bounds the hashing work an attacker can request. */
export const MAX_PASSWORD_BYTES = 1024;
export const MIN_PASSWORD_LENGTH = 10;

/** At most `limit` tasks run at once; the rest wait in arrival order. */
export class Semaphore {
  readonly #limit: number;
  #running = 0;
  readonly #waiting: (() => void)[] = [];

  constructor(limit: number) {
    this.#limit = limit;
  }

  async run<T>(task: () => Promise<T>): Promise<T> {
    if (this.#running >= this.#limit) await new Promise<void>((resolve) => this.#waiting.push(resolve));
    else this.#running += 1;
    try {
      return await task();
    } finally {
      // Hand the slot straight to the next waiter (the count stays), or free it.
      const next = this.#waiting.shift();
      if (next === undefined) this.#running -= 1;
      else next();
    }
  }

  get waiting(): number {
    return this.#waiting.length;
  }
}

/**
 * argon2id hashing, at most `maxConcurrent` computations at once (config.ts says why).
 * `verifyAgainstDummy` does the same work as a real verification, through the same
 * queue, so that an unknown username costs the same time as a wrong password.
 */
export class PasswordHasher {
  readonly #params: Argon2Params;
  readonly #slots: Semaphore;
  #dummyHash: Promise<string> | undefined;

  constructor(params: Argon2Params) {
    this.#params = params;
    this.#slots = new Semaphore(params.maxConcurrent);
  }

  hash(password: string): Promise<string> {
    return this.#slots.run(() => argon2.hash(password, {
      type: argon2.argon2id,
      memoryCost: this.#params.memoryCost,
      timeCost: this.#params.timeCost,
      parallelism: this.#params.parallelism,
    }));
  }

  async verify(hash: string, password: string): Promise<boolean> {
    if (Buffer.byteLength(password, 'utf8') > MAX_PASSWORD_BYTES) return this.verifyAgainstDummy();
    try {
      return await this.#slots.run(() => argon2.verify(hash, password));
    } catch {
      return false;
    }
  }

  /** Always false, after the cost of one verification at the configured parameters. */
  async verifyAgainstDummy(): Promise<false> {
    this.#dummyHash ??= this.hash('portcullis-dummy-password-for-timing');
    const dummy = await this.#dummyHash;
    await this.#slots.run(() => argon2.verify(dummy, 'not-the-dummy-password'));
    return false;
  }

  /** Computes the dummy hash ahead of the first sign-in (keeps the first one's timing honest). */
  async warmUp(): Promise<void> {
    this.#dummyHash ??= this.hash('portcullis-dummy-password-for-timing');
    await this.#dummyHash;
  }
}
