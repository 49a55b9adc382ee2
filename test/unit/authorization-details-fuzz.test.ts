import { expect, test } from '@jest/globals';
import fc from 'fast-check';

import { authorizationDetailsTarget } from '../fuzz/targets.js';

/**
 * Property-based fuzzing of the authorization_details validator (issue #9 point 5), a
 * quick deterministic slice (scripts/fuzz.ts runs ≥ 10,000 cases): every generated valid
 * detail is accepted, every detail with an unknown member, a missing or mistyped member, a
 * control character, a prototype-pollution key… is refused with InvalidDetailsError —
 * never another exception — and what is accepted validates again to itself.
 */
test('authorization_details: valid structures accepted, mutations refused, nothing else thrown', async () => {
  const validator = await authorizationDetailsTarget.setup(undefined);
  await fc.assert(fc.asyncProperty(authorizationDetailsTarget.arbitrary, async (input) => {
    const outcome = await authorizationDetailsTarget.property(validator, input);
    expect(outcome.problems).toEqual([]);
  }), { seed: 20261109, numRuns: 1000, examples: (authorizationDetailsTarget.regressions ?? []).map((input) => [input] as [typeof input]) });
});
