import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import * as client from 'openid-client';

import { buildContainer, type Container } from '../../src/container.js';
import { createLogger } from '../../src/logger.js';
import { TEST_MASTER_KEY, testConfig, type TestApp } from '../support/app.js';
import { json, LoadLoops, now, oauthUnavailable, recorded, request, seconds, type Endpoint } from '../support/load-loops.js';
import { postgresBinDir, startPostgresCluster, type PostgresCluster } from '../support/postgres-cluster.js';
import { freePort, startServerProcess, type ServerProcess } from '../support/processes.js';
import { pushAuthorization, registerTpp, resourceServer } from '../support/tpp.js';

/**
 * SIGTERM under load (DESIGN §1: main drains on SIGTERM): the real entry point
 * (`node dist/src/main.js`) on a private PostgreSQL cluster, loaded by concurrent loops and
 * holding requests whose bodies are still arriving. After SIGTERM it accepts no new
 * connection, finishes every request in flight without a 5xx, closes its keep-alive
 * connections and exits 0. Figures are printed and, with RELIABILITY_JSON_DIR, written to
 * sigterm-drain.json.
 */
const describeWithPostgres = postgresBinDir() === undefined ? describe.skip : describe;

interface SlowReply { status: number; headers: IncomingHttpHeaders; body: string }

/** A POST whose headers and first bytes are sent now and the rest when `finish` is called. */
function slowPost(url: string, headers: Record<string, string>, body: string): { finish(): void; reply: Promise<SlowReply>; sent: Promise<void> } {
  const target = new URL(url);
  const req = httpRequest({ host: target.hostname, port: target.port, path: target.pathname, method: 'POST', agent: false, headers: { ...headers, 'content-length': String(Buffer.byteLength(body)) } });
  const reply = new Promise<SlowReply>((resolve, reject) => {
    req.on('response', (response) => {
      let text = '';
      response.on('data', (chunk: Buffer) => { text += chunk.toString(); });
      response.on('end', () => resolve({ status: response.statusCode ?? 0, headers: response.headers, body: text }));
    });
    req.on('error', reject);
  });
  const half = Math.floor(body.length / 2);
  const sent = new Promise<void>((resolve) => { req.write(body.slice(0, half), () => resolve()); });
  return { finish: () => { req.end(body.slice(half)); }, reply, sent };
}

/** What a brand-new TCP connection to `port` gets: 'open' or the error code. */
function newConnection(port: number): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => { socket.destroy(); resolve('open'); });
    socket.once('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? error.message));
  });
}

