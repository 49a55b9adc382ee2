import { interactionPolicy } from 'oidc-provider';

/**
 * The interaction policy as one ordered list: oidc-provider evaluates the prompts in
 * order and, within each, its checks in order; the first check that fails decides which
 * page the customer sees. Later issues add their checks here (SCA level, step-up).
 *
 * login:   no session → sign in; prompt=login / max_age / id_token_hint / claims checks
 *          come from oidc-provider's base policy.
 * consent: scopes, claims or authorization details not yet granted → consent page.
 */
export function buildInteractionPolicy(): interactionPolicy.Prompt[] {
  const base = interactionPolicy.base();
  const login = base.get('login');
  const consent = base.get('consent');
  if (login === undefined || consent === undefined) throw new Error('oidc-provider base policy lacks login/consent');
  return [login, consent];
}
