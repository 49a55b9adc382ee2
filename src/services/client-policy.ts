import { DETAIL_TYPES } from './authorization-details.js';
import { ValidationError } from './errors.js';
import { oauthErrorText } from './validation.js';

/**
 * The FAPI 2.0 Security Profile as rules on client metadata, shared by every way a
 * client comes to exist (CLI, dynamic registration). Pure: no I/O.
 *
 * Profile `fapi2` (every TPP): PAR required, a token binding required.
 * Profile `oidc` (first-party clients an operator creates with the CLI): plain OIDC code
 * flow — PAR and token binding optional — but still a confidential client (the same
 * authentication methods), PKCE (enforced for everyone by the provider), code only.
 */
export type Profile = 'fapi2' | 'oidc';
export const FAPI2_AUTH_METHODS = ['private_key_jwt', 'tls_client_auth', 'self_signed_tls_client_auth'] as const;
const TLS_SUBJECT_MEMBERS = ['tls_client_auth_subject_dn', 'tls_client_auth_san_dns', 'tls_client_auth_san_uri', 'tls_client_auth_san_ip', 'tls_client_auth_san_email'] as const;
const GRANT_TYPES = new Set(['authorization_code', 'refresh_token', 'client_credentials']);

function invalid(message: string): never {
  throw new ValidationError('INVALID_CLIENT_METADATA', oauthErrorText(message));
}

/** FAPI 2.0 defaults for what the metadata leaves out. */
export function withFapiDefaults(input: Record<string, unknown>, profile: Profile = 'fapi2'): Record<string, unknown> {
  const certificateBound = input.tls_client_certificate_bound_access_tokens === true;
  return {
    token_endpoint_auth_method: 'private_key_jwt',
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    // Every TPP token is sender-constrained: DPoP unless the client binds to its certificate.
    dpop_bound_access_tokens: profile === 'fapi2' && !certificateBound,
    require_pushed_authorization_requests: profile === 'fapi2',
    id_token_signed_response_alg: 'PS256',
    authorization_details_types: [...DETAIL_TYPES],
    ...input,
  };
}

/**
 * Redirect URIs are https; for local development and the demo only (ALLOW_LOOPBACK_REDIRECTS,
 * refused in production), also http on a loopback address (as RFC 8252 allows native apps).
 */
export function isAcceptableRedirectUri(uri: unknown, allowLoopbackHttp: boolean): boolean {
  if (typeof uri !== 'string') return false;
  if (uri.startsWith('https://')) return true;
  return allowLoopbackHttp && /^http:\/\/(127\.0\.0\.1|localhost|\[::1\])(:\d{1,5})?\//.test(uri);
}

/** Throws ValidationError(INVALID_CLIENT_METADATA) naming the first broken rule. */
export function assertFapiClientMetadata(metadata: Record<string, unknown>, profile: Profile = 'fapi2', { allowLoopbackHttp = false } = {}): void {
  if (profile === 'fapi2' && metadata.require_pushed_authorization_requests !== true) {
    invalid('require_pushed_authorization_requests must be true: authorization requests are pushed');
  }
  const method = metadata.token_endpoint_auth_method;
  if (!FAPI2_AUTH_METHODS.includes(method as (typeof FAPI2_AUTH_METHODS)[number])) {
    invalid(`token_endpoint_auth_method must be one of ${FAPI2_AUTH_METHODS.join(', ')}`);
  }
  if (method === 'private_key_jwt' || method === 'self_signed_tls_client_auth') {
    if (metadata.jwks === undefined && metadata.jwks_uri === undefined) invalid(`${String(method)} needs jwks or jwks_uri`);
    const keys = (metadata.jwks as { keys?: unknown } | undefined)?.keys;
    if (metadata.jwks !== undefined && (!Array.isArray(keys) || keys.length === 0)) invalid('jwks must hold at least one public key');
  }
  if (method === 'tls_client_auth') {
    const present = TLS_SUBJECT_MEMBERS.filter((member) => metadata[member] !== undefined);
    if (present.length !== 1) invalid(`tls_client_auth needs exactly one of ${TLS_SUBJECT_MEMBERS.join(', ')}`);
  }
  if (profile === 'fapi2' && metadata.dpop_bound_access_tokens !== true && metadata.tls_client_certificate_bound_access_tokens !== true) {
    invalid('every token is sender-constrained: set dpop_bound_access_tokens or tls_client_certificate_bound_access_tokens to true');
  }
  const responseTypes = metadata.response_types;
  if (!Array.isArray(responseTypes) || responseTypes.some((t) => t !== 'code')) invalid('response_types may only contain "code"');
  const grantTypes = metadata.grant_types;
  if (!Array.isArray(grantTypes) || grantTypes.some((g) => !GRANT_TYPES.has(g as string))) {
    invalid(`grant_types may only contain ${[...GRANT_TYPES].join(', ')}`);
  }
  const detailTypes = metadata.authorization_details_types;
  if (!Array.isArray(detailTypes) || detailTypes.some((t) => !DETAIL_TYPES.includes(t as (typeof DETAIL_TYPES)[number]))) {
    invalid(`authorization_details_types may only contain ${DETAIL_TYPES.join(', ')}`);
  }
  const redirectUris = metadata.redirect_uris ?? [];
  if (!Array.isArray(redirectUris) || redirectUris.some((uri) => !isAcceptableRedirectUri(uri, allowLoopbackHttp))) {
    invalid('redirect_uris must be https:// URLs');
  }
  if (responseTypes.length > 0 && redirectUris.length === 0) invalid('redirect_uris are required for the code flow');
}