describeWithPostgres('SIGTERM under load', () => {
  let cluster: PostgresCluster;
  let container: Container;
  let server: ServerProcess | undefined;
  let dataDir: string;

  beforeAll(async () => {
    cluster = await startPostgresCluster();
    dataDir = mkdtempSync(join(tmpdir(), 'portcullis-drain-'));
  }, 60_000);

  afterAll(async () => {
    if (server !== undefined && server.child.exitCode === null && server.child.signalCode === null) server.child.kill('SIGKILL');
    await container?.close();
    await cluster?.destroy();
    rmSync(dataDir, { recursive: true, force: true });
  });

  test('in-flight requests finish without a 5xx, new connections are refused, exit code 0', async () => {
    const database = await cluster.createDatabase();
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    // The set-up (clients) goes straight to the database the server process uses.
    container = await buildContainer(testConfig(database, { ISSUER: url, PORT: String(port) }), { log: createLogger('silent') });
    const generousLimits = Object.fromEntries(['SIGNIN', 'PAR', 'TOKEN', 'REGISTRATION', 'INTROSPECTION', 'REVOCATION', 'USERINFO', 'GRANTS', 'PAGES'].map((c) => [`RATE_LIMIT_${c}`, '100000/60']));
    server = await startServerProcess({ DATABASE_URL: database.url!, MASTER_KEY: TEST_MASTER_KEY, DATA_DIR: dataDir, ...generousLimits }, port);
    const exited = new Promise<{ code: number | null; signal: string | null; at: number }>((resolve) => {
      server!.child.once('exit', (code, signal) => resolve({ code, signal, at: now() }));
    });

    const app = { url, container } as unknown as TestApp;
    const holder = await registerTpp(app, { grant_types: ['client_credentials'], response_types: [], redirect_uris: [] });
    const { access_token: liveToken } = await client.clientCredentialsGrant(holder.config, { scope: 'accounts' }, { DPoP: holder.dpop });
    const rs = (await resourceServer(app)).clientMetadata();
    const introspectionHeaders = {
      authorization: `Basic ${Buffer.from(`${rs.client_id}:${String(rs.client_secret)}`).toString('base64')}`,
      'content-type': 'application/x-www-form-urlencoded',
    };
    const tokenClients = await Promise.all([0, 1].map(async () => {
      const tpp = await registerTpp(app, { grant_types: ['client_credentials'], response_types: [], redirect_uris: [] });
      return { tpp, http: recorded(tpp.config) };
    }));
    const parClient = await registerTpp(app);
    const parHttp = recorded(parClient.config);

    const endpoints: Endpoint[] = [
      {
        name: 'introspection', databaseBacked: true, workers: 2,
        call: () => request(`${url}/token/introspection`, { method: 'POST', headers: introspectionHeaders, body: `token=${liveToken}` }),
        ok: (reply) => reply.status === 200 && json(reply)?.active === true,
        unavailable: oauthUnavailable,
      },
      {
        name: 'token', databaseBacked: true, workers: 2,
        call: (i) => tokenClients[i]!.http.call(() => client.clientCredentialsGrant(tokenClients[i]!.tpp.config, { scope: 'accounts' }, { DPoP: tokenClients[i]!.tpp.dpop })),
        ok: (reply) => reply.status === 200 && typeof json(reply)?.access_token === 'string',
        unavailable: oauthUnavailable,
      },
      {
        name: 'par', databaseBacked: true, workers: 1,
        call: () => parHttp.call(() => pushAuthorization(parClient)),
        ok: (reply) => reply.status === 201 && typeof json(reply)?.request_uri === 'string',
        unavailable: oauthUnavailable,
      },
      {
        name: 'healthz', databaseBacked: false, workers: 1,
        call: () => request(`${url}/healthz`),
        ok: (reply) => reply.status === 200,
        unavailable: () => false,
      },
    ];
    const loops = new LoadLoops(endpoints, 2);
    try {
      loops.start();
      const warm = now();
      await loops.waitFor('every loop succeeds', () => endpoints.every((e) => loops.first(e.name, 'ok', warm) !== undefined), 10_000);
      await new Promise((resolve) => setTimeout(resolve, 500));

      // Requests the server is certainly in the middle of: headers and half a body received.
      const slow = Array.from({ length: 6 }, () => slowPost(`${url}/token/introspection`, introspectionHeaders, `token=${liveToken}`));
      await Promise.all(slow.map((s) => s.sent));
      await new Promise((resolve) => setTimeout(resolve, 200));

      const sigterm = now();
      server.child.kill('SIGTERM');
      await new Promise((resolve) => setTimeout(resolve, 300));
      // Draining: still running (it waits for the slow requests), refusing new connections.
      expect(server.child.exitCode).toBeNull();
      expect(await newConnection(port)).toBe('ECONNREFUSED');

      for (const s of slow) s.finish();
      const slowReplies = await Promise.all(slow.map((s) => s.reply));
      const exit = await exited;
      await loops.stop();

      const before = loops.samples.filter((s) => s.end <= sigterm);
      const inFlight = loops.samples.filter((s) => s.start < sigterm && s.end > sigterm);
      const figure = {
        requests_total: loops.samples.length + slow.length,
        requests_before_sigterm: before.length,
        loop_requests_in_flight_at_sigterm: inFlight.length,
        slow_requests_in_flight_at_sigterm: slow.length,
        answered_after_sigterm: loops.samples.filter((s) => s.start >= sigterm && s.status > 0).length,
        refused_after_sigterm: loops.samples.filter((s) => s.status === 0).length,
        responses_5xx: loops.samples.filter((s) => s.status >= 500).length + slowReplies.filter((r) => r.status >= 500).length,
        drain_s: seconds(exit.at - sigterm),
        exit_code: exit.code,
      };
      console.log(`SIGTERM under load: ${JSON.stringify(figure, null, 2)}`);
      const dir = process.env.RELIABILITY_JSON_DIR;
      if (dir) {
        mkdirSync(dir, { recursive: true });
        writeFileSync(join(dir, 'sigterm-drain.json'), `${JSON.stringify(figure, null, 2)}\n`);
      }

      // Every request in flight at SIGTERM completed, correctly, and told the client to go.
      for (const reply of slowReplies) {
        expect(reply.status).toBe(200);
        expect(JSON.parse(reply.body)).toMatchObject({ active: true });
        expect(reply.headers.connection).toBe('close');
      }
      expect(loops.samples.filter((s) => s.status >= 500)).toEqual([]);
      // Requests sent well before the signal were all answered, and answered right; the only
      // failures are connections the stopped server no longer accepts (or idle ones it closed).
      expect(loops.samples.filter((s) => s.start < sigterm - 20 && s.verdict !== 'ok')).toEqual([]);
      expect(loops.samples.filter((s) => s.status === 0 && s.start < sigterm - 20)).toEqual([]);
      expect(exit).toMatchObject({ code: 0, signal: null });
      expect(figure.drain_s).toBeLessThan(5);
      expect(server.output()).not.toMatch(/"level":(50|60)/);
    } finally {
      await loops.stop();
    }
  }, 120_000);
});
