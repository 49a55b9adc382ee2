import type { Migration } from 'kysely/migration';

import * as m0001 from './0001_initial.js';
import * as m0002 from './0002_sca_and_audit.js';
import * as m0003 from './0003_payment_sca.js';
import * as m0004 from './0004_consents.js';
import * as m0005 from './0005_api_keys.js';
import * as m0006 from './0006_client_change_notifications.js';

/** Every migration, in order. Names are frozen once shipped. */
export const migrations: Readonly<Record<string, Migration>> = Object.freeze({
  '0001_initial': m0001,
  '0002_sca_and_audit': m0002,
  '0003_payment_sca': m0003,
  '0004_consents': m0004,
  '0005_api_keys': m0005,
  '0006_client_change_notifications': m0006,
});
