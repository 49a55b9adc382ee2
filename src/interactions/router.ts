import Router from '@koa/router';
import type { Context } from 'koa';
import type Provider from 'oidc-provider';
import type { InteractionResults } from 'oidc-provider';

import type { Csrf } from '../http/csrf.js';
import { HttpError } from '../http/errors.js';
import { formField, formList, parseForm } from '../http/form.js';
import type { Views } from '../http/views.js';
import { SCOPE_DESCRIPTIONS } from '../oidc/configuration.js';
import { ACR_CA } from '../oidc/acr.js';
import type { ProviderHolder } from '../oidc/provider-holder.js';
import type { CustomerService } from '../services/customers.js';

export interface InteractionDeps {
  readonly providers: ProviderHolder;
  readonly customers: CustomerService;
  readonly views: Views;
  readonly csrf: Csrf;
}

type Details = Awaited<ReturnType<Provider['interactionDetails']>>;

const SIGN_IN_FAILED = 'Sign-in failed. Check your details and try again.';

function maskIban(iban: string): string {
  return `•••• ${iban.slice(-4)}`;
}

/**
 * The customer-facing steps of an authorization request. Each step is:
 * parse the form → ask a service → finish the interaction (303 back to oidc-provider).
 *
 *   GET  /interaction/:uid          the page for the current prompt (login | consent)
 *   POST /interaction/:uid/login    password (and, later, one-time code)
 *   POST /interaction/:uid/consent  allow / deny, with the chosen accounts
 *   POST /interaction/:uid/abort    the customer cancels → access_denied
 */
export function interactionRouter(deps: InteractionDeps): Router {
  const { providers, customers, views, csrf } = deps;
  const router = new Router({ prefix: '/interaction' });
  // Read per request: the provider is replaced when signing keys change.
  const provider = (): Provider => providers.current;

  async function details(ctx: Context): Promise<Details> {
    try {
      return await provider().interactionDetails(ctx.req, ctx.res);
    } catch {
      throw new HttpError(400, 'INTERACTION_EXPIRED', 'This sign-in link has expired or was opened in another browser. Go back to the app and start again.');
    }
  }

  function assertStep(ctx: Context, interaction: Details, prompt: string): void {
    if (interaction.uid !== ctx.params.uid || interaction.prompt.name !== prompt) {
      throw new HttpError(400, 'INTERACTION_STEP_MISMATCH', 'This step is not expected now. Go back to the app and start again.');
    }
  }

  async function clientName(interaction: Details): Promise<string> {
    const client = await provider().Client.find(String(interaction.params.client_id));
    return client?.clientName ?? String(interaction.params.client_id);
  }

  async function finish(ctx: Context, result: InteractionResults): Promise<void> {
    const redirectTo = await provider().interactionResult(ctx.req, ctx.res, result, { mergeWithLastSubmission: false });
    ctx.status = 303;
    ctx.redirect(redirectTo);
  }

  async function renderLogin(ctx: Context, interaction: Details, error?: string, username = ''): Promise<void> {
    ctx.type = 'html';
    ctx.body = views.render('login', {
      title: 'Sign in to your bank',
      uid: interaction.uid,
      clientName: await clientName(interaction),
      csrf: csrf.token(ctx, `${interaction.uid}:login`),
      abortCsrf: csrf.token(ctx, `${interaction.uid}:abort`),
      needsOtp: false,
      payment: undefined,
      error,
      username,
    });
  }

  async function renderConsent(ctx: Context, interaction: Details): Promise<void> {
    const accountId = interaction.session?.accountId;
    if (accountId === undefined) throw new HttpError(400, 'INTERACTION_STEP_MISMATCH', 'Sign in first.');
    const scopes = String(interaction.params.scope ?? '').split(' ').filter(Boolean);
    const wantsAccounts = scopes.includes('accounts');
    const accounts = wantsAccounts ? await customers.bankAccounts(accountId) : [];
    ctx.type = 'html';
    ctx.body = views.render('consent', {
      title: 'Review this request',
      uid: interaction.uid,
      clientName: await clientName(interaction),
      csrf: csrf.token(ctx, `${interaction.uid}:consent`),
      permissions: scopes.map((s) => SCOPE_DESCRIPTIONS[s]).filter((d): d is string => d !== undefined),
      accounts: accounts.map((a) => ({ id: a.id, name: a.name, maskedIban: maskIban(a.iban) })),
    });
  }

  router.get('/:uid', async (ctx) => {
    const interaction = await details(ctx);
    if (interaction.uid !== ctx.params.uid) throw new HttpError(400, 'INTERACTION_STEP_MISMATCH', 'This step is not expected now. Go back to the app and start again.');
    if (interaction.prompt.name === 'login') return renderLogin(ctx, interaction);
    if (interaction.prompt.name === 'consent') return renderConsent(ctx, interaction);
    throw new HttpError(400, 'UNSUPPORTED_PROMPT', 'This request needs a step we do not support.');
  });

  router.post('/:uid/login', parseForm, async (ctx) => {
    const interaction = await details(ctx);
    assertStep(ctx, interaction, 'login');
    csrf.verify(ctx, `${interaction.uid}:login`, formField(ctx, 'csrf', 100));
    const username = formField(ctx, 'username', 256) ?? '';
    const password = formField(ctx, 'password', 4096) ?? '';

    const verified = await customers.verifyPassword(username, password);
    if (verified === undefined) {
      ctx.status = 401;
      return renderLogin(ctx, interaction, SIGN_IN_FAILED, username.slice(0, 64));
    }
    await finish(ctx, { login: { accountId: verified.userId, acr: ACR_CA, amr: ['pwd'], remember: false } });
  });

  router.post('/:uid/consent', parseForm, async (ctx) => {
    const interaction = await details(ctx);
    assertStep(ctx, interaction, 'consent');
    csrf.verify(ctx, `${interaction.uid}:consent`, formField(ctx, 'csrf', 100));
    const decision = formField(ctx, 'decision', 10);
    if (decision === 'deny') {
      return finish(ctx, { error: 'access_denied', error_description: 'the customer denied the request' });
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

    const grant = interaction.grantId === undefined
      ? new (provider().Grant)({ accountId, clientId })
      : await provider().Grant.find(interaction.grantId);
    if (grant === undefined) throw new HttpError(400, 'INTERACTION_EXPIRED', 'This request has expired. Go back to the app and start again.');

    const missing = interaction.prompt.details as { missingOIDCScope?: string[]; missingOIDCClaims?: string[]; missingResourceScopes?: Record<string, string[]> };
    if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
    if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
    for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes ?? {})) {
      grant.addResourceScope(indicator, scopes.join(' '));
    }
    const grantId = await grant.save();
    await finish(ctx, { consent: { grantId } });
  });

  router.post('/:uid/abort', parseForm, async (ctx) => {
    const interaction = await details(ctx);
    if (interaction.uid !== ctx.params.uid) throw new HttpError(400, 'INTERACTION_STEP_MISMATCH', 'This step is not expected now.');
    csrf.verify(ctx, `${interaction.uid}:abort`, formField(ctx, 'csrf', 100));
    await finish(ctx, { error: 'access_denied', error_description: 'the customer cancelled the request' });
  });

  return router;
}
