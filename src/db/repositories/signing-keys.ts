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
