import { EventEmitter } from 'node:events';
import { createServer, type Server } from 'node:http';
import { createServer as createTcpServer, type AddressInfo, type Server as TcpServer, type Socket } from 'node:net';

import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import Koa from 'koa';
import { errors as oidcErrors } from 'oidc-provider';
import type Provider from 'oidc-provider';
import pg from 'pg';
import pino from 'pino';

import { POOL_QUEUE_FULL } from '../../src/db/database.js';
import { answerProviderOutages, isDatabaseUnavailable, RETRY_AFTER_SECONDS } from '../../src/http/database-unavailable.js';
import { errorHandler, HttpError } from '../../src/http/errors.js';
import { requestId } from '../../src/http/request-id.js';
import { createViews } from '../../src/http/views.js';
import { ValidationError } from '../../src/services/errors.js';

function databaseError(code: string, message = 'database says no'): pg.DatabaseError {
  const error = new pg.DatabaseError(message, message.length, 'error');
  error.code = code;
  error.severity = 'ERROR';
  return error;
}

const errno = (code: string, message = `connect ${code} 127.0.0.1:5432`) => Object.assign(new Error(message), { code, errno: -1, syscall: 'connect' });

describe('isDatabaseUnavailable', () => {
  test.each<[string, unknown]>([
    ['connection refused', errno('ECONNREFUSED')],
    ['connection reset', errno('ECONNRESET', 'read ECONNRESET')],
    ['host unreachable', errno('EHOSTUNREACH')],
    ['database host name does not resolve', errno('ENOTFOUND', 'getaddrinfo ENOTFOUND db.internal')],
    ['every address refused (happy eyeballs)', new AggregateError([errno('ECONNREFUSED'), errno('ECONNREFUSED', 'connect ECONNREFUSED ::1:5432')])],
    ['57P01 admin_shutdown', databaseError('57P01', 'terminating connection due to administrator command')],
    ['57P02 crash_shutdown', databaseError('57P02')],
    ['57P03 cannot_connect_now', databaseError('57P03', 'the database system is starting up')],
    ['57014 statement_timeout', databaseError('57014', 'canceling statement due to statement timeout')],
    ['55P03 lock_timeout', databaseError('55P03', 'canceling statement due to lock timeout')],
    ['53300 too_many_connections', databaseError('53300', 'sorry, too many clients already')],
    ['08006 connection_failure', databaseError('08006')],
    ['25006 read-only transaction (a standby after failover)', databaseError('25006', 'cannot execute INSERT in a read-only transaction')],
    ['pool connect timeout', new Error('timeout exceeded when trying to connect')],
    ['connection terminated', new Error('Connection terminated unexpectedly')],
    ['connection timeout', new Error('Connection terminated due to connection timeout')],
    ['broken client reused', new Error('Client has encountered a connection error and is not queryable')],
    ['pool queue full', Object.assign(new Error('too many queries waiting for a database connection'), { code: POOL_QUEUE_FULL })],
  ])('%s → unavailable', (_name, error) => {
    expect(isDatabaseUnavailable(error)).toBe(true);
  });

  test.each<[string, unknown]>([
    ['23505 unique_violation', databaseError('23505', 'duplicate key value violates unique constraint')],
    ['42P01 undefined_table', databaseError('42P01', 'relation "x" does not exist')],
    ['22P02 invalid text representation', databaseError('22P02')],
    ['22021 invalid byte sequence', databaseError('22021')],
    ['40001 serialization_failure', databaseError('40001')],
    ['a plain bug', new TypeError("Cannot read properties of undefined (reading 'x')")],
    ['an outbound fetch refused (jwks_uri): not the database', new TypeError('fetch failed', { cause: errno('ECONNREFUSED') })],
    ['an HTTP error', new HttpError(400, 'BAD_REQUEST', 'no')],
    ['a validation error', new ValidationError('INVALID', 'no')],
    ['an OAuth error', new oidcErrors.InvalidGrant('grant request is invalid')],
    ['an aggregate of bugs', new AggregateError([new Error('a'), new Error('b')])],
    ['a Node error code of another kind', Object.assign(new Error('x'), { code: 'ERR_INVALID_ARG_TYPE' })],
    ['null', null],
    ['undefined', undefined],
    ['a string', 'ECONNREFUSED'],
  ])('%s → not unavailable', (_name, error) => {
    expect(isDatabaseUnavailable(error)).toBe(false);
  });

  describe('the errors pg really raises (no database needed)', () => {
    let silent: TcpServer;
    let hangUp: TcpServer;
    const held = new Set<Socket>();
    const portOf = (server: TcpServer) => (server.address() as AddressInfo).port;

    beforeAll(async () => {
      // Accepts and never answers; accepts and hangs up at once.
      silent = createTcpServer((socket) => { held.add(socket); });
      hangUp = createTcpServer((socket) => socket.destroy());
      await Promise.all([silent, hangUp].map((s) => new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve))));
    });

    afterAll(async () => {
      for (const socket of held) socket.destroy();
      await Promise.all([silent, hangUp].map((server) => new Promise<void>((resolve) => server.close(() => resolve()))));
    });

    async function pgFailure(run: () => Promise<unknown>): Promise<unknown> {
      try {
        await run();
      } catch (error) {
        return error;
      }
      throw new Error('expected a failure');
    }

    test('nothing listening', async () => {
      const free = createTcpServer();
      await new Promise<void>((resolve) => free.listen(0, '127.0.0.1', resolve));
      const port = portOf(free);
      await new Promise<void>((resolve) => free.close(() => resolve()));
      const client = new pg.Client({ host: '127.0.0.1', port, user: 'x', database: 'x' });
      expect(isDatabaseUnavailable(await pgFailure(() => client.connect()))).toBe(true);
    });

    test('the server hangs up', async () => {
      const client = new pg.Client({ host: '127.0.0.1', port: portOf(hangUp), user: 'x', database: 'x' });
      expect(isDatabaseUnavailable(await pgFailure(() => client.connect()))).toBe(true);
    });

    test('the pool cannot get a connection in time', async () => {
      const pool = new pg.Pool({ host: '127.0.0.1', port: portOf(silent), user: 'x', database: 'x', connectionTimeoutMillis: 100 });
      pool.on('error', () => undefined);
      const error = await pgFailure(() => pool.query('select 1'));
      await pool.end().catch(() => undefined);
      expect(isDatabaseUnavailable(error)).toBe(true);
    });
  });
});

