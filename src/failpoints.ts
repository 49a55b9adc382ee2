/**
 * Test-only crash points. With PORTCULLIS_FAILPOINTS=name[,name…] in its environment the
 * process kills itself (SIGKILL: no cleanup, no flush) when it reaches a named point, so
 * the reliability tests can check what survives a crash at exactly that step. Unset (as
 * always outside those tests; config.ts refuses it when NODE_ENV=production) a failpoint
 * is one Set lookup on an empty set.
 */
export const FAILPOINTS = [
  /** an authorization code was consumed; its tokens are not saved yet */
  'code.consumed',
  /** the consent's grant is saved; the consent (and its audit event) is not recorded yet */
  'consent.grant-saved',
  /** the consent and its audit event are committed; the authorization is not finished */
  'consent.recorded',
  /** a registered client (and its audit event) is committed; the response is not sent */
  'registration.client-saved',
  /** an audit append holds the chain lock and has read the last hash; nothing inserted yet */
  'audit.appending',
] as const;
export type Failpoint = typeof FAILPOINTS[number];

const armed: ReadonlySet<string> = new Set((process.env.PORTCULLIS_FAILPOINTS ?? '').split(',').filter((name) => name !== ''));

export function failpoint(name: Failpoint): void {
  if (armed.has(name)) process.kill(process.pid, 'SIGKILL');
}
