import type { Context, Next } from 'koa';

/**
 * FAPI Grant Management: the token response names the grant (the consent) it was issued
 * under, so the client can query or revoke it at /grants/{grant_id}. oidc-provider keeps
 * the grant of the request in ctx.oidc.entities; nothing is looked up again.
 */
export async function addGrantIdToTokenResponse(ctx: Context, next: Next): Promise<void> {
  await next();
  if (ctx.method !== 'POST' || ctx.path !== '/token' || ctx.status !== 200) return;
  const body = ctx.body as Record<string, unknown> | undefined;
  const grantId = (ctx as { oidc?: { entities?: { Grant?: { jti?: unknown } } } }).oidc?.entities?.Grant?.jti;
  if (body !== undefined && typeof body === 'object' && typeof body.access_token === 'string' && typeof grantId === 'string') {
    body.grant_id = grantId;
  }
}
