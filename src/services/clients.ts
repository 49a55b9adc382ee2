import { randomBytes, randomUUID } from 'node:crypto';

import type { Db, Executor } from '../db/database.js';
import * as clientsRepo from '../db/repositories/clients.js';
import type { ClientRecord } from '../db/repositories/clients.js';
import { errors } from 'oidc-provider';

import { revokeAllOfClient } from '../db/repositories/consents.js';
import { revokeEverythingOfClient } from '../db/repositories/oidc-models.js';
import type { AuditContext, AuditLog } from './audit.js';
import { failpoint } from '../failpoints.js';
import { assertFapiClientMetadata, withFapiDefaults } from './client-policy.js';
import type { ClientMetadataCache } from './client-metadata-cache.js';
import { ConflictError, NotFoundError, ValidationError } from './errors.js';
import { isStorableText } from './validation.js';
import type { SecretBox } from './secret-box.js';

/** What oidc-provider's Client adapter needs. */
export interface ClientStore {
  findProviderMetadata(clientId: string): Promise<Record<string, unknown> | undefined>;
  saveProviderMetadata(clientId: string, metadata: Record<string, unknown>): Promise<void>;
  deleteClient(clientId: string): Promise<void>;
}

export type ClientProfile = 'fapi2' | 'oidc';
/** Metadata members Portcullis adds from its own columns; never accepted from input. */
export const PROFILE_METADATA = 'portcullis_profile';
export const KIND_METADATA = 'portcullis_kind';

/** Validates metadata the way oidc-provider will when it loads the client. */
export type MetadataValidator = (metadata: Record<string, unknown>) => Promise<void>;

const SECRET_PURPOSE = 'client_secret';

/**
 * Client metadata an operator may set with `portcullis client create`. Anything else is
 * rejected (our own API is strict; RFC 7591 registration has its own rules).
 */
const OPERATOR_METADATA = new Set([
  'client_id', 'client_name', 'redirect_uris', 'post_logout_redirect_uris', 'jwks', 'jwks_uri',
  'token_endpoint_auth_method', 'token_endpoint_auth_signing_alg', 'grant_types', 'response_types', 'scope',
  'dpop_bound_access_tokens', 'tls_client_certificate_bound_access_tokens', 'id_token_signed_response_alg', 'logo_uri', 'client_uri',
  'tls_client_auth_subject_dn', 'tls_client_auth_san_dns', 'tls_client_auth_san_uri', 'tls_client_auth_san_ip', 'tls_client_auth_san_email',
  'require_signed_request_object', 'request_object_signing_alg', 'authorization_signed_response_alg',
  'require_pushed_authorization_requests', 'authorization_details_types',
  'policy_uri', 'tos_uri', 'contacts', 'profile',
]);


function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
    && Object.getPrototypeOf(value) === Object.prototype;
}

export interface CreatedClient {
  client_id: string;
  client_name: string | undefined;
  profile: ClientProfile;
  metadata: Record<string, unknown>;
}

export class ClientService implements ClientStore {
  readonly #db: Db;
  readonly #secrets: SecretBox;
  readonly #validate: MetadataValidator;

  readonly #allowLoopbackRedirects: boolean;
  readonly #audit: AuditLog | undefined;
  readonly #cache: ClientMetadataCache | undefined;
  readonly #requestContext: (() => AuditContext | undefined) | undefined;

  /** `requestContext`: the IP and request id of the request being served, for audit events. */
  constructor(
    db: Db, secrets: SecretBox, validate: MetadataValidator,
    { allowLoopbackRedirects = false, audit, cache, requestContext }: {
      allowLoopbackRedirects?: boolean; audit?: AuditLog; cache?: ClientMetadataCache; requestContext?: () => AuditContext | undefined;
    } = {},
  ) {
    this.#db = db;
    this.#secrets = secrets;
    this.#validate = validate;
    this.#allowLoopbackRedirects = allowLoopbackRedirects;
    this.#audit = audit;
    this.#cache = cache;
    this.#requestContext = requestContext;
  }

