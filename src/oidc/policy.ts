import { interactionPolicy, type KoaContextWithOIDC } from 'oidc-provider';

import { parseDetails, paymentLinkHash } from '../services/authorization-details.js';
import type { PaymentScaService } from '../services/payment-sca.js';
import { requiredAcr, satisfies } from '../services/sca-policy.js';

const { Check } = interactionPolicy;

/** The login prompt's reason when a session exists but its level is below the request's. */
export const SCA_REQUIRED = 'sca_required';
/** The login prompt's reason when a payment has no SCA linked to its amount and payee yet. */
export const PAYMENT_SCA_REQUIRED = 'payment_sca_required';

/**
 * The interaction policy as one ordered list: oidc-provider evaluates the prompts in
 * order and, within each, its checks in order; the first check that fails decides which
 * page the customer sees.
 *
 * login:   no_session            → sign-in page (password, plus one-time code if needed)
 *          sca_required (ours)   → the session holds less than the request needs:
 *                                  one-time-code page only (step-up)
 *          payment_sca_required  → a payment without an SCA of this request linked to its
 *          (ours)                  amount and payee: one-time-code page showing them
 *          max_age, id_token_hint, claims sub, essential acr(s) → oidc-provider's base
 * consent: scopes, claims or authorization details not yet granted → consent page
 */
export function buildInteractionPolicy(paymentSca: PaymentScaService): interactionPolicy.Prompt[] {
  const base = interactionPolicy.base();
  const login = base.get('login');
  const consent = base.get('consent');
  if (login === undefined || consent === undefined) throw new Error('oidc-provider base policy lacks login/consent');

  const scaRequired = new Check(SCA_REQUIRED, 'the request needs strong customer authentication', (ctx: KoaContextWithOIDC) => {
    const { session, params } = ctx.oidc;
    if (session?.accountId === undefined) return Check.NO_NEED_TO_PROMPT; // no_session handles it
    return satisfies(session.acr, requiredAcr(params as Record<string, unknown>)) ? Check.NO_NEED_TO_PROMPT : Check.REQUEST_PROMPT;
  });
  const paymentScaRequired = new Check(PAYMENT_SCA_REQUIRED, 'the payment needs its own strong customer authentication', async (ctx: KoaContextWithOIDC) => {
    const { session, params } = ctx.oidc;
    const details = parseDetails(params?.authorization_details);
    if (session?.accountId === undefined || paymentLinkHash(details) === undefined) return Check.NO_NEED_TO_PROMPT;
    // The chain id of this request's interactions: an SCA from another request never counts.
    const flowId = (ctx.oidc.entities.Interaction as { cid?: string } | undefined)?.cid;
    if (flowId === undefined) return Check.REQUEST_PROMPT;
    const ownGrantId = ctx.oidc.result?.consent?.grantId;
    return (await paymentSca.isLinked(flowId, session.accountId, details, ownGrantId)) ? Check.NO_NEED_TO_PROMPT : Check.REQUEST_PROMPT;
  });
  const afterNoSession = login.checks.findIndex((check) => check.reason === 'no_session') + 1;
  login.checks.add(scaRequired, afterNoSession);
  login.checks.add(paymentScaRequired, afterNoSession + 1);
  return [login, consent];
}
