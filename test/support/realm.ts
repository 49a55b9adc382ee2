/**
 * Jest runs tests in a vm context whose Object/Array differ from the main realm's,
 * while Node's structuredClone builds its result in the main realm. oidc-provider checks
 * cloned client metadata (jwks) with prototype comparisons, which then fail *only under
 * jest* ("client JSON Web Key Set is invalid"; jestjs/jest#14074). Re-creating cloned
 * plain objects and arrays in the test realm restores production behaviour.
 */
const nativeClone = globalThis.structuredClone;

function intoThisRealm(value: unknown): unknown {
  if (Array.isArray(value)) return Array.from(value, intoThisRealm);
  if (value !== null && typeof value === 'object') {
    const proto = Object.getPrototypeOf(value) as object | null;
    if (proto === null || (proto as { constructor?: { name?: string } }).constructor?.name === 'Object') {
      const out: Record<string, unknown> = {};
      for (const [key, item] of Object.entries(value)) {
        Object.defineProperty(out, key, { value: intoThisRealm(item), enumerable: true, writable: true, configurable: true });
      }
      return out;
    }
  }
  return value;
}

globalThis.structuredClone = ((value: unknown, options?: Parameters<typeof structuredClone>[1]) => intoThisRealm(nativeClone(value, options))) as typeof structuredClone;
