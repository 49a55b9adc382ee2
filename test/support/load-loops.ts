import { performance } from 'node:perf_hooks';

import * as client from 'openid-client';

/**
 * Closed-loop load for fault tests: each endpoint runs a few workers that call it back to
 * back (with a short pause), and every answer is kept as a timed sample with a verdict, so a
 * test can ask "when was the first 503 after the stop", "was any 2xx served while the
 * database was down", "how long did the slowest answer take".
 */

/** One HTTP answer; status 0 = no answer at all (connection refused, reset, …), body = why. */
export interface Reply {
  readonly status: number;
  readonly headers: Headers;
  readonly body: string;
}

export type Verdict = 'ok' | 'unavailable' | 'wrong';

export interface Sample {
  readonly endpoint: string;
  /** ms on performance.now() */
  readonly start: number;
  readonly end: number;
  readonly status: number;
  readonly verdict: Verdict;
  /** start of the body, kept for wrong answers only */
  readonly detail?: string;
}

export interface Endpoint {
  readonly name: string;
  /** answers only from the database: must be 503 while it is down */
  readonly databaseBacked: boolean;
  readonly workers: number;
  /** a call for worker `index` (workers may each hold their own client) */
  call(index: number): Promise<Reply>;
  /** the answer when everything works */
  ok(reply: Reply): boolean;
  /** the answer when the database is not there (503 in the endpoint's form) */
  unavailable(reply: Reply): boolean;
}

export const now = (): number => performance.now();

const NO_HEADERS = new Headers();

/** fetch → Reply; a failure to get any answer becomes status 0. */
export async function request(url: string, init: RequestInit = {}): Promise<Reply> {
  try {
    const response = await fetch(url, { redirect: 'manual', ...init });
    return { status: response.status, headers: response.headers, body: await response.text() };
  } catch (error) {
    return noAnswer(error);
  }
}

export function noAnswer(error: unknown): Reply {
  const cause = (error as { cause?: { code?: unknown; message?: unknown } }).cause;
  return { status: 0, headers: NO_HEADERS, body: String(cause?.code ?? cause?.message ?? (error as Error).message ?? error) };
}

/**
 * An openid-client configuration whose HTTP exchanges are recorded: `call` runs one
 * openid-client operation and returns the last raw answer (a DPoP nonce retry makes two).
 */
export function recorded(config: client.Configuration): { call(operation: () => Promise<unknown>): Promise<Reply> } {
  let last: Reply | undefined;
  config[client.customFetch] = async (url, options) => {
    const response = await fetch(url, options as RequestInit);
    last = { status: response.status, headers: response.headers, body: await response.clone().text() };
    return response;
  };
  return {
    async call(operation) {
      last = undefined;
      try {
        await operation();
      } catch (error) {
        if (last === undefined) return noAnswer(error);
      }
      return last ?? noAnswer(new Error('no exchange recorded'));
    },
  };
}

export function json(reply: Reply): Record<string, unknown> | undefined {
  try {
    const parsed: unknown = JSON.parse(reply.body);
    return typeof parsed === 'object' && parsed !== null ? parsed as Record<string, unknown> : undefined;
  } catch {
    return undefined;
  }
}

const retryAfter = (reply: Reply) => /^\d+$/.test(reply.headers.get('retry-after') ?? '');

/** RFC 6749 form: {"error":"temporarily_unavailable"} with Retry-After. */
export const oauthUnavailable = (reply: Reply): boolean =>
  reply.status === 503 && retryAfter(reply) && json(reply)?.error === 'temporarily_unavailable';

/** The JSON error envelope: {"error":{"code":"SERVICE_UNAVAILABLE",…}} with Retry-After. */
export const envelopeUnavailable = (reply: Reply): boolean =>
  reply.status === 503 && retryAfter(reply) && (json(reply)?.error as { code?: unknown } | undefined)?.code === 'SERVICE_UNAVAILABLE';

/** The friendly HTML page with Retry-After, nothing technical on it. */
export const pageUnavailable = (reply: Reply): boolean =>
  reply.status === 503 && retryAfter(reply) && (reply.headers.get('content-type') ?? '').startsWith('text/html')
  && reply.body.includes('Temporarily unavailable') && !/server_error|ECONN|postgres|\bat \S+:\d+/i.test(reply.body);

export class LoadLoops {
  readonly samples: Sample[] = [];
  readonly #endpoints: readonly Endpoint[];
  readonly #pauseMs: number;
  #running = false;
  #workers: Promise<void>[] = [];

  constructor(endpoints: readonly Endpoint[], pauseMs = 10) {
    this.#endpoints = endpoints;
    this.#pauseMs = pauseMs;
  }

  get endpoints(): readonly Endpoint[] {
    return this.#endpoints;
  }

  start(): void {
    this.#running = true;
    for (const endpoint of this.#endpoints) {
      for (let index = 0; index < endpoint.workers; index += 1) this.#workers.push(this.#work(endpoint, index));
    }
  }

  /** Stops issuing requests and waits for the ones in flight. */
  async stop(): Promise<void> {
    this.#running = false;
    await Promise.all(this.#workers);
    this.#workers = [];
  }

  async #work(endpoint: Endpoint, index: number): Promise<void> {
    while (this.#running) {
      const start = now();
      const reply = await endpoint.call(index);
      this.samples.push(judge(endpoint, reply, start, now()));
      await new Promise((resolve) => setTimeout(resolve, this.#pauseMs));
    }
  }

  /** Resolves once `condition` holds for the samples (checked every 20 ms), or rejects after `timeoutMs`. */
  async waitFor(description: string, condition: () => boolean, timeoutMs: number): Promise<void> {
    const deadline = now() + timeoutMs;
    while (!condition()) {
      if (now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for: ${description}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  of(endpoint: string, from = -Infinity, to = Infinity): Sample[] {
    return this.samples.filter((s) => s.endpoint === endpoint && s.start >= from && s.end <= to);
  }

  /** The first sample of `endpoint` with `verdict` that started at or after `from`. */
  first(endpoint: string, verdict: Verdict, from: number): Sample | undefined {
    return this.samples.filter((s) => s.endpoint === endpoint && s.verdict === verdict && s.start >= from).sort((a, b) => a.end - b.end)[0];
  }
}

export function judge(endpoint: Endpoint, reply: Reply, start: number, end: number): Sample {
  const verdict: Verdict = endpoint.ok(reply) ? 'ok' : endpoint.unavailable(reply) ? 'unavailable' : 'wrong';
  return { endpoint: endpoint.name, start, end, status: reply.status, verdict, ...(verdict === 'wrong' ? { detail: reply.body.slice(0, 200) } : {}) };
}

export const seconds = (ms: number): number => Math.round(ms) / 1000;
