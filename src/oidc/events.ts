import type Provider from 'oidc-provider';
import type { Logger } from 'pino';

import type { AuditEvent, AuditLog } from '../services/audit.js';

type ProviderEventContext = { ip?: string; state?: { requestId?: unknown } } | undefined;

/**
 * oidc-provider's events → the audit trail: client registration and its management.
 * Events fire after oidc-provider's own writes, so these
 * records follow (not share) the change's transaction; a failure to record is logged.
 */
export function auditProviderEvents(provider: Provider, audit: AuditLog, log: Logger): void {
  const record = (ctx: ProviderEventContext, event: AuditEvent) => {
    audit.record({ ip: ctx?.ip, requestId: typeof ctx?.state?.requestId === 'string' ? ctx.state.requestId : undefined, ...event })
      .catch((error: unknown) => log.error({ err: error, type: event.type }, 'audit write failed'));
  };
  const clientIdOf = (client: unknown) => (client as { clientId?: string } | undefined)?.clientId;

  provider.on('registration_create.success', (ctx, client) => record(ctx as ProviderEventContext, { type: 'client.registered', actor: 'dcr', clientId: clientIdOf(client), data: { software_id: (client as { software_id?: string }).software_id } }));
  provider.on('registration_update.success', (ctx, client) => record(ctx as ProviderEventContext, { type: 'client.updated', actor: 'dcr', clientId: clientIdOf(client) }));
  provider.on('registration_delete.success', (ctx, client) => record(ctx as ProviderEventContext, { type: 'client.deleted', actor: 'dcr', clientId: clientIdOf(client) }));
}
