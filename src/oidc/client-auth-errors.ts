import type { Context, Next } from 'koa';

const CLIENT_AUTH_ENDPOINTS = new Set(['/token', '/request', '/token/introspection', '/token/revocation']);

/**
 * oidc-provider answers `invalid_request` ("client_id mismatch") when the client_id
 * parameter and the credentials name different clients (e.g. a client assertion whose
 * `sub` is another client). That is a failed client authentication: RFC 6749 §5.2 and
 * RFC 7523 §3.1 say `invalid_client` (401), which is what conformance suites expect.
 */
export async function clientMismatchIsInvalidClient(ctx: Context, next: Next): Promise<void> {
  await next();
  if (ctx.status !== 400 || ctx.method !== 'POST' || !CLIENT_AUTH_ENDPOINTS.has(ctx.path)) return;
  const body = ctx.body as { error?: unknown; error_description?: unknown } | undefined;
  if (body?.error === 'invalid_request' && body.error_description === 'client_id mismatch') {
    ctx.status = 401;
    ctx.body = { error: 'invalid_client', error_description: 'client authentication failed: client_id does not match the credentials' };
  }
}
