/**
 * The counters services report to (implemented by http/metrics.ts with prom-client).
 * Declared here so services depend on nothing above them.
 */
interface Counter<L extends string, V extends string = string> {
  inc(labels: Record<L, V>, value?: number): void;
}

export interface ServiceCounters {
  readonly counters: {
    readonly signIns: Counter<'outcome', 'success' | 'failure' | 'throttled'>;
    readonly locks: Counter<'permanent', 'true' | 'false'>;
    readonly sca: Counter<'outcome', 'success' | 'failure' | 'throttled' | 'enrolment_required'>;
    readonly consents: Counter<'status', 'authorised' | 'rejected' | 'revoked' | 'consumed' | 'expired'>;
    readonly credentialStuffing: Counter<'kind'>;
  };
}
