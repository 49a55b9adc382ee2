import { randomBytes, randomUUID } from 'node:crypto';

import type { Db } from '../db/database.js';
import * as repo from '../db/repositories/api-keys.js';
import type { ApiKeyRecord } from '../db/repositories/api-keys.js';
import type { AuditContext, AuditLog } from './audit.js';
import { ValidationError } from './errors.js';
import { sha256Base64Url } from './secret-box.js';

export const API_KEY_SCOPES = ['admin:read', 'admin:write'] as const;
/** Recognisable in logs and secret scanners; 256 random bits after it. */
const PREFIX = 'pcak_';

/**
 * Admin API keys: high-entropy, prefixed, shown once, stored as SHA-256 (a hash of a
 * 256-bit random key needs no slow hashing), scoped, optionally expiring, revocable,
 * last use recorded. Lookup is by hash, so no secret is ever compared in variable time.
 */
export class ApiKeyService {
  readonly #db: Db;
  readonly #audit: AuditLog;
  readonly #now: () => Date;

  constructor(db: Db, audit: AuditLog, now: () => Date) {
    this.#db = db;
    this.#audit = audit;
    this.#now = now;
  }

  async create(name: string, scopes: string[], context: AuditContext, expiresInDays?: number): Promise<{ id: string; key: string }> {
    if (!/^[\p{L}\p{N} ._-]{1,100}$/u.test(name)) throw new ValidationError('INVALID_NAME', 'name must be 1–100 letters, digits, spaces, ".", "_", "-"');
    if (scopes.length === 0 || scopes.some((s) => !API_KEY_SCOPES.includes(s as (typeof API_KEY_SCOPES)[number]))) {
      throw new ValidationError('INVALID_SCOPES', `scopes must be among ${API_KEY_SCOPES.join(', ')}`);
    }
    if (expiresInDays !== undefined && (!Number.isInteger(expiresInDays) || expiresInDays < 1 || expiresInDays > 3650)) {
      throw new ValidationError('INVALID_EXPIRY', 'expiry must be 1–3650 days');
    }
    const id = randomUUID();
    const key = `${PREFIX}${randomBytes(32).toString('base64url')}`;
    const expiresAt = expiresInDays === undefined ? null : new Date(this.#now().getTime() + expiresInDays * 86400_000);
    await this.#db.transaction().execute(async (trx) => {
      await repo.insertApiKey(trx, { id, name, keyHash: sha256Base64Url(key), scopes: [...new Set(scopes)], expiresAt });
      await this.#audit.record({ ...context, type: 'apikey.created', data: { id, name, scopes } }, trx);
    });
    return { id, key };
  }

  async authenticate(key: string): Promise<ApiKeyRecord | undefined> {
    if (!key.startsWith(PREFIX) || key.length > 100) return undefined;
    return repo.useApiKey(this.#db, sha256Base64Url(key), this.#now());
  }

  async revoke(id: string, context: AuditContext): Promise<boolean> {
    return this.#db.transaction().execute(async (trx) => {
      const revoked = await repo.revokeApiKey(trx, id, this.#now());
      if (revoked) await this.#audit.record({ ...context, type: 'apikey.revoked', data: { id } }, trx);
      return revoked;
    });
  }
}
