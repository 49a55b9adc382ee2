import { assertFapiClientMetadata, isAcceptableRedirectUri, withFapiDefaults } from './client-policy.js';
import { ValidationError } from './errors.js';
import { RegistrationError, type SoftwareStatement } from './software-statements.js';

/**
 * RFC 7591 registration metadata, checked against the software statement (SSA):
 * only these members are taken from the request; anything else a client sends is
 * ignored (RFC 7591 §2) and never stored. `jwks` is not among them: keys come from the
 * SSA's software_jwks_uri, so the directory vouches for them.
 */
const ACCEPTED = [
  'redirect_uris', 'token_endpoint_auth_method', 'token_endpoint_auth_signing_alg', 'jwks_uri',
  'tls_client_auth_subject_dn', 'tls_client_auth_san_dns', 'tls_client_auth_san_uri', 'tls_client_auth_san_ip', 'tls_client_auth_san_email',
  'dpop_bound_access_tokens', 'tls_client_certificate_bound_access_tokens', 'grant_types', 'response_types', 'scope',
  'id_token_signed_response_alg', 'authorization_signed_response_alg', 'request_object_signing_alg', 'require_signed_request_object',
  'contacts', 'logo_uri', 'client_uri', 'policy_uri', 'tos_uri',
] as const;

const ROLE_DETAIL_TYPES = { AISP: 'account_information', PISP: 'payment_initiation' } as const;
const ROLE_SCOPES = { AISP: 'accounts', PISP: 'payments' } as const;
const BASE_SCOPES = ['openid', 'offline_access', 'grant_management_query', 'grant_management_revoke'];

/** The JSON type of each accepted member (RFC 7591 §2 and the OpenID / FAPI extensions). */
const MEMBER_TYPES: Readonly<Record<(typeof ACCEPTED)[number], 'string' | 'boolean' | 'strings'>> = {
  redirect_uris: 'strings', token_endpoint_auth_method: 'string', token_endpoint_auth_signing_alg: 'string', jwks_uri: 'string',
  tls_client_auth_subject_dn: 'string', tls_client_auth_san_dns: 'string', tls_client_auth_san_uri: 'string', tls_client_auth_san_ip: 'string', tls_client_auth_san_email: 'string',
  dpop_bound_access_tokens: 'boolean', tls_client_certificate_bound_access_tokens: 'boolean', grant_types: 'strings', response_types: 'strings', scope: 'string',
  id_token_signed_response_alg: 'string', authorization_signed_response_alg: 'string', request_object_signing_alg: 'string', require_signed_request_object: 'boolean',
  contacts: 'strings', logo_uri: 'string', client_uri: 'string', policy_uri: 'string', tos_uri: 'string',
};

export function registrationMetadata(request: Record<string, unknown>, ssa: SoftwareStatement, { allowLoopbackHttp = false } = {}): Record<string, unknown> {
  if (request.jwks !== undefined) {
    throw new RegistrationError('invalid_client_metadata', 'jwks is not accepted: keys are published at the software statement\'s software_jwks_uri');
  }
  // Redirect URIs first (invalid_redirect_uri wins over other metadata errors).
  const redirectUris = request.redirect_uris === undefined ? ssa.redirectUris : request.redirect_uris;
  if (!Array.isArray(redirectUris) || redirectUris.length === 0 || redirectUris.some((uri) => typeof uri !== 'string')) {
    throw new RegistrationError('invalid_redirect_uri', 'redirect_uris must be a list of URLs');
  }
  for (const uri of redirectUris as string[]) {
    if (!isAcceptableRedirectUri(uri, allowLoopbackHttp)) throw new RegistrationError('invalid_redirect_uri', `redirect URI ${uri.slice(0, 200)} must use https`);
    if (!ssa.redirectUris.includes(uri)) throw new RegistrationError('invalid_redirect_uri', `redirect URI ${uri.slice(0, 200)} is not in the software statement`);
  }
  const picked: Record<string, unknown> = {};
  for (const member of ACCEPTED) {
    const value = request[member];
    if (value === undefined || member === 'redirect_uris') continue;
    // Typed before oidc-provider sees them: its validation assumes the types (an object
    // where a string belongs made it throw: a 500).
    const expected = MEMBER_TYPES[member];
    if (expected === 'string' && typeof value !== 'string') throw new RegistrationError('invalid_client_metadata', `${member} must be a string`);
    if (expected === 'boolean' && typeof value !== 'boolean') throw new RegistrationError('invalid_client_metadata', `${member} must be true or false`);
    if (expected === 'strings' && !(Array.isArray(value) && value.every((item) => typeof item === 'string'))) {
      throw new RegistrationError('invalid_client_metadata', `${member} must be a list of strings`);
    }
    picked[member] = value;
  }
  if (picked.jwks_uri !== undefined && picked.jwks_uri !== ssa.jwksUri) {
    throw new RegistrationError('invalid_client_metadata', 'jwks_uri must equal the software statement\'s software_jwks_uri');
  }
  if (picked.token_endpoint_auth_method === 'tls_client_auth' && typeof picked.tls_client_auth_subject_dn !== 'string') {
    throw new RegistrationError('invalid_client_metadata', 'tls_client_auth needs tls_client_auth_subject_dn');
  }

  const allowedScopes = [...BASE_SCOPES, ...ssa.roles.map((role) => ROLE_SCOPES[role])];
  const requestedScopes = typeof picked.scope === 'string' ? picked.scope.split(' ').filter(Boolean) : allowedScopes;
  const refused = requestedScopes.filter((scope) => !allowedScopes.includes(scope));
  if (refused.length > 0) throw new RegistrationError('invalid_client_metadata', `scope ${refused.join(' ')} is not allowed for roles ${ssa.roles.join(', ')}`);

  const metadata = withFapiDefaults({
    ...picked,
    redirect_uris: redirectUris,
    jwks_uri: ssa.jwksUri,
    scope: requestedScopes.join(' '),
    client_name: ssa.clientName,
    software_id: ssa.softwareId,
    software_roles: ssa.roles,
    org_id: ssa.orgId,
    // The roles decide which consents the client may ask for.
    authorization_details_types: ssa.roles.map((role) => ROLE_DETAIL_TYPES[role]),
  }, 'fapi2');
  try {
    assertFapiClientMetadata(metadata, 'fapi2', { allowLoopbackHttp });
  } catch (error) {
    if (error instanceof ValidationError) throw new RegistrationError('invalid_client_metadata', error.message);
    throw error;
  }
  return metadata;
}
