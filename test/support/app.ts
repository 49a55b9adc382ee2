import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';

import { createApp } from '../../src/app.js';
import { loadConfig, type Config } from '../../src/config.js';
import { buildContainer, type Container } from '../../src/container.js';
import { createPublicServer } from '../../src/http/server.js';
import { createLogger } from '../../src/logger.js';
import type { Logger } from 'pino';
import type { TestDatabase } from './database.js';

/** Test-only argon2 cost: the minimum our config accepts (19 MiB, t=2). */
export const TEST_MASTER_KEY = Buffer.alloc(32, 7).toString('base64');

export interface TestApp {
  readonly url: string;
  readonly container: Container;
  readonly server: Server;
  close(): Promise<void>;
}

export function testConfig(database: TestDatabase, overrides: Record<string, string> = {}): Config {
  return loadConfig({
    ...(database.url === undefined ? {} : { DATABASE_URL: database.url }),
    DATA_DIR: '/nonexistent-portcullis-test-dir',
    MASTER_KEY: TEST_MASTER_KEY,
    LOG_LEVEL: 'silent',
    // Every e2e request comes from 127.0.0.1: budgets generous enough for a test file
    // (rate-limit tests set their own).
    ...Object.fromEntries(['SIGNIN', 'PAR', 'TOKEN', 'REGISTRATION', 'INTROSPECTION', 'REVOCATION', 'USERINFO', 'GRANTS', 'PAGES'].map((c) => [`RATE_LIMIT_${c}`, '100000/60'])),
    ...overrides,
  });
}

/**
 * Starts the real app on 127.0.0.1 with an ephemeral port; the issuer is its URL
 * (https:// when the overrides set TLS_CERT_FILE / TLS_KEY_FILE).
 */
export async function startTestApp(database: TestDatabase, overrides: Record<string, string> = {}, now?: () => Date, log: Logger = createLogger('silent')): Promise<TestApp> {
  const server = createPublicServer(testConfig(database, overrides));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const url = `${overrides.TLS_CERT_FILE === undefined ? 'http' : 'https'}://127.0.0.1:${port}`;
  const config = testConfig(database, { ISSUER: url, PORT: String(port), ...overrides });
  const container = await buildContainer(config, {
    log,
    ...(now === undefined ? {} : { now }),
    ...(database.kind === 'pglite' ? { pglite: await database.pglite() } : {}),
  });
  server.on('request', createApp(container).callback());
  return {
    url,
    container,
    server,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await container.close();
    },
  };
}
