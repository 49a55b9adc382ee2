/**
 * A rejected request from a caller (CLI, admin API, pages): `code` is a stable
 * UPPER_SNAKE identifier, `message` is safe to show (it never contains a secret).
 */
export class ValidationError extends Error {
  override readonly name = 'ValidationError';
  readonly code: string;

  constructor(code: string, message: string) {
    super(message);
    this.code = code;
  }
}

export class NotFoundError extends Error {
  override readonly name = 'NotFoundError';
  readonly code: string;

  constructor(code: string, message: string) {
    super(message);
    this.code = code;
  }
}

export class ConflictError extends Error {
  override readonly name = 'ConflictError';
  readonly code: string;

  constructor(code: string, message: string) {
    super(message);
    this.code = code;
  }
}
