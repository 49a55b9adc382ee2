/** OpenAPI 3.1 description of the admin API (src/admin/app.ts); a test keeps the two in step. */
const error = { $ref: '#/components/responses/Error' };
const grantId = { name: 'grant_id', in: 'path', required: true, schema: { type: 'string', maxLength: 200 } };
const consent = { $ref: '#/components/schemas/Consent' };
const clientId = { name: 'client_id', in: 'path', required: true, schema: { type: 'string', maxLength: 200 } };
const username = { name: 'username', in: 'path', required: true, schema: { type: 'string', maxLength: 64 } };

export const ADMIN_OPENAPI = Object.freeze({
  openapi: '3.1.0',
  info: { title: 'Portcullis admin API', version: '1' },
  servers: [{ url: '/admin/v1' }],
  security: [{ apiKey: [] }],
  paths: {
    '/openapi.json': { get: { summary: 'This document', security: [], responses: { 200: { description: 'OpenAPI document' } } } },
    '/consents': {
      get: {
        summary: 'List consents by customer or client (admin:read)',
        parameters: [
          { name: 'user_id', in: 'query', schema: { type: 'string', format: 'uuid' } },
          { name: 'client_id', in: 'query', schema: { type: 'string' } },
        ],
        responses: { 200: { description: 'Consents', content: { 'application/json': { schema: { type: 'object', properties: { consents: { type: 'array', items: consent } } } } } }, 400: error, 401: error, 403: error },
      },
    },
    '/consents/{grant_id}': {
      get: { summary: 'One consent (admin:read)', parameters: [grantId], responses: { 200: { description: 'Consent', content: { 'application/json': { schema: consent } } }, 401: error, 403: error, 404: error } },
    },
    '/consents/{grant_id}/consume': {
      post: { summary: 'Mark a payment consent consumed, exactly once (admin:write)', parameters: [grantId], responses: { 200: { description: 'Consumed' }, 401: error, 403: error, 404: error, 409: error } },
    },
    '/consents/{grant_id}/revoke': {
      post: { summary: 'Revoke a consent (admin:write)', parameters: [grantId], responses: { 200: { description: 'Revoked' }, 401: error, 403: error, 404: error, 409: error } },
    },
    '/clients': {
      get: { summary: 'List clients, by client_id (admin:read)', parameters: [{ name: 'after', in: 'query', schema: { type: 'string' } }, { name: 'limit', in: 'query', schema: { type: 'integer', minimum: 1, maximum: 200 } }], responses: { 200: { description: 'Clients and the next cursor' }, 400: error, 401: error, 403: error } },
    },
    '/clients/{client_id}': {
      get: { summary: 'One client, without secrets (admin:read)', parameters: [clientId], responses: { 200: { description: 'Client' }, 401: error, 403: error, 404: error } },
    },
    '/clients/{client_id}/disable': {
      post: { summary: 'Disable a client: it can no longer authenticate; its grants and tokens are removed (admin:write)', parameters: [clientId], responses: { 200: { description: 'Client' }, 401: error, 403: error, 404: error } },
    },
    '/clients/{client_id}/enable': {
      post: { summary: 'Enable a disabled client (admin:write)', parameters: [clientId], responses: { 200: { description: 'Client' }, 401: error, 403: error, 404: error } },
    },
    '/users': {
      get: { summary: 'List customers, by username; no secrets (admin:read)', parameters: [{ name: 'after', in: 'query', schema: { type: 'string' } }, { name: 'limit', in: 'query', schema: { type: 'integer', minimum: 1, maximum: 200 } }], responses: { 200: { description: 'Customers and the next cursor' }, 400: error, 401: error, 403: error } },
    },
    '/users/{username}': {
      get: { summary: 'One customer: enrolment and lock state; no secrets (admin:read)', parameters: [username], responses: { 200: { description: 'Customer' }, 400: error, 401: error, 403: error, 404: error } },
    },
    '/users/{username}/reset-totp': {
      post: { summary: 'Remove the customer\'s authenticator and recovery codes (admin:write)', parameters: [username], responses: { 200: { description: 'Reset' }, 401: error, 403: error, 404: error } },
    },
    '/audit-events': {
      get: {
        summary: 'Audit events, newest first (admin:read)',
        parameters: ['type', 'user_id', 'client_id', 'before'].map((name) => ({ name, in: 'query', schema: { type: 'string' } })).concat([{ name: 'limit', in: 'query', schema: { type: 'integer', minimum: 1, maximum: 200 } as never }]),
        responses: { 200: { description: 'Events and the next cursor' }, 400: error, 401: error, 403: error },
      },
    },
    '/users/{username}/unlock': {
      post: { summary: 'Lift a sign-in block (admin:write)', parameters: [username], responses: { 200: { description: 'Unlocked' }, 401: error, 403: error, 404: error } },
    },
    '/keys': { get: { summary: 'Signing keys and their states (admin:read)', responses: { 200: { description: 'Keys' }, 401: error, 403: error } } },
    '/keys/rotate': { post: { summary: 'Publish new signing keys (admin:write)', responses: { 200: { description: 'Published keys' }, 401: error, 403: error } } },
    '/audit/verify': { get: { summary: 'Verify the audit hash chain (admin:read)', responses: { 200: { description: '{ok, events, brokenAt?}' }, 401: error, 403: error } } },
  },
  components: {
    securitySchemes: { apiKey: { type: 'http', scheme: 'bearer', description: 'An API key from `portcullis apikey create`' } },
    responses: {
      Error: {
        description: 'Error envelope',
        content: { 'application/json': { schema: { type: 'object', required: ['error'], properties: { error: { type: 'object', required: ['code', 'message', 'request_id'], properties: { code: { type: 'string' }, message: { type: 'string' }, request_id: { type: 'string' } } } } } } },
      },
    },
    schemas: {
      Consent: {
        type: 'object',
        properties: {
          grant_id: { type: 'string' }, client_id: { type: 'string' }, user_id: { type: 'string' },
          type: { enum: ['account_information', 'payment_initiation', 'mixed', 'scopes'] }, scopes: { type: 'string' },
          authorization_details: { type: 'array', items: { type: 'object' } },
          status: { enum: ['authorised', 'rejected', 'revoked', 'expired', 'consumed'] },
          created_at: { type: 'string', format: 'date-time' }, expires_at: { type: ['string', 'null'], format: 'date-time' }, version: { type: 'integer' },
        },
      },
    },
  },
});
