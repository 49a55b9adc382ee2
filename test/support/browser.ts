import { parse, type HTMLElement } from 'node-html-parser';
import { CookieJar } from 'tough-cookie';

/**
 * A minimal browser for plain HTML forms: a real cookie jar (tough-cookie), manual
 * redirects, and form submission by CSS selector, the way a person or a conformance
 * harness drives our pages (DESIGN §3 names the fields).
 */
export interface Page {
  readonly url: string;
  readonly status: number;
  readonly html: string;
  readonly document: HTMLElement;
  readonly headers: Headers;
}

export class FormBrowser {
  readonly jar = new CookieJar();
  readonly #fetch: typeof fetch;

  /** `fetchImpl` lets a test talk TLS with its own CA (an undici Agent). */
  constructor(fetchImpl: typeof fetch = fetch) {
    this.#fetch = fetchImpl;
  }

  async request(url: string, init: RequestInit = {}): Promise<Response> {
    const cookie = await this.jar.getCookieString(url);
    const headers = new Headers(init.headers);
    if (cookie) headers.set('cookie', cookie);
    headers.set('accept', 'text/html');
    const response = await this.#fetch(url, { ...init, headers, redirect: 'manual' });
    for (const setCookie of response.headers.getSetCookie()) await this.jar.setCookie(setCookie, url);
    return response;
  }

  /**
   * Follows redirects while they stay on `origin`; returns the page reached, or the first
   * URL outside it (the client's redirect_uri) as `leftTo`.
   */
  async navigate(url: string, init: RequestInit = {}, origin = new URL(url).origin): Promise<{ page?: Page; leftTo?: string }> {
    let response = await this.request(url, init);
    let current = url;
    for (let hops = 0; response.status >= 300 && response.status < 400; hops += 1) {
      if (hops > 10) throw new Error('too many redirects');
      const next = new URL(response.headers.get('location') ?? '', current).toString();
      if (new URL(next).origin !== origin) return { leftTo: next };
      current = next;
      response = await this.request(current);
    }
    const html = await response.text();
    return { page: { url: current, status: response.status, html, document: parse(html), headers: response.headers } };
  }

  /** Submits the form containing `submitter` (or the form itself) with its hidden inputs plus `fields`. */
  async submit(page: Page, formSelector: string, fields: Record<string, string | string[]>, submitter?: { name: string; value: string }): Promise<{ page?: Page; leftTo?: string }> {
    const form = page.document.querySelector(formSelector);
    if (form === null) throw new Error(`no form ${formSelector} on ${page.url} (${page.status}): ${page.document.querySelector("main")?.text.trim().slice(0, 300)}`);
    const body = new URLSearchParams();
    for (const input of form.querySelectorAll('input[type=hidden]')) body.append(input.getAttribute('name') ?? '', input.getAttribute('value') ?? '');
    for (const [name, value] of Object.entries(fields)) {
      for (const item of Array.isArray(value) ? value : [value]) body.append(name, item);
    }
    if (submitter) body.append(submitter.name, submitter.value);
    const action = new URL(form.getAttribute('action') ?? page.url, page.url).toString();
    return this.navigate(action, {
      method: 'POST',
      body: body.toString(),
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    }, new URL(page.url).origin);
  }
}

export function requirePage(result: { page?: Page; leftTo?: string }): Page {
  if (result.page === undefined) throw new Error(`expected a page, left to ${result.leftTo}`);
  return result.page;
}