  /** The client's grants and tokens go, and its consents become revoked (audited), in `trx`. */
  async #revokeEverything(trx: Executor, clientId: string, actor: string): Promise<void> {
    await revokeEverythingOfClient(trx, clientId);
    for (const grantId of await revokeAllOfClient(trx, clientId, new Date())) {
      await this.#audit?.record({ actor, clientId, type: 'consent.revoked', data: { grant_id: grantId, reason: 'client removed' } }, trx);
    }
  }

  /**
   * Creates a TPP client. Defaults are the FAPI 2.0 choices (client-policy.ts):
   * private_key_jwt, DPoP-bound tokens, pushed authorization requests, code flow, PS256.
   */
  async createClient(input: unknown): Promise<CreatedClient> {
    if (!isPlainObject(input)) throw new ValidationError('INVALID_CLIENT_METADATA', 'client metadata must be a JSON object');
    for (const key of Object.keys(input)) {
      if (!OPERATOR_METADATA.has(key)) throw new ValidationError('INVALID_CLIENT_METADATA', `unknown client metadata member: ${JSON.stringify(key).slice(0, 80)}`);
    }
    const { profile: profileInput, client_id: clientIdInput, ...rest } = input;
    const profile: ClientProfile = profileInput === undefined ? 'fapi2' : (profileInput as ClientProfile);
    if (profile !== 'fapi2' && profile !== 'oidc') throw new ValidationError('INVALID_CLIENT_METADATA', 'profile must be "fapi2" or "oidc"');
    if (clientIdInput !== undefined && (typeof clientIdInput !== 'string' || !/^[A-Za-z0-9._-]{3,128}$/.test(clientIdInput))) {
      throw new ValidationError('INVALID_CLIENT_METADATA', 'client_id must be 3–128 characters: letters, digits, ".", "_", "-"');
    }

    const metadata = withFapiDefaults(rest, profile);
    assertFapiClientMetadata(metadata, profile, { allowLoopbackHttp: this.#allowLoopbackRedirects });

    const clientId = (clientIdInput as string | undefined) ?? `tpp-${randomUUID()}`;
    await this.#validateForProvider({ ...metadata, client_id: clientId }, profile, 'tpp');
    await this.#insert({ clientId, metadata, secretEnc: null, kind: 'tpp', profile, softwareId: null });
    return { client_id: clientId, client_name: metadata.client_name as string | undefined, profile, metadata: { client_id: clientId, ...metadata } };
  }

  /** A resource server authenticates with a generated secret and may introspect any token. */
  async createResourceServer(name: string): Promise<{ client_id: string; client_secret: string }> {
    if (!/^[\p{L}\p{N} ._-]{1,100}$/u.test(name)) {
      throw new ValidationError('INVALID_NAME', 'name must be 1–100 letters, digits, spaces, ".", "_", "-"');
    }
    const clientId = `rs-${randomUUID()}`;
    const clientSecret = randomBytes(32).toString('base64url');
    const metadata: Record<string, unknown> = {
      client_name: name,
      token_endpoint_auth_method: 'client_secret_basic',
      // RFC 9701: signed introspection responses when asked with Accept: application/token-introspection+jwt
      introspection_signed_response_alg: 'PS256',
      grant_types: [],
      response_types: [],
      redirect_uris: [],
    };
    await this.#validateForProvider({ ...metadata, client_id: clientId, client_secret: clientSecret }, 'oidc', 'resource_server');
    await this.#insert({
      clientId, metadata, secretEnc: this.#secrets.seal(clientSecret, SECRET_PURPOSE), kind: 'resource_server', profile: 'oidc', softwareId: null,
    });
    return { client_id: clientId, client_secret: clientSecret };
  }

  async get(clientId: string): Promise<ClientRecord> {
    if (!isStorableText(clientId)) throw new NotFoundError('CLIENT_NOT_FOUND', 'no such client');
    const record = await clientsRepo.findClient(this.#db, clientId);
    if (record === undefined) throw new NotFoundError('CLIENT_NOT_FOUND', 'no such client');
    return record;
  }

  list(limit: number, after?: string): Promise<ClientRecord[]> {
    return clientsRepo.listClients(this.#db, limit, after);
  }

  /**
   * A disabled client is unknown to oidc-provider (no authentication, no new tokens) and
   * every grant and token it holds is removed; enabling lets it authenticate again.
   */
  async setDisabled(clientId: string, disabled: boolean, record: (trx: Executor) => Promise<void>): Promise<void> {
    await this.get(clientId);
    await this.#db.transaction().execute(async (trx) => {
      await clientsRepo.setClientDisabled(trx, clientId, disabled ? new Date() : null);
      if (disabled) await this.#revokeEverything(trx, clientId, 'admin');
      await record(trx);
    });
    this.#cache?.evict(clientId);
  }

  findBySoftwareId(softwareId: string): Promise<ClientRecord | undefined> {
    return clientsRepo.findClientBySoftwareId(this.#db, softwareId);
  }

  async findProviderMetadata(clientId: string): Promise<Record<string, unknown> | undefined> {
    // Request-borne ids (form bodies oidc-provider parses) may hold a NUL: no such client.
    if (!isStorableText(clientId)) return undefined;
    return this.#cache === undefined ? this.#loadProviderMetadata(clientId) : this.#cache.get(clientId, () => this.#loadProviderMetadata(clientId));
  }

  async #loadProviderMetadata(clientId: string): Promise<Record<string, unknown> | undefined> {
    const record = await clientsRepo.findClient(this.#db, clientId);
    if (record === undefined || record.disabledAt !== null) return undefined;
    return this.#providerMetadata(record);
  }

  /**
   * oidc-provider's write (dynamic registration and its updates): always a fapi2 TPP. The
   * row and its audit event (client.registered / client.updated) commit together.
   */
  async saveProviderMetadata(clientId: string, metadata: Record<string, unknown>): Promise<void> {
    const { client_secret: secret, client_id: _id, [PROFILE_METADATA]: _p, [KIND_METADATA]: _k, ...rest } = metadata;
    const secretEnc = typeof secret === 'string' ? this.#secrets.seal(secret, SECRET_PURPOSE) : null;
    const softwareId = typeof rest.software_id === 'string' ? rest.software_id : null;
    const context = { actor: 'dcr', clientId, ...this.#requestContext?.() };
    let created: boolean;
    try {
      created = await this.#db.transaction().execute(async (trx) => {
        if (await clientsRepo.updateClientMetadata(trx, clientId, rest, secretEnc)) {
          await this.#audit?.record({ ...context, type: 'client.updated' }, trx);
          return false;
        }
        await clientsRepo.insertClient(trx, { clientId, metadata: rest, secretEnc, kind: 'tpp', profile: 'fapi2', softwareId });
        await this.#audit?.record({ ...context, type: 'client.registered', data: { software_id: softwareId } }, trx);
        return true;
      });
    } catch (error) {
      // Two registrations of one software_id raced past the gate's check: one wins.
      if ((error as { code?: unknown }).code === '23505') throw new errors.InvalidClientMetadata(`software_id ${softwareId ?? ''} is already registered`);
      throw error;
    } finally {
      this.#cache?.evict(clientId);
    }
    if (created) failpoint('registration.client-saved');
  }

  /** Removes the client (audited) and, in the same transaction, every token and code it holds; its consents become revoked. */
  async deleteClient(clientId: string): Promise<void> {
    await this.#db.transaction().execute(async (trx) => {
      await clientsRepo.deleteClient(trx, clientId);
      await this.#revokeEverything(trx, clientId, 'dcr');
      await this.#audit?.record({ actor: 'dcr', clientId, ...this.#requestContext?.(), type: 'client.deleted' }, trx);
    });
    this.#cache?.evict(clientId);
  }

  #providerMetadata(record: ClientRecord): Record<string, unknown> {
    return {
      ...record.metadata,
      client_id: record.clientId,
      ...(record.secretEnc === null ? {} : { client_secret: this.#secrets.open(record.secretEnc, SECRET_PURPOSE) }),
      [PROFILE_METADATA]: record.profile,
      [KIND_METADATA]: record.kind,
    };
  }

  async #validateForProvider(metadata: Record<string, unknown>, profile: ClientProfile, kind: ClientRecord['kind']): Promise<void> {
    try {
      await this.#validate({ ...metadata, [PROFILE_METADATA]: profile, [KIND_METADATA]: kind });
    } catch (error) {
      const described = error as { error_description?: unknown; message?: unknown };
      const reason = typeof described.error_description === 'string' ? described.error_description : 'client metadata is invalid';
      throw new ValidationError('INVALID_CLIENT_METADATA', reason);
    }
  }

  async #insert(client: clientsRepo.NewClient): Promise<void> {
    try {
      await clientsRepo.insertClient(this.#db, client);
    } catch (error) {
      if ((error as { code?: unknown }).code === '23505') throw new ConflictError('CLIENT_EXISTS', `client ${client.clientId} already exists`);
      throw error;
    }
  }
}
