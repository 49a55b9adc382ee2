import { randomUUID } from 'node:crypto';

import type { Configuration, UnknownObject } from 'oidc-provider';
import { errors } from 'oidc-provider';

import type { Config } from '../config.js';
import type { Views } from '../http/views.js';
import type { ClientStore } from '../services/clients.js';
import { KIND_METADATA, PROFILE_METADATA } from '../services/clients.js';
import type { CustomerService } from '../services/customers.js';
import {
  AuthorizationDetailsValidator, consentLifetimeSeconds, DETAIL_TYPES, InvalidDetailsError, type AuthorizationDetail,
} from '../services/authorization-details.js';
import { SIGNING_ALGS } from '../services/keys.js';
import type { PaymentScaService } from '../services/payment-sca.js';
import type { SecretBox } from '../services/secret-box.js';
import { ACR_VALUES } from '../services/acr.js';
import { createAdapterFactory } from './adapter.js';
import type { Executor } from '../db/database.js';
import type { Prepared } from '../db/repositories/oidc-models.js';
import type { RequestScope } from './request-scope.js';
import { FAPI2_AUTH_METHODS } from '../services/client-policy.js';
import { RESOURCE_SERVER_AUTH_METHOD } from './discovery.js';
import { assertClientAssertion, assertRequestObject, FUTURE_SKEW_SECONDS } from './jwt-rules.js';
import type { CertificateSource } from './mtls.js';
import { buildInteractionPolicy } from './policy.js';

export interface ProviderDeps {
  readonly config: Config;
  readonly db: Executor;
  readonly prepared: Prepared;
  readonly scope: RequestScope;
  readonly revokeReplayedGrant: (grantId: string) => Promise<void>;
  readonly box: SecretBox;
  readonly clients: ClientStore;
  readonly customers: CustomerService;
  readonly views: Views;
  readonly jwks: { keys: UnknownObject[] };
  readonly cookieKeys: string[];
  readonly dpopNonceSecret: Buffer;
  readonly certificates: CertificateSource;
  readonly details: AuthorizationDetailsValidator;
  readonly paymentSca: PaymentScaService;
  readonly now: () => Date;
}

/** Signing algorithms for everything we sign or accept signed (FAPI 2.0: no RS256, HS*, none). */
const ALGS = [...SIGNING_ALGS];

/** Scopes we understand (DESIGN §3). */
export const SCOPES = [
  'openid', 'profile', 'email', 'offline_access',
  'accounts', 'payments',
  'grant_management_query', 'grant_management_revoke',
];

/** Scopes of the bank's APIs (the resource server at API_RESOURCE). */
export const API_SCOPES = ['accounts', 'payments', 'grant_management_query', 'grant_management_revoke'];

/** Human descriptions of scopes, for the consent page. */
export const SCOPE_DESCRIPTIONS: Readonly<Record<string, string>> = Object.freeze({
  openid: 'Confirm who you are',
  profile: 'See your name',
  email: 'See your email address',
  offline_access: 'Keep access while you are not using the app',
  accounts: 'See the accounts you choose, with their balances and transactions',
  payments: 'Start a payment from your account',
  grant_management_query: 'Check the status of this consent',
  grant_management_revoke: 'Withdraw this consent on your behalf',
});

function isResourceServer(client: unknown): boolean {
  return (client as Record<string, unknown> | undefined)?.[KIND_METADATA] === 'resource_server';
}

