/**
 * Jest runs tests in a vm context whose Object/Array differ from the main realm's,
 * while Node's structuredClone builds its result in the main realm. oidc-provider checks
 * cloned client metadata (jwks) with prototype comparisons, which then fail *only under
 * jest* ("client JSON Web Key Set is invalid"; jestjs/jest#14074). Re-creating cloned
 * plain objects and arrays in the test realm restores production behaviour.
 */
import { runInThisContext } from 'node:vm';

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

/**
 * Jest runs a test file in a vm context, but Node's fetch registers its global dispatcher
 * (undici's Agent) on the main realm's globalThis. oidc-provider builds its SSRF-protected
 * agent (no loopback or private addresses for jwks_uri and other outbound fetches) from
 * that dispatcher's class, looked up on *this* realm's globalThis: under jest it finds
 * none and silently fetches unprotected ("failed to setup SSRF protection"). Sharing the
 * main realm's dispatcher restores production behaviour. Runs for every test file (jest setupFiles),
 * before any provider exists (oidc-provider decides once per module instance).
 */
function shareMainRealmFetchDispatcher(): void {
  const main = runInThisContext('globalThis') as Record<PropertyKey, unknown>;
  void main.Response; // Node loads undici, and sets the global dispatcher, lazily
  const here = globalThis as unknown as Record<PropertyKey, unknown>;
  for (const version of [1, 2]) {
    const symbol = Symbol.for(`undici.globalDispatcher.${version}`);
    if (here[symbol] === undefined && main[symbol] !== undefined) here[symbol] = main[symbol];
  }
}

shareMainRealmFetchDispatcher();
