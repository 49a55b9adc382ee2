import type { Context, Next } from 'koa';

import { FAPI2_AUTH_METHODS as FAPI_AUTH_METHODS } from '../services/client-policy.js';

/** Resource servers also authenticate with their secret, at introspection and revocation only. */
export const RESOURCE_SERVER_AUTH_METHOD = 'client_secret_basic';

const ENDPOINTS_WITH_MTLS_ALIASES = [
  'token_endpoint', 'pushed_authorization_request_endpoint', 'introspection_endpoint',
  'revocation_endpoint', 'userinfo_endpoint', 'registration_endpoint', 'grant_management_endpoint',
] as const;

/**
 * oidc-provider advertises one list of client authentication methods for every endpoint
 * and has no RFC 8705 `mtls_endpoint_aliases`. This rewrites its discovery document:
 * the token endpoint lists exactly the FAPI 2.0 methods, introspection and revocation add
 * the resource servers' client_secret_basic, and every endpoint's mTLS alias is itself
 * (one listener requests client certificates on all endpoints).
 */
export async function adjustDiscovery(ctx: Context, next: Next): Promise<void> {
  await next();
  if (ctx.method !== 'GET' || ctx.path !== '/.well-known/openid-configuration' || ctx.status !== 200) return;
  const body = ctx.body as Record<string, unknown> | undefined;
  if (body === undefined || typeof body !== 'object') return;
  // Every TPP must push its requests; only first-party clients (profile oidc) may not.
  body.require_pushed_authorization_requests = true;
  body.token_endpoint_auth_methods_supported = [...FAPI_AUTH_METHODS];
  body.introspection_endpoint_auth_methods_supported = [...FAPI_AUTH_METHODS, RESOURCE_SERVER_AUTH_METHOD];
  body.revocation_endpoint_auth_methods_supported = [...FAPI_AUTH_METHODS, RESOURCE_SERVER_AUTH_METHOD];
  body.introspection_endpoint_auth_signing_alg_values_supported = body.token_endpoint_auth_signing_alg_values_supported;
  body.revocation_endpoint_auth_signing_alg_values_supported = body.token_endpoint_auth_signing_alg_values_supported;
  // FAPI Grant Management (grant-management.ts).
  body.grant_management_endpoint = `${String(body.issuer)}/grants`;
  body.grant_management_actions_supported = ['query', 'revoke'];
  body.grant_management_action_required = false;
  const aliases: Record<string, unknown> = {};
  for (const endpoint of ENDPOINTS_WITH_MTLS_ALIASES) {
    if (typeof body[endpoint] === 'string') aliases[endpoint] = body[endpoint];
  }
  body.mtls_endpoint_aliases = aliases;

}
