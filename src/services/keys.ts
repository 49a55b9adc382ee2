import { calculateJwkThumbprint, exportJWK, generateKeyPair, type JWK } from 'jose';

import type { Db, Executor } from '../db/database.js';
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
  /** for a published key: when it starts signing */
  activates_after: string | null;
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
export interface KeyLifecycle {
  /** seconds a published key is in the JWKS before it signs */
  readonly activationDelaySeconds: number;
  /** seconds a retired key stays in the JWKS (verification only) */
  readonly retentionSeconds: number;
}

const LOCK = 'portcullis:signing-keys';

export class KeyService {
  readonly #db: Db;
  readonly #secrets: SecretBox;
  readonly #lifecycle: KeyLifecycle;

  constructor(db: Db, secrets: SecretBox, lifecycle: KeyLifecycle) {
    this.#db = db;
    this.#secrets = secrets;
    this.#lifecycle = lifecycle;
  }

  /** Creates one active key per algorithm that has none (first start). Idempotent across instances. */
  async ensureSigningKeys(): Promise<void> {
    await withAdvisoryLock(this.#db, LOCK, async (trx) => {
      const existing = await keysRepo.listUsableSigningKeys(trx);
      for (const alg of SIGNING_ALGS) {
        if (existing.some((k) => k.alg === alg && k.state === 'active')) continue;
        await this.#insertNew(trx, alg, 'active');
      }
    });
  }

  /**
   * Publishes a new key per algorithm. It is in the JWKS at once (so clients can fetch it)
   * and signs nothing until `advance` activates it, `activationDelaySeconds` later.
   */
  async rotate(): Promise<SigningKeySummary[]> {
    const kids = await withAdvisoryLock(this.#db, LOCK, async (trx) => {
      const created: string[] = [];
      for (const alg of SIGNING_ALGS) created.push(await this.#insertNew(trx, alg, 'published'));
      return created;
    });
    return (await this.list()).filter((k) => kids.includes(k.kid));
  }

  /**
   * The lifecycle step every instance runs periodically (idempotent, serialised by an
   * advisory lock): published → active after the activation delay (the key it replaces
   * → retired); retired → removed after the retention period, when nothing it signed
   * (ID tokens, JARM responses, signed introspection) can still be valid.
   */
  async advance(now: Date): Promise<{ activated: string[]; removed: string[] }> {
    return withAdvisoryLock(this.#db, LOCK, async (trx) => ({
      activated: await keysRepo.activateDueKeys(trx, new Date(now.getTime() - this.#lifecycle.activationDelaySeconds * 1000), now),
      removed: await keysRepo.removeRetiredKeys(trx, new Date(now.getTime() - this.#lifecycle.retentionSeconds * 1000)),
    }));
  }

  /** Changes whenever a key is added or changes state: instances compare it to decide to reload. */
  async fingerprint(): Promise<string> {
    return JSON.stringify(await keysRepo.listKeyStates(this.#db));
  }

  async #insertNew(trx: Executor, alg: SigningAlg, state: 'active' | 'published'): Promise<string> {
    const key = await generate(alg);
    await keysRepo.insertSigningKey(trx, {
      kid: key.kid,
      alg,
      state,
      publicJwk: key.publicJwk as Record<string, unknown>,
      privateJwkEnc: this.#secrets.seal(JSON.stringify(key.privateJwk), PRIVATE_KEY_PURPOSE),
      activatedAt: state === 'active' ? new Date() : null,
    });
    return key.kid;
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
      activates_after: r.state === 'published' ? new Date(r.createdAt.getTime() + this.#lifecycle.activationDelaySeconds * 1000).toISOString() : null,
    }));
  }
}
