import type Router from '@koa/router';
import type { Context } from 'koa';

import { HttpError } from '../http/errors.js';
import { formField, parseForm } from '../http/form.js';
import { PAYMENT_SCA_REQUIRED, SCA_REQUIRED } from '../oidc/policy.js';
import { ACR_CA, ACR_SCA } from '../services/acr.js';
import { formatAmount, parseDetails, PAYMENT_INITIATION, type PaymentInitiationDetail } from '../services/authorization-details.js';
import type { AuthenticationService, SignInOutcome } from '../services/authentication.js';
import type { CustomerService } from '../services/customers.js';
import type { PaymentScaService } from '../services/payment-sca.js';
import { requiredAcr } from '../services/sca-policy.js';
import type { SecretBox } from '../services/secret-box.js';
import type { TotpService } from '../services/totp.js';
import { CODE_FAILED, enrolmentView, openEnrolment, SIGN_IN_FAILED, tooManyAttempts } from './authenticator-pages.js';
import type { Details, InteractionKit } from './kit.js';

export interface SignInDeps {
  readonly kit: InteractionKit;
  readonly authentication: AuthenticationService;
  readonly totp: TotpService;
  readonly customers: CustomerService;
  readonly paymentSca: PaymentScaService;
  readonly box: SecretBox;
}


/**
 * The login prompt, one ordered pipeline per form:
 *   GET  /interaction/:uid        no session   → sign-in page (username, password, and the
 *                                                 one-time code on the same form when the
 *                                                 request needs SCA)
 *                                 sca_required → one-time-code page (step-up), or the
 *                                                 enrolment page if the customer has none
 *   POST …/login                  password (+ code) → AuthenticationService.signIn
 *   POST …/otp                    code alone, for the session's customer → stepUp
 *   POST …/enrol                  first code for a proposed secret → stored, recovery codes shown
 *   POST …/enrolled               recovery codes acknowledged → signed in with SCA
 *   POST …/abort                  the customer cancels → access_denied
 */
