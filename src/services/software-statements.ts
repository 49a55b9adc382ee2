import { createRemoteJWKSet, customFetch, errors as joseErrors, jwtVerify, type JWTPayload } from 'jose';

import { insertUnique, type Prepared } from '../db/repositories/oidc-models.js';
import { sha256Base64Url } from './secret-box.js';
import { isStorableJson, oauthErrorText } from './validation.js';

/** An RFC 7591 registration error: `code` is one of the RFC's error codes. */
export class RegistrationError extends Error {
  override readonly name = 'RegistrationError';
  readonly code: 'invalid_software_statement' | 'unapproved_software_statement' | 'invalid_redirect_uri' | 'invalid_client_metadata';

  /** The message becomes an RFC 7591 error_description: kept to RFC 6749's characters. */
  constructor(code: RegistrationError['code'], message: string) {
    super(oauthErrorText(message));
    this.code = code;
  }
}

export const SOFTWARE_ROLES = ['AISP', 'PISP'] as const;

export interface SoftwareStatement {
  softwareId: string;
  clientName: string;
  redirectUris: string[];
  jwksUri: string;
  roles: (typeof SOFTWARE_ROLES)[number][];
  orgId: string;
  orgName: string;
}

export interface DirectoryConfig {
  readonly issuer: string;
  readonly jwksUri: string;
  /** oldest acceptable `iat`, in seconds */
  readonly maxAgeSeconds: number;
  /** minimum seconds between two fetches of the directory's JWKS (unknown kids included) */
  readonly jwksCooldownSeconds: number;
  /** development and tests: a software_jwks_uri may be http:// (FETCH_ALLOW_PRIVATE_NETWORKS) */
  readonly allowHttpJwksUri: boolean;
}

/** Bound on the directory's JWKS document: a hostile or broken directory cannot exhaust memory. */
const MAX_JWKS_BYTES = 256 * 1024;
const SSA_ALGORITHMS = ['PS256', 'ES256'];

/** fetch, refusing bodies over MAX_JWKS_BYTES (counted while streaming). */
export async function sizeLimitedFetch(url: string, options: RequestInit, limit = MAX_JWKS_BYTES): Promise<Response> {
  const response = await fetch(url, options);
  const reader = response.body?.getReader();
  if (reader === undefined) return response;
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > limit) {
      await reader.cancel();
      throw new Error('JWKS response too large');
    }
    chunks.push(value);
  }
  return new Response(Buffer.concat(chunks), { status: response.status, headers: response.headers });
}

function stringClaim(payload: JWTPayload, name: string, max = 255): string {
  const value = payload[name];
  if (typeof value !== 'string' || value.trim() === '' || value.length > max) {
    throw new RegistrationError('invalid_software_statement', `software statement claim ${name} must be a non-empty string`);
  }
  return value;
}

/**
 * Verifies software statement assertions (SSAs) signed by the trusted directory: a JWS
 * (PS256 or ES256 only) checked against the directory's JWKS — cached, refetched once on
 * an unknown `kid` and at most every SSA_JWKS_COOLDOWN_SECONDS (jose's cooldown), so key rollover works and a
 * flood of bad kids does not hammer the directory — with `iss`, a recent `iat`, a future
 * `exp`, a `jti` never seen before, and the open-banking claims.
 */
export class SoftwareStatementVerifier {
  readonly #directory: DirectoryConfig;
  readonly #prepared: Prepared;
  readonly #now: () => Date;
  readonly #keys: ReturnType<typeof createRemoteJWKSet>;

