import { readFileSync } from 'node:fs';
import { createServer as createHttpServer, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';

import type { Config } from '../config.js';

/**
 * The public listener: HTTP, or HTTPS when TLS_CERT_FILE/TLS_KEY_FILE are set. With
 * TLS_CLIENT_CA_FILE it asks for client certificates but lets the handshake succeed
 * without one or with an unverified one: oidc-provider decides per client (tls_client_auth
 * needs a chain to the CA, self_signed_tls_client_auth a registered certificate).
 */
export function createPublicServer(config: Config): Server {
  const server = config.tls === undefined
    ? createHttpServer()
    : createHttpsServer({
      cert: readFileSync(config.tls.certFile),
      key: readFileSync(config.tls.keyFile),
      minVersion: 'TLSv1.2',
      ...(config.tls.clientCaFile === undefined ? {} : { ca: readFileSync(config.tls.clientCaFile), requestCert: true, rejectUnauthorized: false }),
    });
  // Bounds against slow clients (slowloris): headers, whole request, idle keep-alive.
  server.headersTimeout = 10_000;
  server.requestTimeout = 30_000;
  server.keepAliveTimeout = 5_000;
  return server;
}
