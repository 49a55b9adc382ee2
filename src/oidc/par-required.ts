import type { Context, Next } from 'koa';

import { HttpError } from '../http/errors.js';
import type { ProviderHolder } from './provider-holder.js';

/**
 * FAPI 2.0: an authorization request that was not pushed is refused on our own error page,
 * never redirected to the client. Its parameters are unauthenticated, so nothing in them
 * (redirect_uri, state) may steer the browser. oidc-provider would redirect the error.
 * Only first-party clients (profile oidc) may send plain authorization requests, by GET;
 * POSTed authorization requests are refused (their body is oidc-provider's to parse, and
 * no client here needs them: pushed requests are referenced by GET).
 */
export function requirePushedRequests(providers: ProviderHolder, authorizationPath = '/auth') {
  return async function checkPushed(ctx: Context, next: Next): Promise<void> {
    if (ctx.path === authorizationPath && ctx.method === 'POST') {
      throw new HttpError(400, 'PAR_REQUIRED', 'invalid_request: Pushed Authorization Request must be used. The app that sent you here must start again.');
    }
    if (ctx.path === authorizationPath && ctx.method === 'GET' && ctx.query.request_uri === undefined) {
      const clientId = ctx.query.client_id;
      const client = typeof clientId === 'string' ? await providers.current.Client.find(clientId) : undefined;
      if (client === undefined || client.metadata().require_pushed_authorization_requests !== false) {
        throw new HttpError(400, 'PAR_REQUIRED', 'invalid_request: Pushed Authorization Request must be used. The app that sent you here must start again.');
      }
    }
    await next();
  };
}
