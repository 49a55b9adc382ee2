import { afterAll, afterEach, beforeAll, describe, expect, test } from '@jest/globals';

import { startTestApp, type TestApp } from '../support/app.js';
import { FormBrowser } from '../support/browser.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';
import {
  authorizationParams, authorizationUrl, authorizeCode, countModels, countTokens, frontChannel, parRequest, pushValid, redeemCode,
  registerCraftedClient, dpopKeyPair, TestClock, type CraftedClient, type FrontChannel, type KeyPair,
} from '../support/fapi-crafting.js';
import { createCustomer, REDIRECT_URI, signInAndConsent, type Customer } from '../support/tpp.js';

/**
 * FAPI 2.0 conformance, authorization endpoint negatives: PAR is the only way in, PKCE S256
 * is mandatory, redirect URIs are exact, only `code` is a response type, and a pushed
 * request_uri is single-use, short-lived and bound to the client that pushed it.
 */
let database: TestDatabase;
let app: TestApp;
let tpp: CraftedClient;
let other: CraftedClient;
let alice: Customer;
let dpopKeys: KeyPair;
const clock = new TestClock();

beforeAll(async () => {
  database = await createTestDatabase();
  app = await startTestApp(database, {}, clock.now);
  tpp = await registerCraftedClient(app);
  other = await registerCraftedClient(app, { name: 'Other TPP' });
  alice = await createCustomer(app);
  dpopKeys = await dpopKeyPair();
});

afterEach(() => clock.reset());

afterAll(async () => {
  await app?.close();
  await database?.drop();
});

/** An error page on our own origin: no redirect at all, so nothing reaches the client. */
function expectErrorPage(result: FrontChannel, error: string): void {
  expect(result.location).toBeNull();
  expect(result.status).toBe(400);
  expect(result.html).toContain(`${error}:`);
}

/** A valid request_uri: the server sends the browser on to its own sign-in interaction. */
function expectSignInStarted(result: FrontChannel): void {
  expect(result.status).toBe(303);
  expect(new URL(result.location ?? '', app.url).href).toMatch(new RegExp(`^${app.url}/interaction/`));
}

describe('authorization requests must be pushed (PAR)', () => {
  test('a plain front-channel request without PAR is refused on an error page, never redirected to the client', async () => {
    const before = await countModels(app, ['AuthorizationCode', 'Interaction']);
    const { params } = authorizationParams();
    const url = new URL('/auth', app.url);
    url.searchParams.set('client_id', tpp.clientId);
    for (const [name, value] of Object.entries(params)) url.searchParams.set(name, value);

    const result = await frontChannel(url);
    // Unauthenticated front-channel parameters are never trusted: no redirect to the client.
    expectErrorPage(result, 'invalid_request');
    expect(await countModels(app, ['AuthorizationCode', 'Interaction'])).toEqual(before);
  });
});

describe('PKCE', () => {
  test('PAR without code_challenge: invalid_request, nothing stored', async () => {
    const before = await countModels(app, ['PushedAuthorizationRequest']);
    const { params } = authorizationParams({ code_challenge: undefined, code_challenge_method: undefined });
    const response = await parRequest(app, tpp, params);
    expect(response.status).toBe(400);
    expect(response.body.error).toBe('invalid_request');
    expect(response.body.request_uri).toBeUndefined();
    expect(await countModels(app, ['PushedAuthorizationRequest'])).toEqual(before);
  });

  test('PAR with code_challenge_method=plain: invalid_request, nothing stored', async () => {
    const before = await countModels(app, ['PushedAuthorizationRequest']);
    const { params, codeVerifier } = authorizationParams({ code_challenge_method: 'plain' });
    const response = await parRequest(app, tpp, { ...params, code_challenge: codeVerifier });
    expect(response.status).toBe(400);
    expect(response.body.error).toBe('invalid_request');
    expect(response.body.request_uri).toBeUndefined();
    expect(await countModels(app, ['PushedAuthorizationRequest'])).toEqual(before);
  });

  test('redeeming with a code_verifier that does not match the challenge: invalid_grant, no tokens', async () => {
    const authorized = await authorizeCode(app, tpp, alice);
    const before = await countTokens(app);
    const response = await redeemCode(app, tpp, { code: authorized.code, codeVerifier: authorizationParams().codeVerifier }, dpopKeys);
    expect(response.status).toBe(400);
    expect(response.body.error).toBe('invalid_grant');
    expect(response.body.access_token).toBeUndefined();
    expect(await countTokens(app)).toBe(before);
  });
});