export function buildProviderConfiguration(deps: ProviderDeps): Configuration {
  const { config, customers, views } = deps;

  return {
    adapter: createAdapterFactory({
      db: deps.db, prepared: deps.prepared, scope: deps.scope, clients: deps.clients, box: deps.box, now: deps.now, revokeReplayedGrant: deps.revokeReplayedGrant,
    }),
    jwks: deps.jwks as Configuration['jwks'],
    cookies: {
      keys: deps.cookieKeys,
      long: { httpOnly: true, sameSite: 'lax', signed: true },
      short: { httpOnly: true, sameSite: 'lax', signed: true },
    },
    acrValues: [...ACR_VALUES],
    // acr/amr/auth_time ride with `openid` so every ID token says how the customer
    // authenticated (oidc-provider drops claims that no granted scope or request names).
    claims: {
      openid: ['sub', 'acr', 'amr', 'auth_time'],
      profile: ['name'],
      email: ['email'],
      sid: null,
      iss: null,
    },
    scopes: SCOPES,
    responseTypes: ['code'],
    // client_secret_basic is for resource servers only (they have no grant types, so they
    // can use it at introspection and revocation and nowhere else); see discovery.ts.
    clientAuthMethods: [...FAPI2_AUTH_METHODS, RESOURCE_SERVER_AUTH_METHOD],
    // FAPI 2.0: JWTs up to 10 s in the future are accepted (see jwt-rules.ts).
    clockTolerance: FUTURE_SKEW_SECONDS,
    assertJwtClientAuthClaimsAndHeader: assertClientAssertion(deps.now),
    clientDefaults: {
      grant_types: ['authorization_code'],
      response_types: ['code'],
      token_endpoint_auth_method: 'private_key_jwt',
      id_token_signed_response_alg: 'PS256',
      authorization_signed_response_alg: 'PS256',
      introspection_signed_response_alg: 'PS256',
    },
    enabledJWA: {
      clientAuthSigningAlgValues: ALGS,
      idTokenSigningAlgValues: ALGS,
      requestObjectSigningAlgValues: ALGS,
      userinfoSigningAlgValues: ALGS,
      introspectionSigningAlgValues: ALGS,
      authorizationSigningAlgValues: ALGS,
      dPoPSigningAlgValues: ['ES256', 'PS256', 'EdDSA'],
    },
    extraClientMetadata: {
      // software_id, software_roles, org_id come from the software statement (registration.ts).
      properties: [PROFILE_METADATA, KIND_METADATA, 'software_id', 'software_roles', 'org_id'],
      validator(_ctx, key, value) {
        if ((key === 'software_id' || key === 'org_id') && value !== undefined && typeof value !== 'string') {
          throw new errors.InvalidClientMetadata(`${key} must be a string`);
        }
        if (key === 'software_roles' && value !== undefined && !(Array.isArray(value) && value.every((r) => r === 'AISP' || r === 'PISP'))) {
          throw new errors.InvalidClientMetadata('software_roles must list AISP and/or PISP');
        }
        if (key === PROFILE_METADATA && value !== undefined && value !== 'fapi2' && value !== 'oidc') {
          throw new errors.InvalidClientMetadata(`${PROFILE_METADATA} must be fapi2 or oidc`);
        }
        if (key === KIND_METADATA && value !== undefined && value !== 'tpp' && value !== 'resource_server') {
          throw new errors.InvalidClientMetadata(`${KIND_METADATA} must be tpp or resource_server`);
        }
      },
    },
    pkce: { required: () => true },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      introspection: {
        enabled: true,
        // Resource servers may introspect any access token (never a refresh token: an API
        // must not mistake one for an access token); a client only its own tokens.
        allowedPolicy: async (ctx, client, token) => (isResourceServer(client) ? token.kind !== 'RefreshToken' : token.clientId === client.clientId),
      },
      revocation: {
        enabled: true,
        allowedPolicy: async (ctx, client, token) => isResourceServer(client) || token.clientId === client.clientId,
      },
      userinfo: { enabled: true },
      // PAR is required per client (require_pushed_authorization_requests, enforced for every
      // fapi2 client by client-policy.ts); discovery advertises it as required (discovery.ts).
      pushedAuthorizationRequests: { enabled: true, requirePushedAuthorizationRequests: false, allowUnregisteredRedirectUris: false },
      // JAR: signed request objects, pushed to /request (a client may require them).
      requestObjects: { enabled: true, requireSignedRequestObject: false, assertJwtClaimsAndHeader: assertRequestObject(deps.now) },
      // JARM: response_mode=jwt signs the authorization response.
      jwtResponseModes: { enabled: true },
      // RFC 9701: Accept: application/token-introspection+jwt gets a signed introspection response.
      jwtIntrospection: { enabled: true },
      mTLS: {
        enabled: true,
        certificateBoundAccessTokens: true,
        tlsClientAuth: true,
        selfSignedTlsClientAuth: true,
        getCertificate: (ctx) => deps.certificates.getCertificate(ctx),
        certificateAuthorized: (ctx) => deps.certificates.certificateAuthorized(ctx),
        certificateSubjectMatches: (ctx, property, expected) => deps.certificates.certificateSubjectMatches(ctx, property, expected),
      },
      dPoP: { enabled: true, nonceSecret: deps.dpopNonceSecret },
      fapi: {
        enabled: true,
        profile: (ctx, client) => ((client as unknown as Record<string, unknown> | undefined)?.[PROFILE_METADATA] === 'fapi2' ? '2.0' : undefined),
      },
      rpInitiatedLogout: { enabled: true },
      // RFC 7591/7592, only with a trusted software-statement directory (registration-gate.ts).
      registration: {
        enabled: config.ssa !== undefined,
        initialAccessToken: false,
        issueRegistrationAccessToken: true,
        idFactory: () => `tpp-${randomUUID()}`,
      },
      registrationManagement: { enabled: config.ssa !== undefined, rotateRegistrationAccessToken: true },
      // OIDC claims parameter: lets a client demand an essential acr (enforced, see policy.ts).
      claimsParameter: { enabled: true },
      // RFC 8707: tokens for a consent (authorization_details) are for the bank's APIs,
      // whose scopes are accounts and payments; other tokens are for userinfo.
      resourceIndicators: {
        enabled: true,
        defaultResource: async (ctx, _client, oneOf) => oneOf ?? (ctx.oidc.params?.authorization_details === undefined ? undefined : config.apiResource),
        useGrantedResource: async () => true,
        getResourceServerInfo: async (_ctx, resource) => {
          if (resource !== config.apiResource) throw new errors.InvalidTarget('unknown resource indicator');
          return { scope: API_SCOPES.join(' '), audience: config.apiResource, accessTokenFormat: 'opaque', accessTokenTTL: config.accessTokenTtl };
        },
      },
      // RFC 9396: consents are authorization details; the customer's approval (accounts
      // chosen, debtor account) is stored on the grant and travels to codes and tokens.
      richAuthorizationRequests: {
        enabled: true,
        types: Object.fromEntries(DETAIL_TYPES.map((type) => [type, {
          validate(_ctx: unknown, detail: unknown) {
            try {
              deps.details.validate(detail, deps.now());
            } catch (error) {
              if (error instanceof InvalidDetailsError) throw new errors.InvalidAuthorizationDetails(error.message);
              throw error;
            }
          },
        }])),
        authorizationDetailsForGrantSource: (ctx) => ctx.oidc.grant?.rar as never,
        authorizationDetailsForAccessToken: (_ctx, _token, source) => (source as { rar?: unknown } | undefined)?.rar as never,
        authorizationDetailsForIntrospection: (_ctx, token) => (token as { rar?: unknown }).rar as never,
      },
    },
    // A consent is a grant: every authorization request gets its own (never a previous one
    // found through the browser session), created on the consent page.
    async loadExistingGrant(ctx) {
      const grantId = ctx.oidc.result?.consent?.grantId;
      return grantId === undefined ? undefined : ctx.oidc.provider.Grant.find(grantId);
    },
    ttl: {
      AuthorizationCode: 60,
      PushedAuthorizationRequest: 60,
      AccessToken: config.accessTokenTtl,
      ClientCredentials: config.accessTokenTtl,
      RefreshToken: config.refreshTokenTtl,
      // A grant is the consent. It lives REFRESH_TOKEN_TTL (≤ 180 days: PSD2 RTS art. 10
      // re-authentication of account access), or less when the approved details expire sooner.
      Grant: (_ctx, grant) => consentLifetimeSeconds(grant.rar as AuthorizationDetail[] | undefined, config.refreshTokenTtl, deps.now()),
      IdToken: 300,
      Interaction: 600,
      // PSD2 RTS art. 4(3)(d): inactivity ends the session. oidc-provider re-saves the
      // session on every authorization request, so this is a sliding idle timeout.
      Session: config.sca.sessionIdleSeconds,
    },
    rotateRefreshToken: false,
    // Outbound fetches (client jwks_uri): oidc-provider bounds them to 2.5 s and refuses
    // private and loopback addresses; FETCH_ALLOW_PRIVATE_NETWORKS (development, tests) lifts
    // the latter. Responses are bounded in size.
    fetch: (url, options) => {
      if (config.fetchAllowPrivateNetworks) delete (options as { dispatcher?: unknown }).dispatcher;
      return globalThis.fetch(url, options);
    },
    fetchResponseBodyLimits: { jwks_uri: 256 * 1024, sector_identifier_uri: 64 * 1024 } as never,
    // API consents are not browser sessions: signing out of the bank does not cut off the TPP.
    expiresWithSession: () => false,
    allowOmittingSingleRegisteredRedirectUri: false,
    interactions: {
      policy: buildInteractionPolicy(deps.paymentSca),
      url: (_ctx, interaction) => `/interaction/${interaction.uid}`,
    },
    async findAccount(_ctx, sub, token) {
      const profile = await customers.profile(sub);
      if (profile === undefined) return undefined;
      // At userinfo, `token` is the access token: it carries how the customer authenticated.
      const extra = (token as { extra?: { acr?: unknown; amr?: unknown } } | undefined)?.extra;
      return {
        accountId: profile.id,
        async claims() {
          return {
            sub: profile.id,
            ...(typeof extra?.acr === 'string' ? { acr: extra.acr } : {}),
            ...(Array.isArray(extra?.amr) ? { amr: extra.amr } : {}),
            ...(profile.name === null ? {} : { name: profile.name }),
            ...(profile.email === null ? {} : { email: profile.email }),
          };
        },
      };
    },
    // Introspection reports how the customer authenticated and which consent backs the token.
    async extraTokenClaims(ctx, token) {
      const source = (ctx?.oidc.entities.AuthorizationCode ?? ctx?.oidc.entities.RefreshToken) as { acr?: string; amr?: string[] } | undefined;
      const grantId = (token as { grantId?: string }).grantId;
      return {
        ...(source?.acr === undefined ? {} : { acr: source.acr }),
        ...(source?.amr === undefined ? {} : { amr: source.amr }),
        ...(grantId === undefined ? {} : { grant_id: grantId }),
      };
    },
    async renderError(ctx, out) {
      ctx.type = 'html';
      const described = typeof out.error_description === 'string' ? out.error_description : 'The request could not be completed.';
      ctx.body = views.render('error', {
        title: 'This request cannot be completed',
        message: `${out.error}: ${described}`,
        requestId: String(ctx.state.requestId ?? ''),
      });
    },
  };
}
