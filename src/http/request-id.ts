import { randomUUID } from 'node:crypto';

import type { Context, Next } from 'koa';

/** An inbound X-Request-Id is kept only when it is short and plain; otherwise a new one. */
const WELL_FORMED = /^[A-Za-z0-9._-]{8,64}$/;

export async function requestId(ctx: Context, next: Next): Promise<void> {
  const inbound = ctx.get('x-request-id');
  const id = WELL_FORMED.test(inbound) ? inbound : randomUUID();
  ctx.state.requestId = id;
  ctx.set('X-Request-Id', id);
  await next();
}
