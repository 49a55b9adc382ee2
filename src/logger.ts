import { pino, type Logger } from 'pino';

/**
 * JSON logs on stdout. Redaction paths cover every place a secret could travel in a
 * log object; services never log request bodies.
 */
export function createLogger(level: string): Logger {
  return pino({
    level,
    base: undefined,
    redact: {
      paths: [
        'req.headers.authorization', 'req.headers.cookie', 'req.headers.dpop', 'res.headers["set-cookie"]',
        '*.password', '*.client_secret', '*.client_assertion', '*.code', '*.code_verifier', '*.otp',
        '*.access_token', '*.refresh_token', '*.token', '*.secret', '*.key',
      ],
      censor: '[redacted]',
    },
  });
}
