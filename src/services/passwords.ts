import argon2 from 'argon2';

import type { Argon2Params } from '../config.js';

/** Longest password accepted: bounds the hashing work an attacker can request. */
export const MAX_PASSWORD_BYTES = 1024;
export const MIN_PASSWORD_LENGTH = 10;

/**
 * argon2id hashing. `verifyAgainstDummy` does the same work as a real verification so
 * that an unknown username costs the same time as a wrong password.
 */
export class PasswordHasher {
  readonly #params: Argon2Params;
  #dummyHash: Promise<string> | undefined;

  constructor(params: Argon2Params) {
    this.#params = params;
  }

  hash(password: string): Promise<string> {
    return argon2.hash(password, {
      type: argon2.argon2id,
      memoryCost: this.#params.memoryCost,
      timeCost: this.#params.timeCost,
      parallelism: this.#params.parallelism,
    });
  }

  async verify(hash: string, password: string): Promise<boolean> {
    if (Buffer.byteLength(password, 'utf8') > MAX_PASSWORD_BYTES) return this.verifyAgainstDummy();
    try {
      return await argon2.verify(hash, password);
    } catch {
      return false;
    }
  }

  /** Always false, after the cost of one verification at the configured parameters. */
  async verifyAgainstDummy(): Promise<false> {
    this.#dummyHash ??= this.hash('portcullis-dummy-password-for-timing');
    await argon2.verify(await this.#dummyHash, 'not-the-dummy-password');
    return false;
  }

  /** Computes the dummy hash ahead of the first sign-in (keeps the first one's timing honest). */
  async warmUp(): Promise<void> {
    this.#dummyHash ??= this.hash('portcullis-dummy-password-for-timing');
    await this.#dummyHash;
  }
}
