/**
 * Portcullis resource-server kit (`portcullis/resource-server`): what a bank's account and
 * payment APIs put in front of their handlers. It talks to Portcullis over HTTP only
 * (RFC 7662 introspection) and imports nothing else from Portcullis.
 */
export {
  IntrospectionClient, IntrospectionUnavailableError, parseIntrospectionResponse,
  type AuthorizationDetail, type IntrospectionClientOptions, type IntrospectionResult, type TokenConfirmation,
} from './introspection.js';
export {
  accessTokenHash, DPOP_ALGS, DpopError, InMemoryReplayCache, normaliseHtu, verifyDpopProof,
  type DpopAlg, type InMemoryReplayCacheOptions, type ReplayCache, type VerifiedDpopProof, type VerifyDpopProofOptions,
} from './dpop.js';
export {
  certificateThumbprint, protect,
  type ConsentType, type ProtectedState, type ProtectOptions, type ResourceConsent,
} from './middleware.js';
