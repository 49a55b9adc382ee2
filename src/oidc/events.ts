import type Provider from 'oidc-provider';
import type { Logger } from 'pino';

import type { AuditEvent, AuditLog } from '../services/audit.js';

type ProviderEventContext = { ip?: string; state?: { requestId?: unknown } } | undefined;

/**
 * oidc-provider's events → the audit trail: tokens issued (token endpoint) and revoked
 * (revocation endpoint). Events fire after oidc-provider's own writes, so these records
 * follow (not share) the change's transaction; a failure to record is logged. Client
 * registration and its management are audited with the client row itself (clients.ts).
 */
export function auditProviderEvents(provider: Provider, audit: AuditLog, log: Logger): void {
  const record = (ctx: ProviderEventContext, event: AuditEvent) => {
    audit.record({ ip: ctx?.ip, requestId: typeof ctx?.state?.requestId === 'string' ? ctx.state.requestId : undefined, ...event })
      .catch((error: unknown) => log.error({ err: error, type: event.type }, 'audit write failed'));
  };
  const clientIdOf = (client: unknown) => (client as { clientId?: string } | undefined)?.clientId;


  provider.on('grant.success', (ctx) => {
    const oidc = (ctx as unknown as { oidc?: { client?: unknown; params?: { grant_type?: unknown }; entities?: Record<string, { accountId?: string; grantId?: string } | undefined> } }).oidc;
    const token = oidc?.entities?.AccessToken ?? oidc?.entities?.ClientCredentials;
    record(ctx as unknown as ProviderEventContext, {
      type: 'token.issued', actor: 'client', clientId: clientIdOf(oidc?.client), userId: token?.accountId,
      data: { grant_type: String(oidc?.params?.grant_type ?? ''), grant_id: token?.grantId ?? null, refresh_token: oidc?.entities?.RefreshToken !== undefined },
    });
  });
  const revoked = (kind: string) => (token: { clientId?: string; accountId?: string; grantId?: string }) => record(undefined, {
    type: 'token.revoked', clientId: token.clientId, userId: token.accountId, data: { kind, grant_id: token.grantId ?? null },
  });
  provider.on('access_token.destroyed', revoked('access_token'));
  provider.on('refresh_token.destroyed', revoked('refresh_token'));
  provider.on('client_credentials.destroyed', revoked('client_credentials'));
}
