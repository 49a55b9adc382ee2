import type { Executor } from '../database.js';

export interface ApiKeyRecord {
  id: string;
  name: string;
  scopes: string[];
  createdAt: Date;
  expiresAt: Date | null;
  lastUsedAt: Date | null;
  revokedAt: Date | null;
}

const COLUMNS = ['id', 'name', 'scopes', 'created_at', 'expires_at', 'last_used_at', 'revoked_at'] as const;

export async function insertApiKey(db: Executor, key: { id: string; name: string; keyHash: string; scopes: string[]; expiresAt: Date | null }): Promise<void> {
  await db.insertInto('api_keys').values({ id: key.id, name: key.name, key_hash: key.keyHash, scopes: JSON.stringify(key.scopes), expires_at: key.expiresAt }).execute();
}

/** The usable key with this hash (not revoked, not expired), its last use recorded. */
export async function useApiKey(db: Executor, keyHash: string, now: Date): Promise<ApiKeyRecord | undefined> {
  const row = await db.updateTable('api_keys').set({ last_used_at: now })
    .where('key_hash', '=', keyHash).where('revoked_at', 'is', null)
    .where((eb) => eb.or([eb('expires_at', 'is', null), eb('expires_at', '>', now)]))
    .returning(COLUMNS).executeTakeFirst();
  return row === undefined ? undefined : {
    id: row.id, name: row.name, scopes: row.scopes, createdAt: row.created_at, expiresAt: row.expires_at, lastUsedAt: row.last_used_at, revokedAt: row.revoked_at,
  };
}

export async function revokeApiKey(db: Executor, id: string, now: Date): Promise<boolean> {
  const rows = await db.updateTable('api_keys').set({ revoked_at: now }).where('id', '=', id).where('revoked_at', 'is', null).returning('id').execute();
  return rows.length === 1;
}
