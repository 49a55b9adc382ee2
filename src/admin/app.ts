import Router from '@koa/router';
import Koa, { type Context, type Next } from 'koa';

import type { Container } from '../container.js';
import { errorHandler, HttpError } from '../http/errors.js';
import { requestId } from '../http/request-id.js';
import { requestLog } from '../http/request-log.js';
import { rejectMalformedUrls } from '../http/url-guard.js';
import { securityHeaders } from '../http/security-headers.js';
import type { ApiKeyRecord } from '../db/repositories/api-keys.js';
import type { AuditContext } from '../services/audit.js';
import { ADMIN_OPENAPI } from './openapi.js';

type AdminDeps = Pick<Container, 'apiKeys' | 'consents' | 'customers' | 'authentication' | 'keys' | 'keyRefresher' | 'audit' | 'log' | 'database' | 'metrics' | 'clients' | 'totp'>;

/** Bearer <api key> → the key, or 401. */
function authenticate(deps: AdminDeps) {
  return async function requireApiKey(ctx: Context, next: Next): Promise<void> {
    const match = /^Bearer (\S{1,200})$/.exec(ctx.get('authorization'));
    const key = match?.[1] === undefined ? undefined : await deps.apiKeys.authenticate(match[1]);
    if (key === undefined) {
      ctx.set('WWW-Authenticate', 'Bearer realm="portcullis-admin"');
      throw new HttpError(401, 'UNAUTHENTICATED', 'a valid API key is required (Authorization: Bearer <key>)');
    }
    ctx.state.apiKey = key;
    await next();
  };
}

function requireScope(scope: 'admin:read' | 'admin:write') {
  return async function checkScope(ctx: Context, next: Next): Promise<void> {
    if (!(ctx.state.apiKey as ApiKeyRecord).scopes.includes(scope)) throw new HttpError(403, 'FORBIDDEN', `this API key lacks the ${scope} scope`);
    await next();
  };
}

function actor(ctx: Context): AuditContext {
  return { actor: `apikey:${(ctx.state.apiKey as ApiKeyRecord).id}`, ip: ctx.ip, requestId: String(ctx.state.requestId ?? '') };
}

function consentView(consent: Awaited<ReturnType<AdminDeps['consents']['get']>>, status: string) {
  return {
    grant_id: consent.grantId, client_id: consent.clientId, user_id: consent.userId, type: consent.type, scopes: consent.scopes,
    authorization_details: consent.details, status, created_at: consent.createdAt.toISOString(),
    expires_at: consent.expiresAt?.toISOString() ?? null, version: consent.version,
  };
}

/**
 * The admin API (ADMIN_PORT, 127.0.0.1 unless ADMIN_HOST says otherwise), for the bank's
 * back office and its payment API. Every request needs an API key; reads need admin:read,
 * changes admin:write, and every change is audited with the key as its actor.
 *
 *   GET  /admin/v1/openapi.json
 *   GET  /admin/v1/consents?user_id=&client_id=      GET /admin/v1/consents/{grant_id}
 *   POST /admin/v1/consents/{grant_id}/consume       a payment consent, exactly once
 *   POST /admin/v1/consents/{grant_id}/revoke
 *   GET  /admin/v1/clients?after=&limit=            GET /admin/v1/clients/{client_id}
 *   POST /admin/v1/clients/{client_id}/disable|enable
 *   GET  /admin/v1/users?after=&limit=              GET /admin/v1/users/{username}
 *   POST /admin/v1/users/{username}/unlock           POST /admin/v1/users/{username}/reset-totp
 *   GET  /admin/v1/audit-events?type=&user_id=&client_id=&before=&limit=
 *   GET  /admin/v1/keys                              POST /admin/v1/keys/rotate
 *   GET  /admin/v1/audit/verify
 *   GET  /metrics                                    Prometheus (no key: the port is loopback)
 */
