import Router from '@koa/router';

import type { Config } from '../config.js';
import type { Csrf } from '../http/csrf.js';
import { HttpError } from '../http/errors.js';
import type { Views } from '../http/views.js';
import type { ProviderHolder } from '../oidc/provider-holder.js';
import type { AuthenticationService } from '../services/authentication.js';
import type { ConsentService } from '../services/consents.js';
import type { CustomerService } from '../services/customers.js';
import type { PaymentScaService } from '../services/payment-sca.js';
import type { SecretBox } from '../services/secret-box.js';
import type { TotpService } from '../services/totp.js';
import { registerConsent } from './consent.js';
import { InteractionKit } from './kit.js';
import { registerSignIn } from './sign-in.js';

export interface InteractionDeps {
  readonly config: Config;
  readonly now: () => Date;
  readonly providers: ProviderHolder;
  readonly customers: CustomerService;
  readonly authentication: AuthenticationService;
  readonly totp: TotpService;
  readonly paymentSca: PaymentScaService;
  readonly consents: ConsentService;
  readonly box: SecretBox;
  readonly views: Views;
  readonly csrf: Csrf;
}

/**
 * The customer-facing steps of an authorization request, under /interaction/:uid.
 * Each step: parse the form → ask a service → finish the interaction (303 back to
 * oidc-provider). The GET page is the current prompt's: sign-in.ts, then consent.ts.
 */
export function interactionRouter(deps: InteractionDeps): Router {
  const router = new Router({ prefix: '/interaction' });
  const kit = new InteractionKit(deps.providers, deps.views, deps.csrf);
  registerSignIn(router, { kit, authentication: deps.authentication, totp: deps.totp, customers: deps.customers, paymentSca: deps.paymentSca, box: deps.box });
  registerConsent(router, {
    kit, customers: deps.customers, paymentSca: deps.paymentSca, consents: deps.consents, consentMaxSeconds: deps.config.refreshTokenTtl, now: deps.now,
  });
  router.get('/:uid', () => {
    throw new HttpError(400, 'UNSUPPORTED_PROMPT', 'This request needs a step we do not support.');
  });
  return router;
}
