import { ACR_CA, ACR_SCA } from './acr.js';

/** What an authorization request asks for, as far as the authentication level goes. */
export interface LevelRequest {
  readonly acr_values?: unknown;
  readonly scope?: unknown;
  readonly authorization_details?: unknown;
  /** the OIDC claims request parameter (JSON string) */
  readonly claims?: unknown;
}

/** The acr values an essential `acr` claim request accepts (OIDC Core §5.5.1.1), if any. */
function essentialAcrValues(claims: unknown): string[] | undefined {
  if (typeof claims !== 'string' || claims === '') return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(claims);
  } catch {
    return undefined; // oidc-provider rejects a malformed claims parameter itself
  }
  for (const member of ['id_token', 'userinfo']) {
    const acr = (parsed as Record<string, Record<string, { essential?: unknown; value?: unknown; values?: unknown }> | undefined> | null)?.[member]?.acr;
    if (acr?.essential !== true) continue;
    if (typeof acr.value === 'string') return [acr.value];
    if (Array.isArray(acr.values)) return acr.values.filter((v): v is string => typeof v === 'string');
  }
  return undefined;
}

/**
 * The level a request needs (DESIGN §3): SCA when it carries authorization_details or
 * asks for payments, or when its acr_values accept only SCA. acr_values is enforced, not
 * a preference: the weakest level it lists is the minimum. So is an essential `acr` claim.
 */
export function requiredAcr(request: LevelRequest): typeof ACR_SCA | typeof ACR_CA {
  const details = request.authorization_details;
  if (details !== undefined && details !== null && details !== '' && details !== '[]') return ACR_SCA;
  const scopes = typeof request.scope === 'string' ? request.scope.split(' ') : [];
  if (scopes.includes('payments')) return ACR_SCA;
  const acrValues = typeof request.acr_values === 'string' ? request.acr_values.split(' ').filter(Boolean) : [];
  if (acrValues.length > 0 && !acrValues.includes(ACR_CA)) return ACR_SCA;
  const essential = essentialAcrValues(request.claims);
  if (essential !== undefined && essential.length > 0 && !essential.includes(ACR_CA)) return ACR_SCA;
  return ACR_CA;
}

export function satisfies(sessionAcr: unknown, required: string): boolean {
  return required === ACR_CA ? sessionAcr === ACR_CA || sessionAcr === ACR_SCA : sessionAcr === ACR_SCA;
}
