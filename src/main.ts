import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';

import { createAdminApp } from './admin/app.js';
import { createApp } from './app.js';
import { ConfigError, loadConfig, type Config } from './config.js';
import { buildContainer } from './container.js';
import { acquireDataDirLock } from './db/data-dir-lock.js';
import { createPublicServer } from './http/server.js';

function listen(server: Server, port: number, host: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => { server.off('error', reject); resolve(); });
  });
}

/** How long a stop waits for requests in flight before closing their connections. */
const DRAIN_GRACE_MS = 10_000;

/**
 * Graceful stop for one server: refuse new connections, let every request in flight finish,
 * and close each connection as soon as it is idle. Node's close() alone keeps serving a
 * client that reuses a keep-alive connection until it pauses for keepAliveTimeout, so
 * answers during the drain say `Connection: close`. After `graceMs` whatever is left is cut.
 */
function drainable(server: Server): (graceMs: number) => Promise<void> {
  const open = new Set<ServerResponse>();
  let draining = false;
  server.prependListener('request', (_request: IncomingMessage, response: ServerResponse) => {
    if (draining) response.setHeader('Connection', 'close');
    open.add(response);
    response.once('close', () => {
      open.delete(response);
      if (draining) setImmediate(() => server.closeIdleConnections());
    });
  });
  return (graceMs) => new Promise((resolve) => {
    draining = true;
    for (const response of open) if (!response.headersSent) response.setHeader('Connection', 'close');
    server.close(() => resolve());
    server.closeIdleConnections();
    setTimeout(() => server.closeAllConnections(), graceMs).unref();
  });
}

async function main(): Promise<void> {
  let config: Config;
  try {
    config = loadConfig(process.env);
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`portcullis: configuration error: ${error.message}\n`);
      process.exit(2);
    }
    throw error;
  }

  const releaseLock = config.databaseUrl === undefined ? acquireDataDirLock(config.dataDir) : () => undefined;
  const container = await buildContainer(config, { processMetrics: true });
  const { log } = container;
  const app = createApp(container);
  const server = createPublicServer(config);
  server.on('request', app.callback());
  const drainPublic = drainable(server);
  await listen(server, config.port, config.host);
  const adminServer = createServer(createAdminApp(container).callback());
  const drainAdmin = drainable(adminServer);
  await listen(adminServer, config.adminPort, config.adminHost);
  container.sweeper.start(config.sweepIntervalSeconds);
  container.keyRefresher.start(config.keys.refreshSeconds);
  log.info({ issuer: config.issuer, port: config.port, host: config.host, adminPort: config.adminPort, adminHost: config.adminHost, database: container.database.kind }, 'portcullis listening');
  if (container.database.kind === 'pglite') {
    log.warn({ dataDir: config.dataDir }, 'using the embedded database: for evaluation only (set DATABASE_URL for PostgreSQL)');
  }

  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'draining');
    // Stop accepting, let in-flight requests finish, then close the database.
    void Promise.all([drainPublic(DRAIN_GRACE_MS), drainAdmin(DRAIN_GRACE_MS)])
      .then(() => container.close())
      .catch((error: unknown) => log.error({ err: error }, 'closing the database failed'))
      .finally(() => {
        log.info({ signal }, 'stopped');
        releaseLock();
        process.exit(0);
      });
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
}

main().catch((error: unknown) => {
  process.stderr.write(`portcullis: failed to start: ${error instanceof Error ? error.message : 'unknown error'}\n`);
  process.exit(1);
});
