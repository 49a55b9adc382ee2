import { mkdirSync } from 'node:fs';
import { createServer, type Server } from 'node:http';

import { createAdminApp } from '../src/admin/app.js';
import { createApp } from '../src/app.js';
import { loadConfig } from '../src/config.js';
import { buildContainer, type Container } from '../src/container.js';
import { acquireDataDirLock } from '../src/db/data-dir-lock.js';
import { createPublicServer } from '../src/http/server.js';
import { createLogger } from '../src/logger.js';
import { createBankApi } from './bank-api.js';
import { createDirectory } from './directory.js';
import { seedDemo, type SeededDemo } from './seed.js';
import { demoSettings, HOST, portcullisEnv, type DemoSettings } from './settings.js';
import { createTpp, type Registration } from './tpp.js';

/**
 * The whole demo ecosystem in one process: Portcullis (public and admin listeners) on the
 * embedded database, the software-statement directory, the bank's API behind the
 * resource-server kit, and a TPP web app that registers itself by DCR.
 */
export interface Demo {
  readonly settings: DemoSettings;
  readonly container: Container;
  readonly seed: SeededDemo;
  readonly registration: Registration;
  /** closes every listener, then the database; idempotent */
  close(): Promise<void>;
}

/** A start-up failure with a plain explanation (no stack trace needed). */
export class DemoStartError extends Error {
  override readonly name = 'DemoStartError';
}

function listen(server: Server, port: number, name: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const failed = (error: NodeJS.ErrnoException) => {
      reject(new DemoStartError(error.code === 'EADDRINUSE'
        ? `${name}: port ${port} is in use (set DEMO_PORT_BASE to move all demo ports)`
        : `${name}: cannot listen on ${HOST}:${port}: ${error.message}`));
    };
    server.once('error', failed);
    server.listen(port, HOST, () => { server.off('error', failed); resolve(); });
  });
}

function stop(server: Server): Promise<void> {
  return new Promise((resolve) => {
    if (!server.listening) return resolve();
    server.close(() => resolve());
    server.closeIdleConnections();
    setTimeout(() => server.closeAllConnections(), 2_000).unref();
  });
}

export async function startDemo(env: Readonly<Record<string, string | undefined>>): Promise<Demo> {
  const settings = demoSettings(env);
  mkdirSync(settings.dataDir, { recursive: true, mode: 0o700 });
  const config = loadConfig(portcullisEnv(settings));
  const log = createLogger(config.logLevel);
  const releaseLock = acquireDataDirLock(config.dataDir);
  const servers: Server[] = [];
  let container: Container | undefined;
  let closing: Promise<void> | undefined;

  const close = (): Promise<void> => {
    closing ??= (async () => {
      await Promise.all(servers.map(stop));
      if (container !== undefined) await container.close();
      releaseLock();
    })();
    return closing;
  };

  try {
    // 1. The directory first: Portcullis fetches its JWKS when a TPP registers.
    const directory = await createDirectory(settings.dataDir);
    const directoryServer = createServer(directory.app.callback());
    servers.push(directoryServer);
    await listen(directoryServer, settings.ports.directory, 'demo directory');

    // 2. Portcullis, as src/main.ts starts it.
    container = await buildContainer(config, { log });
    const publicServer = createPublicServer(config);
    publicServer.on('request', createApp(container).callback());
    servers.push(publicServer);
    await listen(publicServer, config.port, 'Portcullis');
    const adminServer = createServer(createAdminApp(container).callback());
    servers.push(adminServer);
    await listen(adminServer, config.adminPort, 'Portcullis admin API');
    container.sweeper.start(config.sweepIntervalSeconds);
    container.keyRefresher.start(config.keys.refreshSeconds);

    // 3. The demo customer, accounts, TOTP, the bank API's credentials.
    const seed = await seedDemo(container, settings.dataDir);
    const { customers } = container;

    // 4. The bank's API.
    const bank = createBankApi({
      issuer: config.issuer,
      adminUrl: settings.urls.admin,
      apiKey: seed.apiKey.key,
      resourceServer: seed.resourceServer,
      audience: config.apiResource,
      publicOrigin: settings.urls.bank,
      accountsOf: (userId) => customers.bankAccounts(userId),
      log,
    });
    const bankServer = createServer(bank.callback());
    servers.push(bankServer);
    await listen(bankServer, settings.ports.bank, 'demo bank API');

    // 5. The TPP: listening first (Portcullis fetches its /jwks), then registered.
    const tpp = await createTpp({
      issuer: config.issuer,
      publicUrl: settings.urls.tpp,
      jwksUri: `http://${HOST}:${settings.ports.tpp}/jwks`,
      bankUrl: settings.urls.bank,
      directory,
      log,
    });
    const tppServer = createServer(tpp.app.callback());
    servers.push(tppServer);
    await listen(tppServer, settings.ports.tpp, 'demo TPP');
    const registration = await tpp.register();

    return { settings, container, seed, registration, close };
  } catch (error) {
    await close().catch(() => undefined);
    throw error;
  }
}
