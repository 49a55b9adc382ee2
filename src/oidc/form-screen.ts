import type { Context, Next } from 'koa';

import { isStorableParam, isStorableText } from '../services/validation.js';

/** oidc-provider's own limit for form and JSON bodies (selective_body.js). */
const BODY_LIMIT = 56 * 1024;
const FORM = 'application/x-www-form-urlencoded';
const UTF8 = new TextDecoder('utf-8', { fatal: true });

function refuse(ctx: Context, status: 400 | 413, description: string): void {
  ctx.status = status;
  ctx.body = { error: 'invalid_request', error_description: description };
}

/**
 * Form posts to oidc-provider's endpoints (PAR, token, introspection, revocation, userinfo,
 * …) are read and screened here, before the provider: malformed UTF-8, NUL and lone
 * surrogates (DESIGN §4: 400, never stored — PostgreSQL refuses them and a pushed
 * request's parameters are stored), and JSON-valued parameters (claims,
 * authorization_details, a request object's payload) nested deeper than 32, which would
 * otherwise exhaust the stack inside oidc-provider (500). The body read here is handed
 * on as the raw string; oidc-provider parses it exactly as it would have (querystring).
 */
export async function screenProtocolForms(ctx: Context, next: Next): Promise<void> {
  if (ctx.method !== 'POST' || !ctx.is(FORM) || !ctx.req.readable) {
    await next();
    return;
  }
  const declared = ctx.request.length;
  if (declared !== undefined && declared > BODY_LIMIT) return refuse(ctx, 413, 'request body too large');
  const chunks: Buffer[] = [];
  let received = 0;
  for await (const chunk of ctx.req.iterator({ destroyOnReturn: false }) as AsyncIterable<Buffer>) {
    received += chunk.length;
    if (received > BODY_LIMIT) return refuse(ctx, 413, 'request body too large');
    chunks.push(chunk);
  }
  let text: string;
  try {
    text = UTF8.decode(Buffer.concat(chunks, received));
  } catch {
    return refuse(ctx, 400, 'request body is not valid UTF-8');
  }
  // Each name and value must percent-decode to well-formed UTF-8 (querystring.parse, which
  // oidc-provider uses, would silently turn %ED%A0%80 or %FF into U+FFFD).
  const params = new Map<string, string[]>(); // names are the client's: never an object's keys
  for (const pair of text.split('&')) {
    if (pair === '') continue;
    const at = pair.indexOf('=');
    let name: string;
    let value: string;
    try {
      name = decodeURIComponent((at === -1 ? pair : pair.slice(0, at)).replace(/\+/g, ' '));
      value = at === -1 ? '' : decodeURIComponent(pair.slice(at + 1).replace(/\+/g, ' '));
    } catch {
      return refuse(ctx, 400, 'request parameters must be percent-encoded UTF-8');
    }
    if (!isStorableText(name) || !isStorableParam(value)) {
      return refuse(ctx, 400, 'request parameters must be well-formed text without NUL characters');
    }
    params.set(name, [...(params.get(name) ?? []), value]);
  }
  const requestObject = params.get('request')?.[0];
  if (requestObject !== undefined && !isStorableParam(jwtPayload(requestObject))) {
    return refuse(ctx, 400, 'request object must be well-formed text without NUL characters, nested at most 32 deep');
  }
  (ctx.req as { body?: unknown }).body = text;
  await next();
}

/** The payload segment of a compact JWS as text ('' when it is not one). */
function jwtPayload(jwt: string): string {
  const segment = jwt.split('.')[1];
  if (segment === undefined) return '';
  try {
    return UTF8.decode(Buffer.from(segment, 'base64url'));
  } catch {
    return '';
  }
}