describe('503 answers', () => {
  let server: Server;
  let base: string;
  const views = createViews();
  const unavailable = errno('ECONNREFUSED');

  /** Stands in for oidc-provider: renders every error as 500 server_error, then emits server_error. */
  const fakeProvider = new EventEmitter();
  const fakeProviderMiddleware: Koa.Middleware = (ctx) => {
    const error = ctx.path.endsWith('/bug') ? new Error('a bug') : unavailable;
    ctx.status = 500;
    if (ctx.accepts('json', 'html') === 'html') {
      ctx.type = 'html';
      ctx.body = '<p>server_error: oops! something went wrong</p>';
    } else {
      ctx.body = { error: 'server_error', error_description: 'oops! something went wrong' };
    }
    fakeProvider.emit('server_error', ctx, error);
  };

  beforeAll(async () => {
    const app = new Koa();
    app.silent = true;
    app.use(requestId);
    app.use(errorHandler(views, pino({ level: 'silent' })));
    app.use(async (ctx, next) => {
      if (ctx.path === '/api/down') throw unavailable;
      if (ctx.path === '/api/bug') throw new Error('a bug');
      await next();
    });
    app.use(answerProviderOutages(() => fakeProvider as unknown as Provider, views, pino({ level: 'silent' })));
    app.use(async (ctx, next) => {
      if (ctx.path === '/reg/filtered') throw unavailable; // a filter in front of oidc-provider
      await next();
    });
    app.use(fakeProviderMiddleware);
    server = createServer(app.callback());
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  afterAll(async () => {
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  test('our routes: the JSON envelope SERVICE_UNAVAILABLE with Retry-After', async () => {
    const response = await fetch(`${base}/api/down`, { headers: { accept: 'application/json' } });
    expect(response.status).toBe(503);
    expect(response.headers.get('retry-after')).toBe(String(RETRY_AFTER_SECONDS));
    const body = await response.json() as { error: { code: string; request_id: string } };
    expect(body.error).toMatchObject({ code: 'SERVICE_UNAVAILABLE', request_id: response.headers.get('x-request-id') });
    expect(JSON.stringify(body)).not.toMatch(/ECONN|5432/);
  });

  test('our pages: the friendly page with Retry-After, nothing technical', async () => {
    const response = await fetch(`${base}/api/down`, { headers: { accept: 'text/html' } });
    expect(response.status).toBe(503);
    expect(response.headers.get('retry-after')).toBe(String(RETRY_AFTER_SECONDS));
    expect(response.headers.get('content-type')).toMatch(/^text\/html/);
    const html = await response.text();
    expect(html).toContain('Temporarily unavailable');
    expect(html).not.toMatch(/ECONN|5432|server_error/);
  });

  test('a bug stays a 500 without Retry-After', async () => {
    const response = await fetch(`${base}/api/bug`, { headers: { accept: 'application/json' } });
    expect(response.status).toBe(500);
    expect(response.headers.get('retry-after')).toBeNull();
  });

  test('oidc-provider endpoints: RFC 6749 temporarily_unavailable instead of server_error', async () => {
    const response = await fetch(`${base}/token`, { method: 'POST' });
    expect(response.status).toBe(503);
    expect(response.headers.get('retry-after')).toBe(String(RETRY_AFTER_SECONDS));
    expect(await response.json()).toEqual({ error: 'temporarily_unavailable', error_description: expect.any(String) });
  });

  test('a protocol filter\'s own database error: RFC 6749 temporarily_unavailable too', async () => {
    const response = await fetch(`${base}/reg/filtered`, { method: 'POST' });
    expect(response.status).toBe(503);
    expect(response.headers.get('retry-after')).toBe(String(RETRY_AFTER_SECONDS));
    expect(await response.json()).toMatchObject({ error: 'temporarily_unavailable' });
  });

  test('oidc-provider pages: the friendly page instead of its error page', async () => {
    const response = await fetch(`${base}/auth`, { headers: { accept: 'text/html' } });
    expect(response.status).toBe(503);
    const html = await response.text();
    expect(html).toContain('Temporarily unavailable');
    expect(html).not.toContain('server_error');
  });

  test('oidc-provider bugs stay its 500 server_error', async () => {
    const response = await fetch(`${base}/token/bug`, { method: 'POST' });
    expect(response.status).toBe(500);
    expect(await response.json()).toMatchObject({ error: 'server_error' });
  });

  test('the listener is added once per provider', () => {
    expect(fakeProvider.listenerCount('server_error')).toBe(1);
  });
});
