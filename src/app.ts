import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import Router from '@koa/router';
import Koa from 'koa';
import mount from 'koa-mount';
import type { Logger } from 'pino';

import type { Config } from './config.js';
import type { Database } from './db/database.js';
import type { Csrf } from './http/csrf.js';
import type { RequestScope } from './oidc/request-scope.js';
import { answerProviderOutages } from './http/database-unavailable.js';
import { errorHandler, HttpError } from './http/errors.js';
import { requireIssuerHost } from './http/host-guard.js';
import { rejectMalformedUrls } from './http/url-guard.js';
import type { Metrics } from './http/metrics.js';
import type { RateLimiter } from './http/rate-limit.js';
import { requestLog } from './http/request-log.js';
import { requestId } from './http/request-id.js';
import { securityHeaders } from './http/security-headers.js';
import type { Views } from './http/views.js';
import { dashboardRouter } from './interactions/dashboard.js';
import { interactionRouter } from './interactions/router.js';
import { clientMismatchIsInvalidClient } from './oidc/client-auth-errors.js';
import { addGrantIdToTokenResponse } from './oidc/token-response.js';
import { adjustDiscovery } from './oidc/discovery.js';
import { grantManagementRouter } from './oidc/grant-management.js';
import type { CertificateSource } from './oidc/mtls.js';
import { rejectFutureDpopProofs } from './oidc/dpop-time.js';
import { requirePushedRequests } from './oidc/par-required.js';
import { registrationGate } from './oidc/registration-gate.js';
import { screenProtocolForms } from './oidc/form-screen.js';
import type { ProviderHolder } from './oidc/provider-holder.js';
import { VIEWS_DIR } from './paths.js';
import type { AuthenticationService } from './services/authentication.js';
import type { ClientService } from './services/clients.js';
import type { ConsentService } from './services/consents.js';
import type { CustomerService } from './services/customers.js';
import type { DashboardSessions } from './services/dashboard-sessions.js';
import type { SoftwareStatementVerifier } from './services/software-statements.js';
import type { PaymentScaService } from './services/payment-sca.js';
import type { SecretBox } from './services/secret-box.js';
import type { TotpService } from './services/totp.js';

export interface AppDeps {
  readonly config: Config;
  readonly database: Database;
  readonly providers: ProviderHolder;
  readonly requestScope: RequestScope;
  readonly customers: CustomerService;
  readonly authentication: AuthenticationService;
  readonly totp: TotpService;
  readonly paymentSca: PaymentScaService;
  readonly consents: ConsentService;
  readonly softwareStatements: SoftwareStatementVerifier | undefined;
  readonly clients: ClientService;
  readonly certificates: CertificateSource;
  readonly dashboardSessions: DashboardSessions;
  readonly rateLimiter: RateLimiter | undefined;
  readonly metrics: Metrics;
  readonly box: SecretBox;
  readonly views: Views;
  readonly csrf: Csrf;
  readonly cookieKeys: string[];
  readonly log: Logger;
  readonly now: () => Date;
}

const STYLESHEET = readFileSync(join(VIEWS_DIR, 'static', 'portcullis.css'), 'utf8');

/**
 * The public application. Middleware order, top to bottom:
 *   1. request id          every response carries X-Request-Id; then one log line and
 *                          the request metrics per request (final status, 429s included)
 *   2. security headers    CSP, framing, no-store
 *   3. error envelope      no internals in any response; NUL / malformed URL → 400;
 *                          a Host other than the issuer's → 421; database down → 503
 *   4. rate limits         per endpoint class, by client or IP (never reads the body)
 *   5. health              /healthz (process), /readyz (database)
 *      static              the one stylesheet
 *   6. interactions        sign-in and consent pages (their own body parsing);
 *      grants              FAPI Grant Management (/grants/{grant_id})
 *      dashboard           the customer's consents at /account
 *   7. FAPI 2.0 filters    discovery adjustments; client_id mismatch → invalid_client;
 *                          grant_id in token responses;
 *                          DPoP proofs dated > 60 s ahead refused;
 *                          authorization requests that were not pushed refused (no redirect);
 *                          registrations checked against their software statement;
 *                          form posts screened: malformed UTF-8, NUL, lone surrogates,
 *                          over-deep JSON parameters → 400 invalid_request
 *   8. oidc-provider       every protocol endpoint; mounted last, no body parser before it
 *   (7 and 8 sit inside a database-outage guard: 503 temporarily_unavailable, RFC 6749 form)
 */
