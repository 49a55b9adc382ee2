import type { Adapter, AdapterFactory, AdapterPayload } from 'oidc-provider';
import { errors } from 'oidc-provider';

import type { Executor } from '../db/database.js';
import * as models from '../db/repositories/oidc-models.js';
import type { ClientStore } from '../services/clients.js';
import { sha256Base64Url, type SecretBox } from '../services/secret-box.js';

/**
 * oidc-provider's storage, on Postgres (or PGlite) through Kysely.
 *
 * Invariants:
 * - Rows are keyed by SHA-256 of the model id, and the payload is stored without its
 *   `jti` (which equals the id): the table never holds a usable token, code, session or
 *   interaction id. `find(id)` re-attaches the id it was asked for; models also found by
 *   uid or user code keep their id sealed (AES-GCM under MASTER_KEY) to restore it then.
 *   Interaction payloads are sealed whole: they carry the session cookie value and their
 *   own id (in `returnTo`).
 * - One-time use is decided by the database: `consume` is one conditional UPDATE, and
 *   replay detection one INSERT on the primary key. oidc-provider's own checks are
 *   read-check-write and cannot stop two racing requests.
 * - A code presented after it was consumed (even by a request that raced the winner)
 *   removes its grant and everything issued under it (RFC 6749 §4.1.2): oidc-provider
 *   checks the grant on every introspection and userinfo call, so a token the winner
 *   saves later is inactive too.
 */

export interface AdapterDeps {
  readonly db: Executor;
  readonly clients: ClientStore;
  readonly box: SecretBox;
  readonly now: () => Date;
}

/** Models whose rows carry a grant id and are revoked with their grant. */
const CONSUMABLE_WITH_GRANT = new Set(['AuthorizationCode', 'DeviceCode', 'BackchannelAuthenticationRequest']);
/** Models looked up by something else than their id: their id is kept, sealed. */
const FOUND_WITHOUT_ID = new Set(['Session', 'DeviceCode']);
/** Models whose whole payload is sealed (it holds other secrets than the id). */
const SEALED_PAYLOAD = new Set(['Interaction']);
const SEALED_ID = '__sealed_id';
const SEALED = '__sealed';
/** A replay-detection row lives at least this long before its real expiry is written. */
const REPLAY_PROVISIONAL_SECONDS = 3600;

function epochSeconds(date: Date): number {
  return Math.floor(date.getTime() / 1000);
}

function stringOrNull(value: unknown): string | null {
  return typeof value === 'string' ? value : null;
}

class ModelAdapter implements Adapter {
  readonly #model: string;
  readonly #deps: AdapterDeps;

  constructor(model: string, deps: AdapterDeps) {
    this.#model = model;
    this.#deps = deps;
  }

