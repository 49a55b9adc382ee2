import type { Context, Next } from 'koa';

/**
 * Headers every response carries. Pages get a CSP without inline script; nothing may
 * frame us; responses are never cached (they carry tokens or personal data).
 */
export function securityHeaders(options: { hsts: boolean }) {
  return async function setSecurityHeaders(ctx: Context, next: Next): Promise<void> {
    ctx.set('X-Content-Type-Options', 'nosniff');
    ctx.set('X-Frame-Options', 'DENY');
    ctx.set('Referrer-Policy', 'no-referrer');
    ctx.set('Content-Security-Policy', "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self' *; frame-ancestors 'none'; base-uri 'none'");
    if (options.hsts) ctx.set('Strict-Transport-Security', 'max-age=31536000; includeSubDomains');
    await next();
    if (!ctx.response.get('Cache-Control')) ctx.set('Cache-Control', 'no-store');
  };
}
