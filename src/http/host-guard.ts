import type { Context, Next } from 'koa';

import { HttpError } from './errors.js';

const HEALTH = new Set(['/healthz', '/readyz']);

/**
 * oidc-provider builds every endpoint URL (discovery, redirects, htu checks) from the
 * request's Host header. A request for another host would make it publish or redirect to
 * that host (cache poisoning, phishing links), so anything but the issuer's own host is
 * answered 421 Misdirected Request. Health checks (load balancers probing an instance by
 * address) are exempt; they reveal nothing.
 */
export function requireIssuerHost(issuer: string) {
  const expected = new URL(issuer).host.toLowerCase();
  return async function checkHost(ctx: Context, next: Next): Promise<void> {
    if (!HEALTH.has(ctx.path) && ctx.host.toLowerCase() !== expected) {
      throw new HttpError(421, 'MISDIRECTED_REQUEST', `this server answers for ${expected} only`);
    }
    await next();
  };
}
