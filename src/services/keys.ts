import { calculateJwkThumbprint, exportJWK, generateKeyPair, type JWK } from 'jose';

import type { Db } from '../db/database.js';
import { withAdvisoryLock } from '../db/lock.js';
import * as keysRepo from '../db/repositories/signing-keys.js';
import type { SecretBox } from './secret-box.js';

/** The algorithms Portcullis signs with (FAPI 2.0: never RS256, HS*, none). */
export const SIGNING_ALGS = ['PS256', 'ES256', 'EdDSA'] as const;
export type SigningAlg = (typeof SIGNING_ALGS)[number];

const PRIVATE_KEY_PURPOSE = 'signing_key';

export interface SigningKeySummary {
  kid: string;
  alg: string;
  state: string;
  created_at: string;
  activated_at: string | null;
}

async function generate(alg: SigningAlg): Promise<{ kid: string; publicJwk: JWK; privateJwk: JWK }> {
  const { publicKey, privateKey } = await generateKeyPair(alg, {
    extractable: true,
    ...(alg === 'PS256' ? { modulusLength: 2048 } : {}),
    ...(alg === 'EdDSA' ? { crv: 'Ed25519' } : {}),
  });
  const publicJwk = await exportJWK(publicKey);
  const kid = await calculateJwkThumbprint(publicJwk);
  const meta = { kid, alg, use: 'sig' };
  return { kid, publicJwk: { ...publicJwk, ...meta }, privateJwk: { ...(await exportJWK(privateKey)), ...meta } };
}

/**
 * Signing keys live in the database, private halves encrypted under MASTER_KEY, so every
 * instance signs with the same keys and a restart keeps them.
 */
export class KeyService {
  readonly #db: Db;
  readonly #secrets: SecretBox;

  constructor(db: Db, secrets: SecretBox) {
    this.#db = db;
    this.#secrets = secrets;
  }

  /** Creates one active key per algorithm that has none (first start). Idempotent across instances. */
  async ensureSigningKeys(): Promise<void> {
    await withAdvisoryLock(this.#db, 'portcullis:signing-keys', async (trx) => {
      const existing = await keysRepo.listUsableSigningKeys(trx);
      for (const alg of SIGNING_ALGS) {
        if (existing.some((k) => k.alg === alg && k.state === 'active')) continue;
        const key = await generate(alg);
        await keysRepo.insertSigningKey(trx, {
          kid: key.kid,
          alg,
          state: 'active',
          publicJwk: key.publicJwk as Record<string, unknown>,
          privateJwkEnc: this.#secrets.seal(JSON.stringify(key.privateJwk), PRIVATE_KEY_PURPOSE),
          activatedAt: new Date(),
        });
      }
    });
  }

  /**
   * Private JWKs for oidc-provider: active keys first (oidc-provider signs with the first
   * key that fits an algorithm), then published and retired ones (verification only).
   */
  async providerJwks(): Promise<{ keys: JWK[] }> {
    const rows = await keysRepo.listUsableSigningKeys(this.#db);
    const order = { active: 0, published: 1, retired: 2, removed: 3 } as const;
    rows.sort((a, b) => order[a.state] - order[b.state]);
    return { keys: rows.map((row) => JSON.parse(this.#secrets.open(row.privateJwkEnc, PRIVATE_KEY_PURPOSE)) as JWK) };
  }

  async list(): Promise<SigningKeySummary[]> {
    const rows = await keysRepo.listUsableSigningKeys(this.#db);
    return rows.map((r) => ({
      kid: r.kid,
      alg: r.alg,
      state: r.state,
      created_at: r.createdAt.toISOString(),
      activated_at: r.activatedAt?.toISOString() ?? null,
    }));
  }
}
