/**
 * Errors services raise for their callers (CLI, admin API, pages): `code` is a stable
 * UPPER_SNAKE identifier, `message` is safe to show (it never contains a secret).
 */
export abstract class ServiceError extends Error {
  readonly code: string;

  constructor(code: string, message: string) {
    super(message);
    this.code = code;
  }
}

/** The input is malformed or breaks a rule (→ 400). */
export class ValidationError extends ServiceError {
  override readonly name = 'ValidationError';
}

/** The thing asked for does not exist (→ 404). */
export class NotFoundError extends ServiceError {
  override readonly name = 'NotFoundError';
}

/** The request contradicts existing state, e.g. a name already taken (→ 409). */
export class ConflictError extends ServiceError {
  override readonly name = 'ConflictError';
}
