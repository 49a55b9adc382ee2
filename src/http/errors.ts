import type { Context, Next } from 'koa';
import type { Logger } from 'pino';

import { ConflictError, NotFoundError, ValidationError } from '../services/errors.js';
import { isDatabaseUnavailable, respondUnavailable } from './database-unavailable.js';
import type { Views } from './views.js';

/** An HTTP error with a stable code and a message safe to show. */
export class HttpError extends Error {
  override readonly name = 'HttpError';
  readonly status: number;
  readonly code: string;

  constructor(status: number, code: string, message: string) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

interface Described { status: number; code: string; message: string }

function describe(error: unknown): Described {
  if (error instanceof HttpError) return { status: error.status, code: error.code, message: error.message };
  if (error instanceof ValidationError) return { status: 400, code: error.code, message: error.message };
  if (error instanceof NotFoundError) return { status: 404, code: error.code, message: error.message };
  if (error instanceof ConflictError) return { status: 409, code: error.code, message: error.message };
  const status = (error as { status?: unknown; expose?: unknown }).status;
  // Errors from Koa / body parsing carry a 4xx status and a message meant for the client.
  if (typeof status === 'number' && status >= 400 && status < 500) {
    const code = status === 413 ? 'PAYLOAD_TOO_LARGE' : status === 415 ? 'UNSUPPORTED_MEDIA_TYPE' : 'BAD_REQUEST';
    return { status, code, message: status === 413 ? 'request body too large' : 'the request could not be understood' };
  }
  return { status: 500, code: 'INTERNAL_ERROR', message: 'something went wrong on our side' };
}

/**
 * Turns every error thrown below into a response without internals: JSON
 * `{"error":{code,message,request_id}}` for API callers, the error page for browsers
 * (JSON only when no views are given: the admin API). A database outage is a 503
 * SERVICE_UNAVAILABLE with Retry-After, never a 500.
 * oidc-provider renders its own errors in RFC 6749 form and does not reach here
 * (see answerProviderOutages for its database outages).
 */
export function errorHandler(views: Views | undefined, log: Logger) {
  return async function handleErrors(ctx: Context, next: Next): Promise<void> {
    try {
      await next();
    } catch (error) {
      const requestId = String(ctx.state.requestId ?? '');
      if (isDatabaseUnavailable(error)) {
        log.warn({ err: error, requestId }, 'database unavailable');
        respondUnavailable(ctx, views !== undefined && ctx.accepts('html', 'json') === 'html' ? 'html' : 'json', views);
        return;
      }
      const described = describe(error);
      if (described.status >= 500) log.error({ err: error, requestId }, 'request failed');
      ctx.status = described.status;
      if (views !== undefined && ctx.accepts('html', 'json') === 'html') {
        ctx.type = 'html';
        ctx.body = views.render('error', { title: described.status >= 500 ? 'Something went wrong' : 'This request cannot be completed', message: described.message, requestId });
      } else {
        ctx.body = { error: { code: described.code, message: described.message, request_id: requestId } };
      }
    }
  };
}