  constructor(directory: DirectoryConfig, prepared: Prepared, now: () => Date) {
    this.#directory = directory;
    this.#prepared = prepared;
    this.#now = now;
    this.#keys = createRemoteJWKSet(new URL(directory.jwksUri), {
      timeoutDuration: 3000,
      cooldownDuration: directory.jwksCooldownSeconds * 1000,
      cacheMaxAge: 10 * 60_000,
      [customFetch]: (url, options) => sizeLimitedFetch(url, options),
    });
  }

  /** Verifies the SSA and records its jti; nothing is recorded when it fails. */
  async verify(jws: unknown): Promise<SoftwareStatement> {
    if (typeof jws !== 'string' || jws.length > 16 * 1024 || !/^[\w-]+\.[\w-]+\.[\w-]+$/.test(jws)) {
      throw new RegistrationError('invalid_software_statement', 'software_statement must be a compact JWS');
    }
    const now = this.#now();
    const nowSeconds = Math.floor(now.getTime() / 1000);
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(jws, this.#keys, {
        algorithms: SSA_ALGORITHMS,
        currentDate: now,
        requiredClaims: ['iss', 'iat', 'exp', 'jti'],
        clockTolerance: 10,
      }));
    } catch (error) {
      if (error instanceof joseErrors.JWKSNoMatchingKey || error instanceof joseErrors.JWSSignatureVerificationFailed) {
        throw new RegistrationError('unapproved_software_statement', 'software statement is not signed by the trusted directory');
      }
      if (error instanceof joseErrors.JOSEAlgNotAllowed) {
        throw new RegistrationError('invalid_software_statement', 'software statement must be signed with PS256 or ES256');
      }
      if (error instanceof joseErrors.JWKSTimeout || error instanceof joseErrors.JWKSInvalid || (error as Error).message === 'JWKS response too large') {
        throw new RegistrationError('unapproved_software_statement', 'the software statement directory could not be reached');
      }
      if (error instanceof joseErrors.JWTExpired) throw new RegistrationError('invalid_software_statement', 'software statement has expired');
      if (error instanceof joseErrors.JWTClaimValidationFailed) {
        throw new RegistrationError('invalid_software_statement', `software statement claim ${error.claim} is invalid`);
      }
      throw new RegistrationError('invalid_software_statement', 'software statement could not be verified');
    }
    if (payload.iss !== this.#directory.issuer) {
      throw new RegistrationError('unapproved_software_statement', 'software statement is not issued by the trusted directory');
    }
    if (typeof payload.iat !== 'number' || payload.iat < nowSeconds - this.#directory.maxAgeSeconds || payload.iat > nowSeconds + 10) {
      throw new RegistrationError('invalid_software_statement', 'software statement is too old or not yet valid');
    }

    const statement = this.#claims(payload);
    const first = await insertUnique(this.#prepared, 'SoftwareStatementJti', sha256Base64Url(`${payload.iss}:${String(payload.jti)}`),
      { kind: 'SoftwareStatementJti' }, new Date((payload.exp as number) * 1000 + 60_000), now);
    if (!first) throw new RegistrationError('invalid_software_statement', 'software statement was already used (jti)');
    return statement;
  }

  #claims(payload: JWTPayload): SoftwareStatement {
    // Its claims are looked up and stored: PostgreSQL refuses NUL and lone surrogates.
    if (!isStorableJson(payload)) throw new RegistrationError('invalid_software_statement', 'the software statement contains a NUL character or malformed Unicode');
    const redirectUris = payload.software_redirect_uris;
    if (!Array.isArray(redirectUris) || redirectUris.length === 0 || redirectUris.length > 20 || redirectUris.some((u) => typeof u !== 'string')) {
      throw new RegistrationError('invalid_software_statement', 'software statement claim software_redirect_uris must list the redirect URIs');
    }
    const roles = payload.software_roles;
    if (!Array.isArray(roles) || roles.length === 0 || roles.some((r) => !SOFTWARE_ROLES.includes(r as (typeof SOFTWARE_ROLES)[number]))) {
      throw new RegistrationError('invalid_software_statement', `software statement claim software_roles must be a list of ${SOFTWARE_ROLES.join(', ')}`);
    }
    const jwksUri = stringClaim(payload, 'software_jwks_uri', 2048);
    if (!jwksUri.startsWith('https://') && !(this.#directory.allowHttpJwksUri && jwksUri.startsWith('http://'))) {
      throw new RegistrationError('invalid_software_statement', 'software_jwks_uri must be an https URL');
    }
    return {
      softwareId: stringClaim(payload, 'software_id', 128),
      clientName: stringClaim(payload, 'software_client_name', 200),
      redirectUris: redirectUris as string[],
      jwksUri,
      roles: [...new Set(roles as SoftwareStatement['roles'])],
      orgId: stringClaim(payload, 'org_id', 128),
      orgName: stringClaim(payload, 'org_name', 200),
    };
  }
}
