import { createServer, type Server } from 'node:http';

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
  await listen(server, config.port, config.host);
  const adminServer = createServer(createAdminApp(container).callback());
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
    adminServer.close();
    server.close(() => {
      void container.close().finally(() => { releaseLock(); process.exit(0); });
    });
    server.closeIdleConnections();
    setTimeout(() => { server.closeAllConnections(); }, 10_000).unref();
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
}

main().catch((error: unknown) => {
  process.stderr.write(`portcullis: failed to start: ${error instanceof Error ? error.message : 'unknown error'}\n`);
  process.exit(1);
});
