import type Router from '@koa/router';
import type { Context } from 'koa';

import { HttpError } from '../http/errors.js';
import { formField, formList, parseForm } from '../http/form.js';
import { SCOPE_DESCRIPTIONS } from '../oidc/configuration.js';
import type { CustomerService } from '../services/customers.js';
import type { Details, InteractionKit } from './kit.js';

export interface ConsentDeps {
  readonly kit: InteractionKit;
  readonly customers: CustomerService;
}

function maskIban(iban: string): string {
  return `•••• ${iban.slice(-4)}`;
}

/**
 * The consent prompt:
 *   GET  /interaction/:uid          what the client asks for, in words; the customer's accounts
 *   POST …/consent                  allow (with the chosen accounts, all the customer's own) | deny
 */
export function registerConsent(router: Router, deps: ConsentDeps): void {
  const { kit, customers } = deps;

  async function renderConsent(ctx: Context, interaction: Details): Promise<void> {
    const accountId = interaction.session?.accountId;
    if (accountId === undefined) throw new HttpError(400, 'INTERACTION_STEP_MISMATCH', 'Sign in first.');
    const scopes = String(interaction.params.scope ?? '').split(' ').filter(Boolean);
    const accounts = scopes.includes('accounts') ? await customers.bankAccounts(accountId) : [];
    kit.render(ctx, 'consent', {
      title: 'Review this request',
      uid: interaction.uid,
      clientName: await kit.clientName(interaction),
      csrf: kit.csrf.token(ctx, kit.formId(interaction, 'consent')),
      permissions: scopes.map((s) => SCOPE_DESCRIPTIONS[s]).filter((d): d is string => d !== undefined),
      accounts: accounts.map((a) => ({ id: a.id, name: a.name, maskedIban: maskIban(a.iban) })),
    });
  }

  router.get('/:uid', async (ctx, next) => {
    const interaction = await kit.details(ctx);
    if (interaction.prompt.name !== 'consent') return next();
    return renderConsent(ctx, interaction);
  });

  router.post('/:uid/consent', parseForm, async (ctx) => {
    const interaction = await kit.step(ctx, 'consent', 'consent', formField(ctx, 'csrf', 100));
    const decision = formField(ctx, 'decision', 10);
    if (decision === 'deny') {
      return kit.finish(ctx, { error: 'access_denied', error_description: 'the customer denied the request' });
    }
    if (decision !== 'allow') throw new HttpError(400, 'INVALID_DECISION', 'Choose Allow or Deny.');

    const accountId = interaction.session?.accountId;
    const clientId = String(interaction.params.client_id);
    if (accountId === undefined) throw new HttpError(400, 'INTERACTION_STEP_MISMATCH', 'Sign in first.');

    const chosen = formList(ctx, 'accounts', 64, 100);
    if (chosen.length > 0) {
      const own = new Set((await customers.bankAccounts(accountId)).map((a) => a.id));
      if (chosen.some((id) => !own.has(id))) throw new HttpError(400, 'UNKNOWN_ACCOUNT', 'One of the chosen accounts is not yours.');
    }

    const { provider } = kit;
    const grant = interaction.grantId === undefined
      ? new provider.Grant({ accountId, clientId })
      : await provider.Grant.find(interaction.grantId);
    if (grant === undefined) throw new HttpError(400, 'INTERACTION_EXPIRED', 'This request has expired. Go back to the app and start again.');

    const missing = interaction.prompt.details as { missingOIDCScope?: string[]; missingOIDCClaims?: string[]; missingResourceScopes?: Record<string, string[]> };
    if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
    if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
    for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes ?? {})) {
      grant.addResourceScope(indicator, scopes.join(' '));
    }
    const grantId = await grant.save();
    await kit.finish(ctx, { consent: { grantId } });
  });
}
