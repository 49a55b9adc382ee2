/**
 * Ceiling for the token endpoint: oidc-provider with its default in-memory adapter serving
 * the same grant Portcullis is measured on (client credentials, private_key_jwt with ES256,
 * DPoP-bound opaque access token). Nothing persisted, no policy of ours.
 * Env: PORT, CLIENT_ID, CLIENT_JWK (the client's public JWK, JSON), SIGNING_JWK (private, JSON).
 */
import Provider from 'oidc-provider';

const port = Number(process.env.PORT);
const issuer = `http://127.0.0.1:${port}`;
const provider = new Provider(issuer, {
  clients: [{
    client_id: process.env.CLIENT_ID ?? 'bench',
    token_endpoint_auth_method: 'private_key_jwt',
    token_endpoint_auth_signing_alg: 'ES256',
    jwks: { keys: [JSON.parse(process.env.CLIENT_JWK ?? '{}')] },
    grant_types: ['client_credentials'],
    response_types: [],
    redirect_uris: [],
    scope: 'accounts',
    dpop_bound_access_tokens: true,
    id_token_signed_response_alg: 'ES256',
  }],
  jwks: { keys: [JSON.parse(process.env.SIGNING_JWK ?? '{}')] },
  scopes: ['accounts'],
  clockTolerance: 10,
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    introspection: { enabled: true },
    dPoP: { enabled: true },
  },
  enabledJWA: { clientAuthSigningAlgValues: ['ES256'], dPoPSigningAlgValues: ['ES256'], idTokenSigningAlgValues: ['ES256'] },
});
provider.on('server_error', (_ctx, error) => { process.stderr.write(`server_error: ${String(error)}\n`); });
const server = provider.listen(port, '127.0.0.1');
process.on('SIGTERM', () => { server.close(() => process.exit(0)); });
