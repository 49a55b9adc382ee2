import { X509Certificate } from 'node:crypto';

import Router from '@koa/router';
import type { Context } from 'koa';
import type { KoaContextWithOIDC } from 'oidc-provider';

import { DpopError, verifyDpopProof, type ReplayCache } from '../resource-server/dpop.js';
import type { ConsentService } from '../services/consents.js';
import type { CertificateSource } from './mtls.js';
import type { ProviderHolder } from './provider-holder.js';

export interface GrantManagementDeps {
  readonly providers: ProviderHolder;
  readonly consents: ConsentService;
  readonly certificates: CertificateSource;
  readonly issuer: string;
  readonly now: () => Date;
}

interface Caller { clientId: string; scopes: Set<string> }

const ALGS = 'algs="ES256 PS256 EdDSA"';

function refuse(ctx: Context, status: 401 | 403 | 404, code: string, message: string, scheme: 'DPoP' | 'Bearer' = 'DPoP'): void {
  ctx.status = status;
  if (status !== 404) {
    const error = status === 401 ? 'invalid_token' : 'insufficient_scope';
    ctx.set('WWW-Authenticate', `${scheme} error="${error}", error_description="${message}"${scheme === 'DPoP' ? `, ${ALGS}` : ''}`);
  }
  ctx.body = { error: { code, message, request_id: String(ctx.state.requestId ?? '') } };
}

/**
 * FAPI Grant Management (query and revoke): GET and DELETE /grants/{grant_id} for the
 * client that owns the grant, with a sender-constrained access token carrying
 * grant_management_query / grant_management_revoke. Any other client gets 404, exactly
 * as for an unknown id: a grant id reveals nothing to whoever does not own it.
 */
export function grantManagementRouter(deps: GrantManagementDeps): Router {
  const router = new Router({ prefix: '/grants' });
  // Proofs are remembered in the database (oidc-provider's ReplayDetection, one INSERT on a
  // unique key in our adapter): a proof used on one instance is refused by every other.
  const replay: ReplayCache = {
    remember: (jti, expiresAt) => deps.providers.current.ReplayDetection.unique('grant-management', jti, expiresAt),
  };

  /** The authenticated caller, or undefined after answering 401. */
  async function authenticate(ctx: Context): Promise<Caller | undefined> {
    const match = /^(DPoP|Bearer) ([A-Za-z0-9._~+/-]+=*)$/.exec(ctx.get('authorization'));
    if (match === null) {
      refuse(ctx, 401, 'INVALID_TOKEN', 'a sender-constrained access token is required');
      return undefined;
    }
    const [, scheme, token] = match as unknown as [string, 'DPoP' | 'Bearer', string];
    const accessToken = await deps.providers.current.AccessToken.find(token);
    if (accessToken === undefined || !accessToken.isValid) {
      refuse(ctx, 401, 'INVALID_TOKEN', 'the access token is not active', scheme);
      return undefined;
    }
    if (accessToken.jkt !== undefined) {
      if (scheme !== 'DPoP') {
        refuse(ctx, 401, 'INVALID_TOKEN', 'a DPoP-bound token must be presented with DPoP');
        return undefined;
      }
      try {
        await verifyDpopProof({
          proof: ctx.get('dpop'), accessToken: token, method: ctx.method, url: `${deps.issuer}${ctx.path}`,
          expectedJkt: accessToken.jkt, now: deps.now(), replay,
        });
      } catch (error) {
        if (!(error instanceof DpopError)) throw error;
        refuse(ctx, 401, 'INVALID_DPOP_PROOF', 'the DPoP proof is invalid');
        return undefined;
      }
    } else if (accessToken['x5t#S256'] !== undefined) {
      const certificate = deps.certificates.getCertificate(ctx as unknown as KoaContextWithOIDC);
      const thumbprint = certificate === undefined ? undefined : certificateThumbprint(certificate);
      if (thumbprint !== accessToken['x5t#S256']) {
        refuse(ctx, 401, 'INVALID_TOKEN', 'the access token is bound to another certificate', 'Bearer');
        return undefined;
      }
    } else {
      refuse(ctx, 401, 'INVALID_TOKEN', 'the access token is not sender-constrained', scheme);
      return undefined;
    }
    return { clientId: accessToken.clientId as string, scopes: new Set(String(accessToken.scope ?? '').split(' ')) };
  }

  async function ownConsent(ctx: Context, caller: Caller) {
    const consent = await deps.consents.find(String(ctx.params.grantId));
    return consent !== undefined && consent.clientId === caller.clientId && consent.status !== 'rejected' ? consent : undefined;
  }

  router.get('/:grantId', async (ctx) => {
    const caller = await authenticate(ctx);
    if (caller === undefined) return;
    if (!caller.scopes.has('grant_management_query')) return refuse(ctx, 403, 'INSUFFICIENT_SCOPE', 'grant_management_query is required');
    const consent = await ownConsent(ctx, caller);
    if (consent === undefined) return refuse(ctx, 404, 'GRANT_NOT_FOUND', 'no such grant');
    ctx.body = {
      scopes: [{ scope: consent.scopes }],
      authorization_details: consent.details,
      status: deps.consents.effectiveStatus(consent),
      created_at: Math.floor(consent.createdAt.getTime() / 1000),
      ...(consent.expiresAt === null ? {} : { expires_at: Math.floor(consent.expiresAt.getTime() / 1000) }),
    };
  });

  router.delete('/:grantId', async (ctx) => {
    const caller = await authenticate(ctx);
    if (caller === undefined) return;
    if (!caller.scopes.has('grant_management_revoke')) return refuse(ctx, 403, 'INSUFFICIENT_SCOPE', 'grant_management_revoke is required');
    const consent = await ownConsent(ctx, caller);
    if (consent === undefined) return refuse(ctx, 404, 'GRANT_NOT_FOUND', 'no such grant');
    const revoked = await deps.consents.transition(consent.grantId, 'revoked', { clientId: caller.clientId }, {
      actor: 'client', clientId: caller.clientId, ip: ctx.ip, requestId: String(ctx.state.requestId ?? ''),
    });
    if (revoked === undefined) return refuse(ctx, 404, 'GRANT_NOT_FOUND', 'no such grant');
    ctx.status = 204;
  });

  return router;
}

function certificateThumbprint(certificate: X509Certificate): string {
  return Buffer.from(certificate.fingerprint256.replace(/:/g, ''), 'hex').toString('base64url');
}
