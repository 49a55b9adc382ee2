import type { Context } from 'koa';
import type Provider from 'oidc-provider';
import type { InteractionResults } from 'oidc-provider';

import type { Csrf } from '../http/csrf.js';
import { isDatabaseUnavailable } from '../http/database-unavailable.js';
import { HttpError } from '../http/errors.js';
import type { Views } from '../http/views.js';
import type { ProviderHolder } from '../oidc/provider-holder.js';
import type { AuditContext } from '../services/audit.js';
import { isStorableParam, isStorableText } from '../services/validation.js';

export type Details = Awaited<ReturnType<Provider['interactionDetails']>>;

/** What every interaction step needs: the current provider, pages, CSRF. */
export class InteractionKit {
  readonly #providers: ProviderHolder;
  readonly views: Views;
  readonly csrf: Csrf;

  constructor(providers: ProviderHolder, views: Views, csrf: Csrf) {
    this.#providers = providers;
    this.views = views;
    this.csrf = csrf;
  }

  /** Read per request: the provider is replaced when signing keys change. */
  get provider(): Provider {
    return this.#providers.current;
  }

  async details(ctx: Context): Promise<Details> {
    let interaction: Details;
    try {
      interaction = await this.provider.interactionDetails(ctx.req, ctx.res);
    } catch (error) {
      // An interaction we could not read (database down) has not expired: 503, try again.
      if (isDatabaseUnavailable(error)) throw error;
      throw new HttpError(400, 'INTERACTION_EXPIRED', 'This sign-in link has expired or was opened in another browser. Go back to the app and start again.');
    }
    if (interaction.uid !== ctx.params.uid) {
      throw new HttpError(400, 'INTERACTION_STEP_MISMATCH', 'This step is not expected now. Go back to the app and start again.');
    }
    // A pushed request can carry NUL or malformed Unicode (nonce, claims, … in a form or a
    // request object). oidc-provider stores some parameters with the authorization code,
    // where PostgreSQL refuses them: a 500 after consent. Refuse before anyone signs in.
    if (!Object.entries(interaction.params).every(([name, value]) => isStorableText(name) && isStorableParam(value))) {
      throw new HttpError(400, 'INVALID_REQUEST_CHARACTERS', 'This request contains characters we cannot accept. Go back to the app and start again.');
    }
    return interaction;
  }

  /** The interaction, checked to be at `prompt`, with this form's CSRF token verified. */
  async step(ctx: Context, prompt: string, form: string, submittedCsrf: string | undefined): Promise<Details> {
    const interaction = await this.details(ctx);
    if (interaction.prompt.name !== prompt) {
      throw new HttpError(400, 'INTERACTION_STEP_MISMATCH', 'This step is not expected now. Go back to the app and start again.');
    }
    this.csrf.verify(ctx, this.formId(interaction, form), submittedCsrf);
    return interaction;
  }

  formId(interaction: Details, form: string): string {
    return `${interaction.uid}:${form}`;
  }

  async clientName(interaction: Details): Promise<string> {
    const client = await this.provider.Client.find(String(interaction.params.client_id));
    return client?.clientName ?? String(interaction.params.client_id);
  }

  /** Hands the result to oidc-provider and sends the browser back to it (303). */
  async finish(ctx: Context, result: InteractionResults): Promise<void> {
    const redirectTo = await this.provider.interactionResult(ctx.req, ctx.res, result, { mergeWithLastSubmission: false });
    ctx.status = 303;
    ctx.redirect(redirectTo);
  }

  render(ctx: Context, view: string, data: Record<string, unknown>): void {
    ctx.type = 'html';
    ctx.body = this.views.render(view, data);
  }

  auditContext(ctx: Context, interaction: Details): AuditContext & { ip: string } {
    return { ip: ctx.ip, requestId: String(ctx.state.requestId ?? ''), clientId: String(interaction.params.client_id) };
  }
}