  async upsert(id: string, payload: AdapterPayload, expiresIn?: number): Promise<void> {
    const { jti, ...rest } = payload as Record<string, unknown>;
    let stored: Record<string, unknown> = jti === id ? rest : { ...rest, jti };
    delete stored.consumed; // consumption lives in its own column, set only by consume()
    if (FOUND_WITHOUT_ID.has(this.#model)) stored[SEALED_ID] = this.#deps.box.seal(id, `oidc:${this.#model}:id`);
    if (SEALED_PAYLOAD.has(this.#model)) stored = { [SEALED]: this.#deps.box.seal(JSON.stringify(stored), `oidc:${this.#model}:payload`) };
    const now = this.#deps.now();
    await models.upsertModel(this.#deps.db, {
      model: this.#model,
      key: sha256Base64Url(id),
      payload: stored,
      grantId: this.#model === 'Grant' ? id : stringOrNull(rest.grantId),
      uid: stringOrNull(rest.uid),
      userCode: stringOrNull(rest.userCode),
      expiresAt: typeof expiresIn === 'number' ? new Date(now.getTime() + expiresIn * 1000) : null,
    });
  }

  async find(id: string): Promise<AdapterPayload | undefined> {
    if (this.#model === 'ReplayDetection') return this.#recordFirstUse(id);
    const found = await models.findModel(this.#deps.db, this.#model, { column: 'key', value: sha256Base64Url(id) }, this.#deps.now());
    return found === undefined ? undefined : this.#revive(found, id);
  }

  async findByUid(uid: string): Promise<AdapterPayload | undefined> {
    const found = await models.findModel(this.#deps.db, this.#model, { column: 'uid', value: uid }, this.#deps.now());
    return found === undefined ? undefined : this.#revive(found);
  }

  async findByUserCode(userCode: string): Promise<AdapterPayload | undefined> {
    const found = await models.findModel(this.#deps.db, this.#model, { column: 'user_code', value: userCode }, this.#deps.now());
    return found === undefined ? undefined : this.#revive(found);
  }

  async consume(id: string): Promise<void> {
    const key = sha256Base64Url(id);
    if (await models.consumeModel(this.#deps.db, this.#model, key, this.#deps.now())) return;

    if (this.#model === 'PushedAuthorizationRequest') {
      throw new errors.InvalidRequestUri('request_uri is invalid, expired, or was already used');
    }
    if (CONSUMABLE_WITH_GRANT.has(this.#model)) {
      const grantId = await models.grantIdOf(this.#deps.db, this.#model, key);
      if (grantId !== null) await models.revokeGrantCompletely(this.#deps.db, grantId);
    }
    throw new errors.InvalidGrant('grant request is invalid or was already used');
  }

  async destroy(id: string): Promise<void> {
    await models.destroyModel(this.#deps.db, this.#model, sha256Base64Url(id));
  }

  async revokeByGrantId(grantId: string): Promise<void> {
    await models.revokeTokensOfGrant(this.#deps.db, grantId);
  }

  /**
   * oidc-provider's ReplayDetection.unique() calls find() and then save(). Recording the
   * key here, with one INSERT on the primary key, makes the check-and-record atomic:
   * of two racing uses exactly one sees "not found". save() then writes the real expiry.
   */
  async #recordFirstUse(id: string): Promise<AdapterPayload | undefined> {
    const now = this.#deps.now();
    const exp = epochSeconds(now) + REPLAY_PROVISIONAL_SECONDS;
    const payload = { kind: this.#model, iat: epochSeconds(now), exp };
    const first = await models.insertUnique(this.#deps.db, this.#model, sha256Base64Url(id), payload, new Date(exp * 1000), now);
    return first ? undefined : { ...payload, jti: id };
  }

  #revive(found: models.StoredModel, id?: string): AdapterPayload {
    const sealed = found.payload[SEALED];
    const payload: Record<string, unknown> = typeof sealed === 'string'
      ? JSON.parse(this.#deps.box.open(sealed, `oidc:${this.#model}:payload`)) as Record<string, unknown>
      : { ...found.payload };
    const sealedId = payload[SEALED_ID];
    delete payload[SEALED_ID];
    if (id === undefined && typeof sealedId === 'string') id = this.#deps.box.open(sealedId, `oidc:${this.#model}:id`);
    if (id !== undefined && payload.jti === undefined) payload.jti = id;
    if (found.consumedAt !== null) payload.consumed = epochSeconds(found.consumedAt);
    return payload as AdapterPayload;
  }
}

/** Client metadata comes from the clients table (secrets decrypted on read). */
class ClientAdapter implements Adapter {
  readonly #clients: ClientStore;

  constructor(clients: ClientStore) {
    this.#clients = clients;
  }

  async find(id: string): Promise<AdapterPayload | undefined> {
    return (await this.#clients.findProviderMetadata(id)) as AdapterPayload | undefined;
  }

  async upsert(id: string, payload: AdapterPayload): Promise<void> {
    await this.#clients.saveProviderMetadata(id, payload as Record<string, unknown>);
  }

  async destroy(id: string): Promise<void> {
    await this.#clients.deleteClient(id);
  }

  async findByUid(): Promise<undefined> { return undefined; }
  async findByUserCode(): Promise<undefined> { return undefined; }
  async consume(): Promise<void> { throw new errors.InvalidRequest('clients cannot be consumed'); }
  async revokeByGrantId(): Promise<void> { /* clients belong to no grant */ }
}

export function createAdapterFactory(deps: AdapterDeps): AdapterFactory {
  return (model: string) => (model === 'Client' ? new ClientAdapter(deps.clients) : new ModelAdapter(model, deps));
}
