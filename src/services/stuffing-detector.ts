/**
 * Credential-stuffing signals from failed sign-ins: one IP address failing for many
 * usernames, or one username failing from many IP addresses, within a window. Each
 * signal fires once per key and window (the caller audits it and counts it). In memory,
 * per instance, bounded: the oldest keys are dropped beyond `maxKeys`.
 */
export type StuffingKind = 'many_usernames_one_ip' | 'one_username_many_ips';

export interface StuffingSignal {
  readonly kind: StuffingKind;
  /** the IP (many usernames) or the username (many IPs) */
  readonly key: string;
  readonly distinct: number;
}

export interface StuffingThresholds {
  readonly usernamesPerIp: number;
  readonly ipsPerUsername: number;
  readonly windowSeconds: number;
  readonly maxKeys?: number;
}

interface Window { readonly seen: Map<string, number>; alerted: boolean }

export class StuffingDetector {
  readonly #thresholds: StuffingThresholds;
  readonly #byIp = new Map<string, Window>();
  readonly #byUsername = new Map<string, Window>();

  constructor(thresholds: StuffingThresholds) {
    this.#thresholds = thresholds;
  }

  /** Records one failure; returns the signals it raised (usually none). */
  recordFailure(ip: string, username: string, now: Date): StuffingSignal[] {
    const signals: StuffingSignal[] = [];
    const a = this.#observe(this.#byIp, ip, username, now, this.#thresholds.usernamesPerIp);
    if (a !== undefined) signals.push({ kind: 'many_usernames_one_ip', key: ip, distinct: a });
    const b = this.#observe(this.#byUsername, username, ip, now, this.#thresholds.ipsPerUsername);
    if (b !== undefined) signals.push({ kind: 'one_username_many_ips', key: username, distinct: b });
    return signals;
  }

  #observe(windows: Map<string, Window>, key: string, value: string, now: Date, threshold: number): number | undefined {
    const cutoff = now.getTime() - this.#thresholds.windowSeconds * 1000;
    let window = windows.get(key);
    if (window === undefined) {
      if (windows.size >= (this.#thresholds.maxKeys ?? 10_000)) windows.delete(windows.keys().next().value as string);
      window = { seen: new Map(), alerted: false };
      windows.set(key, window);
    }
    for (const [seenValue, at] of window.seen) if (at < cutoff) window.seen.delete(seenValue);
    if (window.seen.size === 0) window.alerted = false;
    window.seen.delete(value);
    window.seen.set(value, now.getTime());
    if (!window.alerted && window.seen.size >= threshold) {
      window.alerted = true;
      return window.seen.size;
    }
    return undefined;
  }
}
