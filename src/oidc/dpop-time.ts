import type { Context, Next } from 'koa';

/**
 * FAPI 2.0 §5.3.2.1: a JWT whose `iat` is more than 60 s in the future is rejected.
 * oidc-provider accepts DPoP proofs within ±300 s of its clock (answering
 * use_dpop_nonce beyond that), so proofs dated further ahead than 60 s are refused here,
 * before the provider, in the error shape of the endpoint they were sent to.
 */
export const MAX_DPOP_FUTURE_SECONDS = 60;
const RESOURCE_PATHS = new Set(['/me']);

function proofIssuedAt(header: string): number | undefined {
  const payload = header.split('.')[1];
  if (payload === undefined) return undefined;
  try {
    const iat = (JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as { iat?: unknown }).iat;
    return typeof iat === 'number' ? iat : undefined;
  } catch {
    return undefined; // malformed proofs are oidc-provider's to reject
  }
}

export function rejectFutureDpopProofs(now: () => Date) {
  return async function checkDpopTime(ctx: Context, next: Next): Promise<void> {
    const header = ctx.get('dpop');
    if (header !== '') {
      const iat = proofIssuedAt(header);
      if (iat !== undefined && iat > Math.floor(now().getTime() / 1000) + MAX_DPOP_FUTURE_SECONDS) {
        const description = 'DPoP proof iat is too far in the future';
        if (RESOURCE_PATHS.has(ctx.path)) {
          ctx.status = 401;
          ctx.set('WWW-Authenticate', `DPoP error="invalid_dpop_proof", error_description="${description}"`);
          ctx.body = { error: 'invalid_dpop_proof', error_description: description };
        } else {
          ctx.status = 400;
          ctx.body = { error: 'invalid_dpop_proof', error_description: description };
        }
        return;
      }
    }
    await next();
  };
}
