import { PGlite } from '@electric-sql/pglite';
import Provider from 'oidc-provider';
import type { Logger } from 'pino';

import type { Config } from './config.js';
import { openDatabase, type Database } from './db/database.js';
import { migrateToLatest } from './db/migrate.js';
import type { ChangeFeed } from './db/notifications.js';
import { revokeGrantCompletely } from './db/repositories/oidc-models.js';
import { Csrf } from './http/csrf.js';
import { createMetrics, type Metrics } from './http/metrics.js';
import { createRateLimiter, type RateLimiter } from './http/rate-limit.js';
import { createViews, type Views } from './http/views.js';
import { createLogger } from './logger.js';
import { buildProviderConfiguration } from './oidc/configuration.js';
import { createCertificateSource, type CertificateSource } from './oidc/mtls.js';
import { KeyRefresher, ProviderHolder } from './oidc/provider-holder.js';
import { RequestScope } from './oidc/request-scope.js';
import { ApiKeyService } from './services/api-keys.js';
import { AuditLog } from './services/audit.js';
import { AuthenticationService } from './services/authentication.js';
import { AuthorizationDetailsValidator } from './services/authorization-details.js';
import { ConsentService } from './services/consents.js';
import { DashboardSessions } from './services/dashboard-sessions.js';
import { PaymentScaService } from './services/payment-sca.js';
import { SoftwareStatementVerifier } from './services/software-statements.js';
import { auditProviderEvents } from './oidc/events.js';
import { ClientService } from './services/clients.js';
import { CustomerService } from './services/customers.js';
import { KeyService } from './services/keys.js';
import { PasswordHasher } from './services/passwords.js';
import { loadOrCreateDevMasterKey, SecretBox } from './services/secret-box.js';
import { ServerSecrets } from './services/server-secrets.js';
import { ClientMetadataCache } from './services/client-metadata-cache.js';
import { TotpService } from './services/totp.js';
import { Sweeper } from './services/sweeper.js';

/**
 * Composition root: the one place that builds the database, services and provider.
 * No module-level singletons: every call builds an independent instance.
 */
export interface Container {
  readonly config: Config;
  readonly log: Logger;
  readonly database: Database;
  readonly customers: CustomerService;
  readonly audit: AuditLog;
  readonly totp: TotpService;
  readonly authentication: AuthenticationService;
  readonly paymentSca: PaymentScaService;
  readonly consents: ConsentService;
  readonly certificates: CertificateSource;
  readonly dashboardSessions: DashboardSessions;
  readonly apiKeys: ApiKeyService;
  readonly rateLimiter: RateLimiter | undefined;
  readonly metrics: Metrics;
  readonly softwareStatements: SoftwareStatementVerifier | undefined;
  readonly box: SecretBox;
  readonly clients: ClientService;
  /** client metadata held in memory while the LISTEN feed is live (client-metadata-cache.ts) */
  readonly clientCache: ClientMetadataCache;
  readonly keys: KeyService;
  readonly sweeper: Sweeper;
  readonly providers: ProviderHolder;
  /** rows read ahead within a request (the adapter's token + grant read) */
  readonly requestScope: RequestScope;
  readonly keyRefresher: KeyRefresher;
  readonly views: Views;
  readonly csrf: Csrf;
  readonly cookieKeys: string[];
  readonly now: () => Date;
  close(): Promise<void>;
}

export interface ContainerOptions {
  readonly log?: Logger;
  readonly now?: () => Date;
  /** an open PGlite to use instead of DATA_DIR (tests) */
  readonly pglite?: PGlite;
  /** also collect process_* / nodejs_* metrics (the real server; not tests, which build many containers) */
  readonly processMetrics?: boolean;
}

export function resolveMasterKey(config: Config): SecretBox {
  return new SecretBox(config.masterKey ?? loadOrCreateDevMasterKey(config.dataDir));
}

/** Opens the database and brings its schema up to date. */
export async function openMigratedDatabase(config: Config, pglite?: PGlite): Promise<Database> {
  const database = await openDatabase({ databaseUrl: config.databaseUrl, dataDir: config.dataDir, poolMax: config.databasePoolMax, pglite });
  try {
    await migrateToLatest(database.db);
  } catch (error) {
    await database.close();
    throw error;
  }
  return database;
}