export function registerSignIn(router: Router, deps: SignInDeps): void {
  const { kit, authentication, totp, customers, paymentSca, box } = deps;

  const isStepUp = (interaction: Details): boolean => interaction.session?.accountId !== undefined
    && (interaction.prompt.reasons.includes(SCA_REQUIRED) || interaction.prompt.reasons.includes(PAYMENT_SCA_REQUIRED));

  /** Dynamic linking: every page that collects a code for a payment shows what it confirms. */
  function paymentShown(interaction: Details): { amount: string; payee: string; iban: string } | undefined {
    const payment = parseDetails(interaction.params.authorization_details).find((d): d is PaymentInitiationDetail => d.type === PAYMENT_INITIATION);
    if (payment === undefined) return undefined;
    return { amount: formatAmount(payment.instructedAmount.amount, payment.instructedAmount.currency), payee: payment.creditorName, iban: payment.creditorAccount.iban };
  }

  /** After an SCA on a page that showed the payment, link it to exactly those details. */
  async function linkPayment(ctx: Context, interaction: Details, userId: string): Promise<void> {
    const details = parseDetails(interaction.params.authorization_details);
    const flowId = (interaction as unknown as { cid?: string }).cid;
    if (flowId !== undefined) await paymentSca.record(flowId, userId, details, { ...kit.auditContext(ctx, interaction), userId });
  }

  async function renderSignIn(ctx: Context, interaction: Details, error?: string, username = ''): Promise<void> {
    kit.render(ctx, 'login', {
      title: 'Sign in to your bank',
      uid: interaction.uid,
      clientName: await kit.clientName(interaction),
      csrf: kit.csrf.token(ctx, kit.formId(interaction, 'login')),
      abortCsrf: kit.csrf.token(ctx, kit.formId(interaction, 'abort')),
      needsOtp: requiredAcr(interaction.params) === ACR_SCA,
      payment: paymentShown(interaction),
      error,
      username,
    });
  }

  async function renderStepUp(ctx: Context, interaction: Details, error?: string): Promise<void> {
    kit.render(ctx, 'otp', {
      title: 'Confirm it is you',
      uid: interaction.uid,
      clientName: await kit.clientName(interaction),
      csrf: kit.csrf.token(ctx, kit.formId(interaction, 'otp')),
      abortCsrf: kit.csrf.token(ctx, kit.formId(interaction, 'abort')),
      payment: paymentShown(interaction),
      error,
    });
  }

  /** The proposed secret travels sealed (AES-GCM) and bound to this interaction and customer. */
  const enrolmentPurpose = (interaction: Details, userId: string) => `totp_enrolment:${interaction.uid}:${userId}`;

  async function renderEnrolment(ctx: Context, interaction: Details, userId: string, error?: string, sealed?: string): Promise<void> {
    const profile = await customers.profile(userId);
    if (profile === undefined) throw new HttpError(400, 'INTERACTION_EXPIRED', 'Sign in again.');
    kit.render(ctx, 'enrol', {
      title: 'Set up your authenticator app',
      uid: interaction.uid,
      clientName: await kit.clientName(interaction),
      csrf: kit.csrf.token(ctx, kit.formId(interaction, 'enrol')),
      abortCsrf: kit.csrf.token(ctx, kit.formId(interaction, 'abort')),
      ...await enrolmentView({ totp, box }, profile.username, enrolmentPurpose(interaction, userId), sealed),
      payment: paymentShown(interaction),
      error,
    });
  }

  async function afterOutcome(ctx: Context, interaction: Details, outcome: SignInOutcome, onFailure: () => Promise<void>): Promise<void> {
    if (outcome.ok) {
      if (outcome.acr === ACR_SCA) await linkPayment(ctx, interaction, outcome.userId);
      return kit.finish(ctx, { login: { accountId: outcome.userId, acr: outcome.acr, amr: outcome.amr, remember: false } });
    }
    if (outcome.reason === 'enrolment_required') {
      // Password proven; the SCA check then asks for a second factor, which the enrolment provides.
      return kit.finish(ctx, { login: { accountId: outcome.userId, acr: ACR_CA, amr: ['pwd'], remember: false } });
    }
    if (outcome.reason === 'throttled') tooManyAttempts(ctx, outcome.retryAfterSeconds);
    ctx.status = 401;
    return onFailure();
  }

  router.get('/:uid', async (ctx, next) => {
    const interaction = await kit.details(ctx);
    if (interaction.prompt.name !== 'login') return next();
    const accountId = interaction.session?.accountId;
    if (accountId !== undefined && isStepUp(interaction)) {
      return (await totp.isEnrolled(accountId)) ? renderStepUp(ctx, interaction) : renderEnrolment(ctx, interaction, accountId);
    }
    return renderSignIn(ctx, interaction);
  });

  router.post('/:uid/login', parseForm, async (ctx) => {
    const interaction = await kit.step(ctx, 'login', 'login', formField(ctx, 'csrf', 100));
    const username = formField(ctx, 'username', 256) ?? '';
    const outcome = await authentication.signIn({
      username,
      password: formField(ctx, 'password', 4096) ?? '',
      otp: formField(ctx, 'otp', 32),
      needSca: requiredAcr(interaction.params) === ACR_SCA,
      context: kit.auditContext(ctx, interaction),
    });
    await afterOutcome(ctx, interaction, outcome, () => renderSignIn(ctx, interaction, SIGN_IN_FAILED, username.slice(0, 64)));
  });

  router.post('/:uid/otp', parseForm, async (ctx) => {
    const interaction = await kit.step(ctx, 'login', 'otp', formField(ctx, 'csrf', 100));
    const accountId = interaction.session?.accountId;
    if (accountId === undefined || !isStepUp(interaction)) throw new HttpError(400, 'INTERACTION_STEP_MISMATCH', 'Sign in first.');
    const outcome = await authentication.stepUp(accountId, formField(ctx, 'otp', 32) ?? '', kit.auditContext(ctx, interaction));
    await afterOutcome(ctx, interaction, outcome, () => renderStepUp(ctx, interaction, CODE_FAILED));
  });

  router.post('/:uid/enrol', parseForm, async (ctx) => {
    const interaction = await kit.step(ctx, 'login', 'enrol', formField(ctx, 'csrf', 100));
    const accountId = interaction.session?.accountId;
    // Self-service enrolment only for a customer who has none: re-enrolment needs a fresh SCA.
    if (accountId === undefined || !isStepUp(interaction) || await totp.isEnrolled(accountId)) {
      throw new HttpError(400, 'INTERACTION_STEP_MISMATCH', 'This step is not expected now.');
    }
    const sealed = formField(ctx, 'enrolment', 512) ?? '';
    const secret = openEnrolment(box, sealed, enrolmentPurpose(interaction, accountId));
    const step = await totp.matches(secret, (formField(ctx, 'otp', 32) ?? '').trim());
    if (step === undefined) {
      ctx.status = 401;
      return renderEnrolment(ctx, interaction, accountId, CODE_FAILED, sealed);
    }
    const recoveryCodes = await totp.confirmEnrolment(accountId, secret, step, kit.auditContext(ctx, interaction));
    await linkPayment(ctx, interaction, accountId); // the enrolment page showed the payment
    kit.render(ctx, 'recovery-codes', {
      title: 'Save your recovery codes',
      uid: interaction.uid,
      csrf: kit.csrf.token(ctx, kit.formId(interaction, 'enrolled')),
      confirmation: box.seal(String(step), `totp_enrolled:${interaction.uid}:${accountId}`),
      recoveryCodes,
    });
  });

  router.post('/:uid/enrolled', parseForm, async (ctx) => {
    const interaction = await kit.step(ctx, 'login', 'enrolled', formField(ctx, 'csrf', 100));
    const accountId = interaction.session?.accountId;
    if (accountId === undefined) throw new HttpError(400, 'INTERACTION_STEP_MISMATCH', 'Sign in first.');
    try {
      box.open(formField(ctx, 'confirmation', 512) ?? '', `totp_enrolled:${interaction.uid}:${accountId}`);
    } catch {
      throw new HttpError(400, 'INVALID_ENROLMENT', 'This step is not expected now.');
    }
    // Password earlier in this session + a first valid code from the new authenticator.
    await kit.finish(ctx, { login: { accountId, acr: ACR_SCA, amr: ['pwd', 'otp'], remember: false } });
  });

  router.post('/:uid/abort', parseForm, async (ctx) => {
    const interaction = await kit.details(ctx);
    kit.csrf.verify(ctx, kit.formId(interaction, 'abort'), formField(ctx, 'csrf', 100));
    await kit.finish(ctx, { error: 'access_denied', error_description: 'the customer cancelled the request' });
  });
}
