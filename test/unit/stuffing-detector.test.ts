import { expect, test } from '@jest/globals';

import { StuffingDetector } from '../../src/services/stuffing-detector.js';

const t0 = new Date('2030-01-01T00:00:00Z');
const at = (seconds: number) => new Date(t0.getTime() + seconds * 1000);

test('one IP failing for many usernames raises one signal per window', () => {
  const detector = new StuffingDetector({ usernamesPerIp: 3, ipsPerUsername: 100, windowSeconds: 60 });
  expect(detector.recordFailure('10.0.0.1', 'a', at(0))).toEqual([]);
  expect(detector.recordFailure('10.0.0.1', 'a', at(1))).toEqual([]); // the same username again
  expect(detector.recordFailure('10.0.0.1', 'b', at(2))).toEqual([]);
  expect(detector.recordFailure('10.0.0.1', 'c', at(3))).toEqual([{ kind: 'many_usernames_one_ip', key: '10.0.0.1', distinct: 3 }]);
  expect(detector.recordFailure('10.0.0.1', 'd', at(4))).toEqual([]); // already alerted in this window
  expect(detector.recordFailure('10.0.0.2', 'e', at(5))).toEqual([]); // another IP counts alone
  // After the window the count starts again.
  expect(detector.recordFailure('10.0.0.1', 'x', at(200))).toEqual([]);
  expect(detector.recordFailure('10.0.0.1', 'y', at(201))).toEqual([]);
  expect(detector.recordFailure('10.0.0.1', 'z', at(202))).toHaveLength(1);
});

test('one username failing from many IPs raises a signal', () => {
  const detector = new StuffingDetector({ usernamesPerIp: 100, ipsPerUsername: 2, windowSeconds: 60 });
  expect(detector.recordFailure('10.0.0.1', 'alice', at(0))).toEqual([]);
  expect(detector.recordFailure('10.0.0.2', 'alice', at(1))).toEqual([{ kind: 'one_username_many_ips', key: 'alice', distinct: 2 }]);
});

test('memory is bounded', () => {
  const detector = new StuffingDetector({ usernamesPerIp: 1000, ipsPerUsername: 1000, windowSeconds: 60, maxKeys: 10 });
  for (let i = 0; i < 1000; i += 1) detector.recordFailure(`10.0.${i >> 8}.${i & 255}`, `user${i}`, at(i));
  // Only the newest keys are kept; older ones start over rather than growing without limit.
  expect(detector.recordFailure('10.0.0.0', 'user0', at(1001))).toEqual([]);
});
