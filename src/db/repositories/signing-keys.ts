import type { Executor } from '../database.js';
import type { SigningKeysTable } from '../schema.js';

export interface SigningKeyRow {
  kid: string;
  alg: string;
  state: SigningKeysTable['state'];
  publicJwk: Record<string, unknown>;
  privateJwkEnc: string;
  createdAt: Date;
  activatedAt: Date | null;
}

export async function listUsableSigningKeys(db: Executor): Promise<SigningKeyRow[]> {
  const rows = await db.selectFrom('signing_keys')
    .select(['kid', 'alg', 'state', 'public_jwk', 'private_jwk_enc', 'created_at', 'activated_at'])
    .where('state', '!=', 'removed')
    .orderBy('created_at', 'desc')
    .orderBy('kid')
    .execute();
  return rows.map((r) => ({
    kid: r.kid,
    alg: r.alg,
    state: r.state,
    publicJwk: r.public_jwk,
    privateJwkEnc: r.private_jwk_enc,
    createdAt: r.created_at,
    activatedAt: r.activated_at,
  }));
}

export async function insertSigningKey(
  db: Executor,
  key: { kid: string; alg: string; state: SigningKeysTable['state']; publicJwk: Record<string, unknown>; privateJwkEnc: string; activatedAt: Date | null },
): Promise<void> {
  await db.insertInto('signing_keys').values({
    kid: key.kid,
    alg: key.alg,
    state: key.state,
    public_jwk: JSON.stringify(key.publicJwk),
    private_jwk_enc: key.privateJwkEnc,
    activated_at: key.activatedAt,
  }).execute();
}

/** Every key's id and state, in a stable order: what a change of the key set is judged by. */
export async function listKeyStates(db: Executor): Promise<{ kid: string; state: string }[]> {
  return db.selectFrom('signing_keys').select(['kid', 'state']).orderBy('kid').execute();
}

/**
 * Activates published keys that have been in the JWKS long enough, retiring the key each
 * replaces (same algorithm). Returns the activated kids.
 */
export async function activateDueKeys(db: Executor, publishedBefore: Date, now: Date): Promise<string[]> {
  const due = await db.selectFrom('signing_keys').select(['kid', 'alg'])
    .where('state', '=', 'published').where('created_at', '<=', publishedBefore)
    .orderBy('created_at').execute();
  const activated: string[] = [];
  for (const key of due) {
    await db.updateTable('signing_keys').set({ state: 'retired', retired_at: now })
      .where('alg', '=', key.alg).where('state', '=', 'active').execute();
    await db.updateTable('signing_keys').set({ state: 'active', activated_at: now })
      .where('kid', '=', key.kid).where('state', '=', 'published').execute();
    activated.push(key.kid);
  }
  return activated;
}

/** Retired keys past their retention leave the JWKS (their private half is dropped too). */
export async function removeRetiredKeys(db: Executor, retiredBefore: Date): Promise<string[]> {
  const rows = await db.updateTable('signing_keys').set({ state: 'removed', private_jwk_enc: '' })
    .where('state', '=', 'retired').where('retired_at', '<=', retiredBefore)
    .returning('kid').execute();
  return rows.map((r) => r.kid);
}
