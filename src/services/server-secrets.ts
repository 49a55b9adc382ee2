import { randomBytes } from 'node:crypto';

import type { Db } from '../db/database.js';
import * as secretsRepo from '../db/repositories/server-secrets.js';
import type { SecretBox } from './secret-box.js';

/**
 * Random secrets every instance must share (cookie signing keys, DPoP nonce secret, CSRF
 * key): created once in the database by whichever instance comes first, encrypted under
 * MASTER_KEY, identical for all instances afterwards.
 */
export class ServerSecrets {
  readonly #db: Db;
  readonly #box: SecretBox;

  constructor(db: Db, box: SecretBox) {
    this.#db = db;
    this.#box = box;
  }

  /** 32 random bytes (base64url) stored under `name`. */
  async get(name: string): Promise<string> {
    const purpose = `server_secret:${name}`;
    const stored = await secretsRepo.findServerSecret(this.#db, name)
      ?? await secretsRepo.insertServerSecretOnce(this.#db, name, this.#box.seal(randomBytes(32).toString('base64url'), purpose));
    return this.#box.open(stored, purpose);
  }
}
