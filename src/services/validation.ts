import { ValidationError } from './errors.js';

/** Rejects NUL, other C0/C1 controls (except tab/newline where allowed) and lone surrogates. */
export function assertCleanText(field: string, value: string, maxLength: number, { multiline = false } = {}): string {
  if (!value.isWellFormed()) throw new ValidationError('INVALID_TEXT', `${field} is not well-formed Unicode`);
  const controls = multiline ? /[\u0000-\u0008\u000B-\u001F\u007F-\u009F]/ : /[\u0000-\u001F\u007F-\u009F]/;
  if (controls.test(value)) throw new ValidationError('INVALID_TEXT', `${field} contains control characters`);
  if (value.length > maxLength) throw new ValidationError('INVALID_TEXT', `${field} is longer than ${maxLength} characters`);
  return value;
}

/** ISO 13616 IBAN: country code, check digits, up to 30 alphanumerics, valid mod-97 checksum. */
export function isValidIban(value: string): boolean {
  const iban = value.replace(/ /g, '').toUpperCase();
  if (!/^[A-Z]{2}\d{2}[A-Z0-9]{11,30}$/.test(iban)) return false;
  const rearranged = iban.slice(4) + iban.slice(0, 4);
  let remainder = 0;
  for (const ch of rearranged) {
    const digits = /\d/.test(ch) ? ch : String(ch.charCodeAt(0) - 55);
    for (const d of digits) remainder = (remainder * 10 + Number(d)) % 97;
  }
  return remainder === 1;
}

export function normaliseIban(value: string): string {
  return value.replace(/ /g, '').toUpperCase();
}

/** Text PostgreSQL can store and compare: well-formed Unicode without NUL. */
export function isStorableText(value: string): boolean {
  return value.isWellFormed() && !value.includes('\u0000');
}

/** Nesting a stored JSON value may have (client metadata, claims and authorization details are shallow). */
const MAX_STORABLE_JSON_DEPTH = 32;

/**
 * Whether a parsed JSON value can be stored as jsonb: every string and every member name
 * is storable text (PostgreSQL refuses \u0000 and lone surrogates in jsonb with an error),
 * nested at most 32 deep (deeper is refused here rather than exhaust a stack).
 */
export function isStorableJson(value: unknown, depth = 0): boolean {
  if (typeof value === 'string') return isStorableText(value);
  if (value === null || typeof value !== 'object') return true;
  if (depth >= MAX_STORABLE_JSON_DEPTH) return false;
  if (Array.isArray(value)) return value.every((item) => isStorableJson(item, depth + 1));
  return Object.entries(value).every(([name, item]) => isStorableText(name) && isStorableJson(item, depth + 1));
}

/**
 * Text fit for an OAuth error_description (RFC 6749 §5.2: %x20-21 / %x23-5B / %x5D-7E):
 * double quotes become single quotes, a backslash a slash, anything else outside printable
 * ASCII a question mark. Messages that quote request content go through this.
 */
export function oauthErrorText(message: string): string {
  return message.replace(/"/g, "'").replace(/\\/g, '/').replace(/[^\x20-\x7e]/g, '?');
}

/** A request parameter PostgreSQL can store: JSON-valued ones (claims, authorization_details) parsed. */
export function isStorableParam(value: unknown): boolean {
  if (typeof value !== 'string') return isStorableJson(value);
  if (!isStorableText(value)) return false;
  if (!/^\s*[[{]/.test(value)) return true;
  try {
    return isStorableJson(JSON.parse(value));
  } catch (error) {
    if (error instanceof RangeError) return false; // nested beyond what can be parsed
    return true; // not JSON: stored as the (storable) string it is
  }
}