describe('redirect_uri', () => {
  test('an unregistered redirect_uri at PAR is refused, nothing stored', async () => {
    const before = await countModels(app, ['PushedAuthorizationRequest']);
    const { params } = authorizationParams({ redirect_uri: 'https://attacker.example/callback' });
    const response = await parRequest(app, tpp, params);
    expect(response.status).toBe(400);
    expect(response.body.error).toBe('invalid_request');
    expect(response.body.request_uri).toBeUndefined();
    expect(await countModels(app, ['PushedAuthorizationRequest'])).toEqual(before);
  });

  test('a redirect_uri at /token other than the authorized one: invalid_grant, no tokens', async () => {
    const authorized = await authorizeCode(app, tpp, alice);
    const before = await countTokens(app);
    const response = await redeemCode(app, tpp, authorized, dpopKeys, { redirect_uri: `${REDIRECT_URI}/altered` });
    expect(response.status).toBe(400);
    expect(response.body.error).toBe('invalid_grant');
    expect(response.body.access_token).toBeUndefined();
    expect(await countTokens(app)).toBe(before);
  });
});

describe('response types other than code', () => {
  test.each(['token', 'code id_token'])('response_type=%s at PAR: unsupported_response_type, nothing stored', async (responseType) => {
    const before = await countModels(app, ['PushedAuthorizationRequest']);
    const { params } = authorizationParams({ response_type: responseType, nonce: 'n-0S6_WzA2Mj' });
    const response = await parRequest(app, tpp, params);
    expect(response.status).toBe(400);
    expect(response.body.error).toBe('unsupported_response_type');
    expect(response.body.request_uri).toBeUndefined();
    expect(await countModels(app, ['PushedAuthorizationRequest'])).toEqual(before);
  });
});

describe('request_uri', () => {
  test('a request_uri is single-use: after a completed authorization its second use is refused on an error page', async () => {
    const authorized = await authorizeCode(app, tpp, alice);
    expect(authorized.callback.searchParams.get('state')).toBe(authorized.state);
    const before = await countModels(app, ['AuthorizationCode']);
    expectErrorPage(await frontChannel(authorized.url), 'invalid_request_uri');
    expect(await countModels(app, ['AuthorizationCode'])).toEqual(before);

    // …also for a browser that holds a signed-in session at the bank.
    const browser = new FormBrowser();
    await signInAndConsent(await pushValid(app, tpp), alice, { browser });
    const codes = await countModels(app, ['AuthorizationCode']);
    const reused = await browser.navigate(authorized.url.toString());
    expect(reused.leftTo).toBeUndefined();
    expect(reused.page?.status).toBe(400);
    expect(reused.page?.html).toContain('invalid_request_uri:');
    expect(await countModels(app, ['AuthorizationCode'])).toEqual(codes);
  });

  test('an expired request_uri (more than 90 s after PAR) is refused on an error page', async () => {
    const pushed = await pushValid(app, tpp);
    clock.advance(30);
    expectSignInStarted(await frontChannel(pushed.url));
    clock.advance(61);
    expectErrorPage(await frontChannel(pushed.url), 'invalid_request_uri');
  });

  test('a request_uri presented with another client\'s client_id is refused on an error page', async () => {
    const before = await countModels(app, ['AuthorizationCode', 'Interaction']);
    const pushed = await pushValid(app, tpp);
    const result = await frontChannel(authorizationUrl(app, other.clientId, pushed.requestUri));
    expectErrorPage(result, 'invalid_request_object');
    expect(result.html).toContain('request client_id must equal the one in request parameters');
    expect(await countModels(app, ['AuthorizationCode', 'Interaction'])).toEqual(before);
    // the attempt does not burn the request_uri for the client that pushed it
    expectSignInStarted(await frontChannel(pushed.url));
  });
});
