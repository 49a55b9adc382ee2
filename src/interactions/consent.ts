import type Router from '@koa/router';
import type { Context } from 'koa';

import { HttpError } from '../http/errors.js';
import { formField, formList, parseForm } from '../http/form.js';
import { SCOPE_DESCRIPTIONS } from '../oidc/configuration.js';
import {
  ACCOUNT_INFORMATION, consentLifetimeSeconds, formatAmount, parseDetails, PAYMENT_INITIATION,
  type AccountInformationDetail, type AuthorizationDetail, type PaymentInitiationDetail,
} from '../services/authorization-details.js';
import type { BankAccount, CustomerService } from '../services/customers.js';
import type { ConsentService } from '../services/consents.js';
import { failpoint } from '../failpoints.js';
import type { PaymentScaService } from '../services/payment-sca.js';
import type { Details, InteractionKit } from './kit.js';

export interface ConsentDeps {
  readonly kit: InteractionKit;
  readonly customers: CustomerService;
  readonly paymentSca: PaymentScaService;
  readonly consents: ConsentService;
  /** REFRESH_TOKEN_TTL: the longest a consent lives */
  readonly consentMaxSeconds: number;
  readonly now: () => Date;
}

const ACTION_WORDS: Readonly<Record<string, string>> = {
  list_accounts: 'see which accounts you chose',
  read_balances: 'see their balances',
  read_transactions: 'see their transactions',
};

