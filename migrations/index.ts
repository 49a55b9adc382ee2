import type { Migration } from 'kysely/migration';

import * as m0001 from './0001_initial.js';

/** Every migration, in order. Names are frozen once shipped. */
export const migrations: Readonly<Record<string, Migration>> = Object.freeze({
  '0001_initial': m0001,
});
