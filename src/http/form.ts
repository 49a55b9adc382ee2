import { bodyParser } from '@koa/bodyparser';
import type { Context } from 'koa';

import { HttpError } from './errors.js';

/** urlencoded form bodies only, at most 16 KiB: our pages post a handful of short fields. */
export const parseForm = bodyParser({ enableTypes: ['form'], formLimit: '16kb', encoding: 'utf-8' });

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