export function createAdminApp(deps: AdminDeps): Koa {
  const app = new Koa({ proxy: false });
  app.silent = true;
  const router = new Router({ prefix: '/admin/v1' });
  const read = [authenticate(deps), requireScope('admin:read')];
  const write = [authenticate(deps), requireScope('admin:write')];

  router.get('/openapi.json', (ctx) => { ctx.body = ADMIN_OPENAPI; });

  router.get('/consents', ...read, async (ctx) => {
    const userId = typeof ctx.query.user_id === 'string' ? ctx.query.user_id : undefined;
    const clientId = typeof ctx.query.client_id === 'string' ? ctx.query.client_id : undefined;
    if (userId !== undefined && !/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(userId)) throw new HttpError(400, 'INVALID_USER_ID', 'user_id must be a UUID');
    const consents = await deps.consents.list({ userId, clientId });
    ctx.body = { consents: consents.map((c) => consentView(c, deps.consents.effectiveStatus(c))) };
  });

  router.get('/consents/:grantId', ...read, async (ctx) => {
    const consent = await deps.consents.get(ctx.params.grantId!);
    ctx.body = consentView(consent, deps.consents.effectiveStatus(consent));
  });

  router.post('/consents/:grantId/consume', ...write, async (ctx) => {
    const grantId = ctx.params.grantId!;
    const consent = await deps.consents.get(grantId);
    if (consent.type !== 'payment_initiation') throw new HttpError(409, 'NOT_A_PAYMENT_CONSENT', 'only a payment consent can be consumed');
    const consumed = await deps.consents.consume(grantId, actor(ctx));
    if (consumed === undefined) throw new HttpError(409, 'CONSENT_NOT_AUTHORISED', 'the consent is no longer authorised (already consumed, revoked or expired)');
    ctx.body = { grant_id: grantId, status: consumed.status };
  });

  router.post('/consents/:grantId/revoke', ...write, async (ctx) => {
    const grantId = ctx.params.grantId!;
    await deps.consents.get(grantId);
    const revoked = await deps.consents.transition(grantId, 'revoked', {}, actor(ctx));
    if (revoked === undefined) throw new HttpError(409, 'CONSENT_NOT_AUTHORISED', 'the consent is no longer authorised');
    ctx.body = { grant_id: grantId, status: revoked.status };
  });

  const limitOf = (ctx: Context) => {
    const raw = typeof ctx.query.limit === 'string' ? ctx.query.limit : '50';
    if (!/^\d{1,3}$/.test(raw) || Number(raw) < 1 || Number(raw) > 200) throw new HttpError(400, 'INVALID_LIMIT', 'limit must be 1–200');
    return Number(raw);
  };
  const clientView = (c: Awaited<ReturnType<AdminDeps['clients']['get']>>) => ({
    client_id: c.clientId, kind: c.kind, profile: c.profile, software_id: c.softwareId, disabled: c.disabledAt !== null,
    created_at: c.createdAt.toISOString(), metadata: c.metadata,
  });

  router.get('/clients', ...read, async (ctx) => {
    const after = typeof ctx.query.after === 'string' ? ctx.query.after : undefined;
    const clients = await deps.clients.list(limitOf(ctx), after);
    ctx.body = { clients: clients.map(clientView), next: clients.at(-1)?.clientId ?? null };
  });

  router.get('/clients/:clientId', ...read, async (ctx) => {
    ctx.body = clientView(await deps.clients.get(ctx.params.clientId!));
  });

  for (const action of ['disable', 'enable'] as const) {
    router.post(`/clients/:clientId/${action}`, ...write, async (ctx) => {
      const clientId = ctx.params.clientId!;
      await deps.clients.setDisabled(clientId, action === 'disable', (trx) => deps.audit.record({ ...actor(ctx), clientId, type: `client.${action}d` }, trx));
      ctx.body = clientView(await deps.clients.get(clientId));
    });
  }

  const userView = (u: Awaited<ReturnType<AdminDeps['customers']['summary']>>) => ({
    id: u.id, username: u.username, name: u.name, email: u.email, totp_enrolled: u.totpEnrolled, failed_attempts: u.failedAttempts,
    locked_until: u.lockedUntil?.toISOString() ?? null, locked_permanently: u.lockedPermanently, created_at: u.createdAt.toISOString(),
  });

  router.get('/users', ...read, async (ctx) => {
    const after = typeof ctx.query.after === 'string' ? ctx.query.after : undefined;
    const users = await deps.customers.list(limitOf(ctx), after);
    ctx.body = { users: users.map(userView), next: users.at(-1)?.username ?? null };
  });

  router.get('/users/:username', ...read, async (ctx) => {
    ctx.body = userView(await deps.customers.summary(ctx.params.username!));
  });

  router.post('/users/:username/reset-totp', ...write, async (ctx) => {
    const user = await deps.customers.requireByUsername(ctx.params.username!);
    await deps.totp.reset(user.id, actor(ctx));
    ctx.body = { username: user.username, totp: 'reset' };
  });

  router.get('/audit-events', ...read, async (ctx) => {
    const text = (name: string) => (typeof ctx.query[name] === 'string' ? ctx.query[name] as string : undefined);
    const before = text('before');
    if (before !== undefined && !/^\d{1,15}$/.test(before)) throw new HttpError(400, 'INVALID_CURSOR', 'before must be an event sequence number');
    const events = await deps.audit.search({ type: text('type'), userId: text('user_id'), clientId: text('client_id'), beforeSeq: before === undefined ? undefined : Number(before) }, limitOf(ctx));
    ctx.body = {
      events: events.map((e) => ({ seq: e.seq, occurred_at: e.occurredAt.toISOString(), type: e.type, actor: e.actor, client_id: e.clientId, user_id: e.userId, ip: e.ip, request_id: e.requestId, data: e.data })),
      next: events.length === 0 ? null : String(events.at(-1)!.seq),
    };
  });

  router.post('/users/:username/unlock', ...write, async (ctx) => {
    const user = await deps.customers.requireByUsername(ctx.params.username!);
    await deps.authentication.unlock(user.id, actor(ctx));
    ctx.body = { username: user.username, unlocked: true };
  });

  router.get('/keys', ...read, async (ctx) => {
    ctx.body = { keys: await deps.keys.list() };
  });

  router.post('/keys/rotate', ...write, async (ctx) => {
    const published = await deps.keys.rotate();
    await deps.audit.record({ ...actor(ctx), type: 'keys.rotated', data: { kids: published.map((k) => k.kid) } });
    await deps.keyRefresher.refreshOnce();
    ctx.body = { published };
  });

  router.get('/audit/verify', ...read, async (ctx) => {
    ctx.body = await deps.audit.verify();
  });

  app.use(requestId);
  app.use(requestLog(deps.log));
  app.use(securityHeaders({ hsts: false }));
  app.use(errorHandler(undefined, deps.log));
  app.use(rejectMalformedUrls);
  // Prometheus scrapes /metrics on this (loopback) port; scrapes are not counted themselves.
  app.use(deps.metrics.endpoint('/metrics'));
  app.use(deps.metrics.middleware);
  app.use(router.routes());
  app.use(router.allowedMethods({ throw: true }));
  app.use((ctx) => { throw new HttpError(404, 'NOT_FOUND', `no route ${ctx.method} ${ctx.path.slice(0, 100)}`); });
  return app;
}