export async function buildContainer(config: Config, options: ContainerOptions = {}): Promise<Container> {
  const log = options.log ?? createLogger(config.logLevel);
  const now = options.now ?? (() => new Date());
  const box = resolveMasterKey(config);
  const database = await openMigratedDatabase(config, options.pglite);
  let clientChanges: ChangeFeed | undefined;
  try {
    const { db } = database;
    // One registry per container (tests build many); process metrics only for the real server.
    const metrics = createMetrics({ poolStats: () => database.poolStats(), defaultMetrics: options.processMetrics ?? false });
    const secrets = new ServerSecrets(db, box);
    const keys = new KeyService(db, box, config.keys);
    await keys.ensureSigningKeys();
    const cookieKeys = [await secrets.get('cookie_key')];
    const dpopNonceSecret = Buffer.from(await secrets.get('dpop_nonce'), 'base64url');
    const csrf = new Csrf(await secrets.get('csrf_key'));

    const passwords = new PasswordHasher(config.argon2);
    const customers = new CustomerService(db, passwords);
    const audit = new AuditLog(db, now);
    const totp = new TotpService({ db, box, recoveryKey: await secrets.get('recovery_code_key'), audit, now });
    const authentication = new AuthenticationService({ db, passwords, totp, audit, rules: config.sca, now, metrics });
    const details = new AuthorizationDetailsValidator(config.payments);
    const paymentSca = new PaymentScaService(db, audit, now);
    const consents = new ConsentService(db, audit, now, metrics);
    const dashboardSessions = new DashboardSessions(db, config.sca.sessionIdleSeconds, now);
    const apiKeys = new ApiKeyService(db, audit, now);
    const softwareStatements = config.ssa === undefined ? undefined : new SoftwareStatementVerifier({ ...config.ssa, allowHttpJwksUri: config.fetchAllowPrivateNetworks }, database.prepared, now);
    const views = createViews();
    const certificates = createCertificateSource(config);
    // The provider validates client metadata; the client store is needed to build it.
    let providers: ProviderHolder | undefined;
    const requestScope = new RequestScope();
    // Client metadata is cached while the change feed is live; every committed change to a
    // client evicts it on every instance (migration 0006, client-metadata-cache.ts).
    const clientCache = new ClientMetadataCache({ live: () => clientChanges?.live === true });
    clientChanges = await database.listen('portcullis_client_changes', {
      onChange: (clientId) => clientCache.evict(clientId),
      onGap: () => clientCache.clear(),
    });
    const clients = new ClientService(db, box, async (metadata) => {
      if (providers === undefined) throw new Error('provider not ready');
      await providers.current.Client.validate(metadata as never);
    }, { allowLoopbackRedirects: config.allowLoopbackRedirects, audit, cache: clientCache, requestContext: () => requestScope.context() });
    const buildProvider = async (): Promise<Provider> => {
      const provider = new Provider(config.issuer, buildProviderConfiguration({
        config, db, prepared: database.prepared, scope: requestScope, box, clients, customers, views, now,
        // RFC 6749 §4.1.2: a code used twice revokes what was issued with it, consent included.
        revokeReplayedGrant: async (grantId) => {
          const revoked = await consents.transition(grantId, 'revoked', {}, { actor: 'system' }, 'authorization code replayed');
          if (revoked === undefined) await revokeGrantCompletely(db, grantId);
        },
        jwks: (await keys.providerJwks()) as never,
        cookieKeys,
        dpopNonceSecret,
        certificates,
        details,
        paymentSca,
      }));
      provider.proxy = false;
      auditProviderEvents(provider, audit, log);
      provider.on('grant.success', (ctx) => metrics.counters.tokensIssued.inc({ grant_type: String(ctx.oidc.params?.grant_type ?? 'unknown') }));
      // A client revoking its refresh token revokes the grant: the consent follows.
      provider.on('grant.revoked', (ctx, grantId: string) => {
        consents.transition(grantId, 'revoked', {}, { actor: 'client', clientId: (ctx as { oidc?: { client?: { clientId?: string } } }).oidc?.client?.clientId })
          .catch((error: unknown) => log.error({ err: error }, 'consent revocation after grant.revoked failed'));
      });
      return provider;
    };
    providers = new ProviderHolder(await buildProvider());
    const keyRefresher = new KeyRefresher({ keys, holder: providers, build: buildProvider, log, now });
    await keyRefresher.prime();
    const sweeper = new Sweeper(db, log, now, () => consents.expireDue());
    const rateLimiter = config.rateLimits === undefined ? undefined : createRateLimiter({
      limits: config.rateLimits, redisUrl: config.redisUrl, log: log.child({ component: 'rate-limit' }), views,
      observe: (rateLimitClass, outcome) => { if (outcome === 'limited') metrics.counters.rateLimited.inc({ class: rateLimitClass }); },
    });

    return {
      config, log, database, customers, audit, totp, authentication, paymentSca, consents, certificates, dashboardSessions, apiKeys, rateLimiter, metrics, softwareStatements, box, clients, keys, sweeper, providers, requestScope, clientCache, keyRefresher, views, csrf, cookieKeys, now,
      async close() {
        sweeper.stop();
        keyRefresher.stop();
        await audit.flush();
        await clientChanges?.close();
        await rateLimiter?.close();
        await database.close();
      },
    };
  } catch (error) {
    await clientChanges?.close();
    await database.close();
    throw error;
  }
}
