import { bodyParser } from '@koa/bodyparser';
import type { Context, Next } from 'koa';

import { HttpError } from './errors.js';

/** urlencoded form bodies only, at most 16 KiB: our pages post a handful of short fields. */
const parseUrlencoded = bodyParser({ enableTypes: ['form'], formLimit: '16kb', encoding: 'utf-8' });

/**
 * The form parser leaves malformed percent-encoding (invalid UTF-8, encoded lone
 * surrogates) as literal text; we refuse it instead, so no field is ever a mangled string.
 */
function assertStrictlyEncoded(rawBody: unknown): void {
  if (typeof rawBody !== 'string' || rawBody === '') return;
  for (const part of rawBody.split(/[&=]/)) {
    try {
      decodeURIComponent(part.replace(/\+/g, ' '));
    } catch {
      throw new HttpError(400, 'INVALID_ENCODING', 'the form is not valid UTF-8');
    }
  }
}

export async function parseForm(ctx: Context, next: Next): Promise<void> {
  await parseUrlencoded(ctx, async () => {
    assertStrictlyEncoded((ctx.request as { rawBody?: unknown }).rawBody);
    await next();
  });
}

function clean(name: string, value: string, maxLength: number): string {
  if (value.length > maxLength) throw new HttpError(400, 'FIELD_TOO_LONG', `${name} is too long`);
  if (!value.isWellFormed() || value.includes('\u0000')) throw new HttpError(400, 'INVALID_CHARACTERS', `${name} contains invalid characters`);
  return value;
}

function body(ctx: Context): Record<string, unknown> {
  const parsed = (ctx.request as { body?: unknown }).body;
  return typeof parsed === 'object' && parsed !== null ? parsed as Record<string, unknown> : {};
}

/** One string field (a repeated field is a 400: no parameter pollution). */
export function formField(ctx: Context, name: string, maxLength: number): string | undefined {
  const value = body(ctx)[name];
  if (value === undefined) return undefined;
  if (typeof value !== 'string') throw new HttpError(400, 'DUPLICATE_FIELD', `${name} must be sent once`);
  return clean(name, value, maxLength);
}

/** A field that may repeat (checkbox groups). */
export function formList(ctx: Context, name: string, maxLength: number, maxItems: number): string[] {
  const value = body(ctx)[name];
  if (value === undefined) return [];
  const list = Array.isArray(value) ? value : [value];
  if (list.length > maxItems) throw new HttpError(400, 'TOO_MANY_VALUES', `${name} has too many values`);
  return list.map((item) => {
    if (typeof item !== 'string') throw new HttpError(400, 'INVALID_FIELD', `${name} is malformed`);
    return clean(name, item, maxLength);
  });
}
