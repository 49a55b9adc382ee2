import { bodyParser } from '@koa/bodyparser';
import type { Context, Next } from 'koa';

import type { ClientService } from '../services/clients.js';
import type { ProviderHolder } from './provider-holder.js';
import { registrationMetadata } from '../services/registration.js';
import { RegistrationError, type SoftwareStatementVerifier } from '../services/software-statements.js';
import { isStorableJson } from '../services/validation.js';

const parseJson = bodyParser({ enableTypes: ['json'], jsonLimit: '64kb', encoding: 'utf-8' });

async function hasRegistrationAccessToken(ctx: Context, providers: ProviderHolder, clientId: string): Promise<boolean> {
  const match = /^Bearer ([A-Za-z0-9._~+/-]+=*)$/.exec(ctx.get('authorization'));
  if (match?.[1] === undefined) return false;
  const token = await providers.current.RegistrationAccessToken.find(match[1]);
  return token !== undefined && token.clientId === clientId;
}

/** JSON nesting a registration body may have (client metadata is flat; 20 is generous). */
const MAX_JSON_DEPTH = 20;

function depthOf(value: unknown, depth = 0): number {
  if (depth > MAX_JSON_DEPTH || value === null || typeof value !== 'object') return depth;
  let deepest = depth;
  for (const item of Object.values(value)) deepest = Math.max(deepest, depthOf(item, depth + 1));
  return deepest;
}

function reject(ctx: Context, error: RegistrationError): void {
  ctx.status = 400;
  ctx.body = { error: error.code, error_description: error.message };
}

/**
 * Dynamic client registration (RFC 7591) and its management updates (RFC 7592 PUT) pass
 * through here before oidc-provider: the body must carry a software statement from the
 * trusted directory, and the metadata oidc-provider registers is the one built from it
 * (registration.ts). Rejections use the RFC 7591 error codes and create nothing.
 * oidc-provider reads the body this middleware parsed (it falls back to request.body).
 */
export function registrationGate(deps: { verifier: SoftwareStatementVerifier | undefined; clients: ClientService; providers: ProviderHolder; allowLoopbackRedirects: boolean; path?: string }) {
  const path = deps.path ?? '/reg';
  return async function gate(ctx: Context, next: Next): Promise<void> {
    const isCreate = ctx.method === 'POST' && ctx.path === path;
    const isUpdate = ctx.method === 'PUT' && ctx.path.startsWith(`${path}/`);
    if ((!isCreate && !isUpdate) || deps.verifier === undefined) return next();

    let clientId: string | undefined;
    try {
      clientId = isUpdate ? decodeURIComponent(ctx.path.slice(path.length + 1)) : undefined;
    } catch {
      return reject(ctx, new RegistrationError('invalid_client_metadata', 'the client id in the path is not valid UTF-8'));
    }
    // RFC 7592: an update is judged only once its registration access token is valid, so
    // an unauthenticated PUT gets 401 and cannot spend the software statement it carries.
    if (clientId !== undefined && !(await hasRegistrationAccessToken(ctx, deps.providers, clientId))) {
      ctx.status = 401;
      ctx.set('WWW-Authenticate', 'Bearer error="invalid_token"');
      ctx.body = { error: 'invalid_token', error_description: 'invalid registration access token' };
      return;
    }

    if (!ctx.is('application/json')) return reject(ctx, new RegistrationError('invalid_client_metadata', 'the request must be application/json'));
    try {
      await parseJson(ctx, async () => undefined);
    } catch {
      return reject(ctx, new RegistrationError('invalid_client_metadata', 'the request body is not a JSON object within 64 KiB'));
    }
    const body = (ctx.request as { body?: unknown }).body;
    if (typeof body !== 'object' || body === null || Array.isArray(body)) {
      return reject(ctx, new RegistrationError('invalid_client_metadata', 'the request body must be a JSON object'));
    }
    if (depthOf(body) > MAX_JSON_DEPTH) {
      return reject(ctx, new RegistrationError('invalid_client_metadata', `the request body is nested deeper than ${MAX_JSON_DEPTH} levels`));
    }
    // NUL or malformed Unicode anywhere (even in a member RFC 7591 lets us ignore) is a 400:
    // stored as client metadata, PostgreSQL would refuse it with an error (a 500).
    if (!isStorableJson(body)) {
      return reject(ctx, new RegistrationError('invalid_client_metadata', 'the request body contains a NUL character or malformed Unicode'));
    }

    try {
      const request = body as Record<string, unknown>;
      if (request.software_statement === undefined) throw new RegistrationError('invalid_software_statement', 'a software_statement is required');
      const statement = await deps.verifier.verify(request.software_statement);
      const metadata = registrationMetadata(request, statement, { allowLoopbackHttp: deps.allowLoopbackRedirects });
      const existing = await deps.clients.findBySoftwareId(statement.softwareId);
      if (isCreate && existing !== undefined) {
        throw new RegistrationError('invalid_client_metadata', `software_id ${statement.softwareId} is already registered; manage that client with its registration access token (RFC 7592)`);
      }
      if (clientId !== undefined) {
        const current = await deps.clients.get(clientId).catch(() => undefined);
        // A client keeps its software identity: an update needs a statement of the same software.
        if ((existing !== undefined && existing.clientId !== clientId) || (current?.softwareId != null && current.softwareId !== statement.softwareId)) {
          throw new RegistrationError('invalid_software_statement', 'the software statement is for another software_id than this client\'s');
        }
        if (request.client_id !== undefined && request.client_id !== clientId) {
          throw new RegistrationError('invalid_client_metadata', 'client_id does not match the client being updated');
        }
        metadata.client_id = clientId;
      }
      // The software statement's claims are stored too (client_name, org_id, …).
      if (!isStorableJson(metadata)) throw new RegistrationError('invalid_software_statement', 'the software statement contains a NUL character or malformed Unicode');
      (ctx.request as { body?: unknown }).body = metadata;
    } catch (error) {
      if (error instanceof RegistrationError) return reject(ctx, error);
      throw error;
    }
    await next();
  };
}
