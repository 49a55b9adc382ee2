import type { Adapter, AdapterFactory, AdapterPayload } from 'oidc-provider';
import { errors } from 'oidc-provider';

import type { Executor } from '../db/database.js';
import { failpoint } from '../failpoints.js';
import * as models from '../db/repositories/oidc-models.js';
import type { RequestScope } from './request-scope.js';
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
 * - The hot statements (find by key, save, consume, replay) are named prepared statements.
 *   A presented token is looked up under every token model, with its grant, in one
 *   statement; oidc-provider's parallel finds of the other models and its `Grant.find`
 *   in the same request are answered from that read (request-scope.ts): introspection
 *   costs one round trip.
 * - A code presented after it was consumed (even by a request that raced the winner)
 *   removes its grant and everything issued under it (RFC 6749 §4.1.2): oidc-provider
 *   checks the grant on every introspection and userinfo call, so a token the winner
 *   saves later is inactive too.
 */

export interface AdapterDeps {
  readonly db: Executor;
  readonly prepared: models.Prepared;
  readonly scope: RequestScope;
  readonly clients: ClientStore;
  readonly box: SecretBox;
  readonly now: () => Date;
  /**
   * Revokes a grant whose authorization code was presented again (its consent becomes
   * revoked, audited); by default only its rows are removed.
   */
  readonly revokeReplayedGrant?: (grantId: string) => Promise<void>;
}

/** Models whose rows carry a grant id and are revoked with their grant. */
const CONSUMABLE_WITH_GRANT = new Set(['AuthorizationCode', 'DeviceCode', 'BackchannelAuthenticationRequest']);
/** Models looked up by something else than their id: their id is kept, sealed. */
const FOUND_WITHOUT_ID = new Set(['Session', 'DeviceCode']);
/** Models whose whole payload is sealed (it holds other secrets than the id). */
const SEALED_PAYLOAD = new Set(['Interaction']);
const SEALED_ID = '__sealed_id';
const SEALED = '__sealed';
const TOKEN_MODELS: ReadonlySet<string> = new Set(models.TOKEN_MODELS);
/**
 * A replay-detection row is recorded (by find) to live this long. oidc-provider then saves
 * it with the real expiry: DPoP proofs 300 s, client assertions exp + 10 s (typically a
 * minute). The save is skipped when the provisional expiry already covers it (one round
 * trip less per proof and assertion); a longer one is written.
 */
const REPLAY_PROVISIONAL_SECONDS = 310;
const REPLAY_COVERED_SECONDS = 300;

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
    if (this.#model === 'ReplayDetection' && typeof expiresIn === 'number' && expiresIn <= REPLAY_COVERED_SECONDS) return;
    const { jti, ...rest } = payload as Record<string, unknown>;
    let stored: Record<string, unknown> = jti === id ? rest : { ...rest, jti };
    delete stored.consumed; // consumption lives in its own column, set only by consume()
    if (FOUND_WITHOUT_ID.has(this.#model)) stored[SEALED_ID] = this.#deps.box.seal(id, `oidc:${this.#model}:id`);
    if (SEALED_PAYLOAD.has(this.#model)) stored = { [SEALED]: this.#deps.box.seal(JSON.stringify(stored), `oidc:${this.#model}:payload`) };
    const now = this.#deps.now();
    await models.upsertModel(this.#deps.prepared, {
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
    if (this.#model === 'Grant') {
      const readAhead = this.#deps.scope.take(`Grant:${id}`);
      if (readAhead.found) return readAhead.value as AdapterPayload | undefined;
    }
    const key = sha256Base64Url(id);
    if (TOKEN_MODELS.has(this.#model)) return this.#findToken(id, key);
    const found = await models.findByKey(this.#deps.prepared, this.#model, key, this.#deps.now());
    return found === undefined ? undefined : this.#revive(found, id);
  }

  /**
   * The first token-model find of a key in a request reads every token model at once;
   * the others (started in parallel by oidc-provider) share that read, each once.
   */
  async #findToken(id: string, key: string): Promise<AdapterPayload | undefined> {
    const slot = `${this.#model}:${key}`;
    let read = this.#deps.scope.take(slot);
    if (!read.found) {
      const all = models.findTokenWithGrant(this.#deps.prepared, key, this.#deps.now());
      for (const model of models.TOKEN_MODELS) if (model !== this.#model) this.#deps.scope.stash(`${model}:${key}`, all);
      read = { found: true, value: all };
    }
    const found = (await (read.value as ReturnType<typeof models.findTokenWithGrant>))[this.#model as models.TokenModel];
    if (found === undefined) return undefined;
    if (found.grantId !== null) {
      this.#deps.scope.stash(`Grant:${found.grantId}`, found.grant === null ? undefined : revive(found.grant, 'Grant', this.#deps.box, found.grantId));
    }
    return this.#revive(found.token, id);
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
    if (await models.consumeModel(this.#deps.prepared, this.#model, key, this.#deps.now())) {
      if (this.#model === 'AuthorizationCode') failpoint('code.consumed');
      return;
    }

    if (this.#model === 'PushedAuthorizationRequest') {
      throw new errors.InvalidRequestUri('request_uri is invalid, expired, or was already used');
    }
    if (CONSUMABLE_WITH_GRANT.has(this.#model)) {
      const grantId = await models.grantIdOf(this.#deps.db, this.#model, key);
      if (grantId !== null) await (this.#deps.revokeReplayedGrant ?? ((id) => models.revokeGrantCompletely(this.#deps.db, id)))(grantId);
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
    const first = await models.insertUnique(this.#deps.prepared, this.#model, sha256Base64Url(id), payload, new Date(exp * 1000), now);
    return first ? undefined : { ...payload, jti: id };
  }

  #revive(found: models.StoredModel, id?: string): AdapterPayload {
    return revive(found, this.#model, this.#deps.box, id);
  }
}

/** A stored row back into oidc-provider's payload (its id re-attached, sealed parts opened). */
function revive(found: models.StoredModel, model: string, box: SecretBox, id?: string): AdapterPayload {
  const sealed = found.payload[SEALED];
  const payload: Record<string, unknown> = typeof sealed === 'string'
    ? JSON.parse(box.open(sealed, `oidc:${model}:payload`)) as Record<string, unknown>
    : { ...found.payload };
  const sealedId = payload[SEALED_ID];
  delete payload[SEALED_ID];
  if (id === undefined && typeof sealedId === 'string') id = box.open(sealedId, `oidc:${model}:id`);
  if (id !== undefined && payload.jti === undefined) payload.jti = id;
  if (found.consumedAt !== null) payload.consumed = epochSeconds(found.consumedAt);
  return payload as AdapterPayload;
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