export function createApp(deps: AppDeps): Koa {
  const app = new Koa({ proxy: false });
  // Same keys as oidc-provider's cookies.keys: the interaction routes read its signed cookies.
  app.keys = deps.cookieKeys;
  app.silent = true;

  const health = new Router();
  health.get('/healthz', (ctx) => { ctx.body = { status: 'ok' }; });
  health.get('/readyz', async (ctx) => {
    const ready = await deps.database.ping();
    ctx.status = ready ? 200 : 503;
    ctx.body = ready ? { status: 'ready' } : { error: { code: 'DATABASE_UNAVAILABLE', message: 'database unreachable', request_id: ctx.state.requestId } };
  });
  health.get('/static/portcullis.css', (ctx) => {
    ctx.type = 'text/css';
    ctx.set('Cache-Control', 'public, max-age=3600');
    ctx.body = STYLESHEET;
  });

  const interactions = interactionRouter(deps);
  const dashboard = dashboardRouter({ ...deps, sessions: deps.dashboardSessions });
  const grants = grantManagementRouter({ providers: deps.providers, consents: deps.consents, certificates: deps.certificates, issuer: deps.config.issuer, now: deps.now });
  // The provider is rebuilt when signing keys change; requests go to the current one.
  let mounted = { provider: deps.providers.current, middleware: mount(deps.providers.current) };
  const currentProvider: Koa.Middleware = (ctx, next) => {
    if (mounted.provider !== deps.providers.current) mounted = { provider: deps.providers.current, middleware: mount(deps.providers.current) };
    return mounted.middleware(ctx, next);
  };

  app.use(requestId);
  app.use(deps.requestScope.middleware());
  app.use(requestLog(deps.log));
  app.use(deps.metrics.middleware);
  app.use(securityHeaders({ hsts: deps.config.tls !== undefined }));
  app.use(errorHandler(deps.views, deps.log));
  app.use(rejectMalformedUrls);
  app.use(requireIssuerHost(deps.config.issuer));
  if (deps.rateLimiter !== undefined) app.use(deps.rateLimiter.middleware);
  app.use(health.routes());
  app.use(interactions.routes());
  app.use(interactions.allowedMethods({ throw: true, notImplemented: () => new HttpError(405, 'METHOD_NOT_ALLOWED', 'method not allowed'), methodNotAllowed: () => new HttpError(405, 'METHOD_NOT_ALLOWED', 'method not allowed') }));
  app.use(grants.routes());
  app.use(dashboard.routes());
  app.use(dashboard.allowedMethods({ throw: true, notImplemented: () => new HttpError(405, 'METHOD_NOT_ALLOWED', 'method not allowed'), methodNotAllowed: () => new HttpError(405, 'METHOD_NOT_ALLOWED', 'method not allowed') }));
  app.use(answerProviderOutages(() => deps.providers.current, deps.views, deps.log));
  app.use(adjustDiscovery);
  app.use(clientMismatchIsInvalidClient);
  app.use(addGrantIdToTokenResponse);
  app.use(rejectFutureDpopProofs(deps.now));
  app.use(requirePushedRequests(deps.providers));
  app.use(registrationGate({ verifier: deps.softwareStatements, clients: deps.clients, providers: deps.providers, allowLoopbackRedirects: deps.config.allowLoopbackRedirects }));
  app.use(screenProtocolForms);
  app.use(currentProvider);
  return app;
}
