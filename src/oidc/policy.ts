import { interactionPolicy, type KoaContextWithOIDC } from 'oidc-provider';

import { requiredAcr, satisfies } from '../services/sca-policy.js';

const { Check } = interactionPolicy;

/** The login prompt's reason when a session exists but its level is below the request's. */
export const SCA_REQUIRED = 'sca_required';

/**
 * The interaction policy as one ordered list: oidc-provider evaluates the prompts in
 * order and, within each, its checks in order; the first check that fails decides which
 * page the customer sees.
 *
 * login:   no_session            → sign-in page (password, plus one-time code if needed)
 *          sca_required (ours)   → the session holds less than the request needs:
 *                                  one-time-code page only (step-up)
 *          max_age, id_token_hint, claims sub, essential acr(s) → oidc-provider's base
 * consent: scopes, claims or authorization details not yet granted → consent page
 */
export function buildInteractionPolicy(): interactionPolicy.Prompt[] {
  const base = interactionPolicy.base();
  const login = base.get('login');
  const consent = base.get('consent');
  if (login === undefined || consent === undefined) throw new Error('oidc-provider base policy lacks login/consent');

  const scaRequired = new Check(SCA_REQUIRED, 'the request needs strong customer authentication', (ctx: KoaContextWithOIDC) => {
    const { session, params } = ctx.oidc;
    if (session?.accountId === undefined) return Check.NO_NEED_TO_PROMPT; // no_session handles it
    return satisfies(session.acr, requiredAcr(params as Record<string, unknown>)) ? Check.NO_NEED_TO_PROMPT : Check.REQUEST_PROMPT;
  });
  const afterNoSession = login.checks.findIndex((check) => check.reason === 'no_session') + 1;
  login.checks.add(scaRequired, afterNoSession);
  return [login, consent];
}
