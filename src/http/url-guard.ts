import type { Context, Next } from 'koa';

import { HttpError } from './errors.js';

/**
 * Rejects a request whose path or query string holds a NUL or malformed percent-encoding
 * (invalid UTF-8, encoded lone surrogates) with 400, before any handler sees it: no
 * database parameter can then carry a NUL (PostgreSQL refuses them with an error).
 */
export async function rejectMalformedUrls(ctx: Context, next: Next): Promise<void> {
  const raw = ctx.originalUrl;
  let decoded: string;
  try {
    decoded = decodeURIComponent(raw.replace(/\+/g, ' '));
  } catch {
    throw new HttpError(400, 'INVALID_ENCODING', 'the request URL is not valid UTF-8');
  }
  if (decoded.includes('\u0000')) throw new HttpError(400, 'INVALID_CHARACTERS', 'the request URL contains a NUL character');
  await next();
}