function describeAccountAccess(detail: AccountInformationDetail): string {
  const actions = detail.actions.map((a) => ACTION_WORDS[a] ?? a).join(', ');
  const until = detail.expires_at === undefined ? '' : ` until ${new Date(detail.expires_at).toUTCString().slice(5, 16)}`;
  return `Read your accounts: ${actions}${until}`;
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
  const { kit, customers, paymentSca, consents } = deps;

  /** What the request asks for, read from the (pushed, validated) request parameters. */
  function requested(interaction: Details) {
    const scopes = String(interaction.params.scope ?? '').split(' ').filter(Boolean);
    const details = parseDetails(interaction.params.authorization_details);
    const accountAccess = details.find((d): d is AccountInformationDetail => d.type === ACCOUNT_INFORMATION);
    const payment = details.find((d): d is PaymentInitiationDetail => d.type === PAYMENT_INITIATION);
    return { scopes, details, accountAccess, payment, choosesAccounts: accountAccess !== undefined || (scopes.includes('accounts') && details.length === 0) };
  }

  async function renderConsent(ctx: Context, interaction: Details): Promise<void> {
    const accountId = interaction.session?.accountId;
    if (accountId === undefined) throw new HttpError(400, 'INTERACTION_STEP_MISMATCH', 'Sign in first.');
    const { scopes, accountAccess, payment, choosesAccounts } = requested(interaction);
    const own = await customers.bankAccounts(accountId);
    const view = (a: BankAccount) => ({ id: a.id, name: a.name, maskedIban: maskIban(a.iban), currency: a.currency });
    const permissions = scopes
      .filter((s) => !(accountAccess !== undefined && s === 'accounts') && !(payment !== undefined && s === 'payments'))
      .map((s) => SCOPE_DESCRIPTIONS[s]).filter((d): d is string => d !== undefined);
    if (accountAccess !== undefined) permissions.unshift(describeAccountAccess(accountAccess));
    kit.render(ctx, 'consent', {
      title: 'Review this request',
      uid: interaction.uid,
      clientName: await kit.clientName(interaction),
      csrf: kit.csrf.token(ctx, kit.formId(interaction, 'consent')),
      permissions,
      accounts: choosesAccounts ? own.map(view) : [],
      payment: payment === undefined ? undefined : {
        amount: formatAmount(payment.instructedAmount.amount, payment.instructedAmount.currency),
        payee: payment.creditorName,
        iban: payment.creditorAccount.iban,
        reference: payment.remittanceInformationUnstructured,
        // Pay from an account in the payment's currency (listed first) or any other of the customer's.
        debtorAccounts: [...own].sort((a, b) => Number(b.currency === payment.instructedAmount.currency) - Number(a.currency === payment.instructedAmount.currency)).map(view),
      },
    });
  }

  /** The requested details as approved: with the chosen accounts, or the debtor account. */
  function approve(details: AuthorizationDetail[], chosen: string[], debtor: BankAccount | undefined): AuthorizationDetail[] {
    return details.map((detail) => (detail.type === ACCOUNT_INFORMATION
      ? { ...detail, accounts: chosen }
      : { ...detail, debtorAccount: { iban: debtor!.iban, id: debtor!.id } }));
  }

  router.get('/:uid', async (ctx, next) => {
    const interaction = await kit.details(ctx);
    if (interaction.prompt.name !== 'consent') return next();
    return renderConsent(ctx, interaction);
  });

  router.post('/:uid/consent', parseForm, async (ctx) => {
    const interaction = await kit.step(ctx, 'consent', 'consent', formField(ctx, 'csrf', 100));
    const { scopes, details, accountAccess, payment } = requested(interaction);
    const decision = formField(ctx, 'decision', 10);
    if (decision === 'deny') {
      const deniedBy = interaction.session?.accountId;
      if (deniedBy !== undefined) {
        await consents.recordRejected({ clientId: String(interaction.params.client_id), userId: deniedBy, scopes: scopes.join(' '), details }, { ...kit.auditContext(ctx, interaction), userId: deniedBy });
      }
      return kit.finish(ctx, { error: 'access_denied', error_description: 'the customer denied the request' });
    }
    if (decision !== 'allow') throw new HttpError(400, 'INVALID_DECISION', 'Choose Allow or Deny.');

    const accountId = interaction.session?.accountId;
    const clientId = String(interaction.params.client_id);
    if (accountId === undefined) throw new HttpError(400, 'INTERACTION_STEP_MISMATCH', 'Sign in first.');

    const own = await customers.bankAccounts(accountId);
    const ownIds = new Set(own.map((a) => a.id));
    const chosen = formList(ctx, 'accounts', 64, 100);
    if (chosen.some((id) => !ownIds.has(id))) throw new HttpError(400, 'UNKNOWN_ACCOUNT', 'One of the chosen accounts is not yours.');
    if (accountAccess !== undefined && chosen.length === 0) throw new HttpError(400, 'NO_ACCOUNT_CHOSEN', 'Choose at least one account to share.');
    const debtorId = payment === undefined ? undefined : formField(ctx, 'debtor_account', 64);
    const debtor = debtorId === undefined ? undefined : own.find((a) => a.id === debtorId);
    if (payment !== undefined && debtor === undefined) throw new HttpError(400, 'UNKNOWN_ACCOUNT', 'Choose one of your accounts to pay from.');

    // Dynamic linking: only an SCA of this request, for exactly these amounts and payees.
    const flowId = (interaction as unknown as { cid?: string }).cid ?? '';
    if (payment !== undefined && !(await paymentSca.isLinked(flowId, accountId, details))) {
      throw new HttpError(400, 'PAYMENT_SCA_MISSING', 'This payment was not confirmed with a one-time code for these details. Go back to the app and start again.');
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
    const approved = approve(details, chosen, debtor);
    for (const detail of approved) grant.addRar(detail as never);
    const grantId = await grant.save();
    failpoint('consent.grant-saved');
    if (payment !== undefined && !(await paymentSca.bindToGrant(flowId, accountId, details, grantId))) {
      await provider.Grant.adapter.destroy(grantId);
      throw new HttpError(409, 'PAYMENT_SCA_USED', 'This payment confirmation was already used. Go back to the app and start again.');
    }
    // The same lifetime ttl.Grant gives the grant (configuration.ts), from the approved details.
    const now = deps.now();
    const lifetime = consentLifetimeSeconds(approved, deps.consentMaxSeconds, now);
    await consents.recordGranted({
      grantId, clientId, userId: accountId, scopes: scopes.join(' '), details: approved,
      expiresAt: new Date(now.getTime() + lifetime * 1000),
    }, { ...kit.auditContext(ctx, interaction), userId: accountId });
    failpoint('consent.recorded');
    await kit.finish(ctx, { consent: { grantId } });
  });
}
