import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

import { describe, expect, test } from '@jest/globals';
import { Ajv, type ValidateFunction } from 'ajv';
import { parse } from 'yaml';

/**
 * docker-compose.yml and the Dockerfile: the compose file is valid against the Compose
 * Specification schema, and says what a production deployment needs (PostgreSQL, a master
 * key, an https issuer, the admin port on loopback only).
 */

const ROOT = process.cwd();
const COMPOSE_FILE = join(ROOT, 'docker-compose.yml');
const DOCKERFILE = join(ROOT, 'Dockerfile');
const SCHEMA_FILE = join(ROOT, '..', 'shared', 'schemas', 'compose-spec.json');

type Json = Record<string, unknown>;

function isObject(value: unknown): value is Json {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

function object(value: unknown, what: string): Json {
  if (!isObject(value)) throw new Error(`${what}: expected a mapping`);
  return value;
}

function loadSchema(): Json {
  if (!existsSync(SCHEMA_FILE)) {
    throw new Error(`Compose Specification schema not found: looked for ${SCHEMA_FILE} (../shared/schemas/compose-spec.json from the working directory ${ROOT}; run jest from the repository root)`);
  }
  return object(JSON.parse(readFileSync(SCHEMA_FILE, 'utf8')), SCHEMA_FILE);
}

function compileValidator(schema: Json): ValidateFunction {
  // The schema declares draft-07 (validateFormats: false: no format checks, no ajv-formats).
  const ajv = new Ajv({ strict: false, allErrors: true, validateFormats: false });
  // It spells the meta-schema "https://json-schema.org/draft-07/schema", while ajv knows
  // draft-07 as "http://json-schema.org/draft-07/schema#": register the same meta-schema
  // under the spelling used, so the schema itself is still checked against draft-07.
  const declared = schema.$schema;
  if (typeof declared === 'string' && ajv.getSchema(declared) === undefined) {
    if (!/json-schema\.org\/draft-07\/schema#?$/.test(declared)) {
      throw new Error(`${SCHEMA_FILE}: unexpected $schema ${declared} (expected draft-07)`);
    }
    const draft07 = ajv.getSchema('http://json-schema.org/draft-07/schema')?.schema;
    ajv.addMetaSchema({ ...object(draft07, 'draft-07 meta-schema'), $id: declared });
  }
  return ajv.compile(schema);
}

/** `environment:` as a mapping or as a list of KEY=VALUE strings, normalised to a mapping. */
function environmentOf(service: Json): Record<string, string> {
  const raw = service.environment;
  const out: Record<string, string> = {};
  if (Array.isArray(raw)) {
    for (const entry of raw) {
      const [key = '', ...rest] = String(entry).split('=');
      out[key] = rest.join('=');
    }
  } else if (isObject(raw)) {
    for (const [key, value] of Object.entries(raw)) out[key] = value === null ? '' : String(value);
  }
  return out;
}

interface PublishedPort {
  hostIp: string | undefined;
  published: string | undefined;
  target: string;
}

/** `ports:` entries (short "[ip:]host:container" strings or long-syntax mappings). */
function portsOf(service: Json): PublishedPort[] {
  const raw = service.ports;
  if (!Array.isArray(raw)) return [];
  return raw.map((entry): PublishedPort => {
    if (isObject(entry)) {
      return {
        hostIp: entry.host_ip === undefined ? undefined : String(entry.host_ip),
        published: entry.published === undefined ? undefined : String(entry.published),
        target: String(entry.target),
      };
    }
    const parts = String(entry).replace(/\/(tcp|udp)$/, '').split(':');
    const target = parts.pop() ?? '';
    const published = parts.pop();
    const hostIp = parts.length > 0 ? parts.join(':').replace(/^\[|\]$/g, '') : undefined;
    return { hostIp, published, target };
  });
}

/** The default in `${VAR:-default}` / `${VAR-default}`, or the literal value. */
function defaultOf(value: string): string {
  const match = /^\$\{[A-Za-z_][A-Za-z0-9_]*:?-(.*)\}$/.exec(value);
  return match ? (match[1] ?? '') : value;
}

const document: unknown = parse(readFileSync(COMPOSE_FILE, 'utf8'));
const compose = object(document, COMPOSE_FILE);
const services = object(compose.services, 'services');
const portcullis = object(services.portcullis, 'services.portcullis');
const postgres = object(services.postgres, 'services.postgres');

describe('docker-compose.yml', () => {
  const validate = compileValidator(loadSchema());

  test('is valid against the Compose Specification schema', () => {
    const valid = validate(document);
    expect(validate.errors ?? []).toEqual([]);
    expect(valid).toBe(true);
  });

  test('the validator rejects invalid documents (unknown service key, ports not a list)', () => {
    const bogusKey = structuredClone(compose);
    object(object(bogusKey.services, 'services').portcullis, 'portcullis').bogus_key = 1;
    expect(validate(bogusKey)).toBe(false);
    expect(validate.errors).toEqual(expect.arrayContaining([
      expect.objectContaining({ keyword: 'additionalProperties', params: { additionalProperty: 'bogus_key' } }),
    ]));

    const badPorts = structuredClone(compose);
    object(object(badPorts.services, 'services').portcullis, 'portcullis').ports = 'not-a-list';
    expect(validate(badPorts)).toBe(false);
    expect(validate.errors).toEqual(expect.arrayContaining([
      expect.objectContaining({ instancePath: '/services/portcullis/ports', keyword: 'type' }),
    ]));
  });

  test('portcullis runs in production against the postgres service, with a master key', () => {
    const env = environmentOf(portcullis);
    expect(env.NODE_ENV).toBe('production');
    expect(env.DATABASE_URL).toMatch(/^postgres(ql)?:\/\/[^@/]+@postgres:5432\/portcullis$/);
    // required at `docker compose up` time (`:?`), never a default key baked into the file
    expect(env.MASTER_KEY).toMatch(/^\$\{MASTER_KEY:\?[^}]*\}$/);
    expect(portcullis.build).toBeDefined();
    expect(portcullis.depends_on).toEqual({ postgres: { condition: 'service_healthy' } });
  });

  test('the issuer defaults to an https:// URL (required when NODE_ENV=production)', () => {
    const issuer = environmentOf(portcullis).ISSUER;
    expect(issuer).toBeDefined();
    const fallback = defaultOf(issuer ?? '');
    expect(fallback).toMatch(/^https:\/\//);
    expect(new URL(fallback).protocol).toBe('https:');
  });

  test('the admin port is published on 127.0.0.1 only; the public port on 3000', () => {
    const env = environmentOf(portcullis);
    const adminPort = env.ADMIN_PORT ?? '3001';
    const ports = portsOf(portcullis);
    const admin = ports.filter((port) => port.target === adminPort);
    expect(admin.length).toBeGreaterThan(0);
    for (const port of admin) expect(port.hostIp).toBe('127.0.0.1');
    expect(ports).toEqual(expect.arrayContaining([
      expect.objectContaining({ published: '3000', target: env.PORT ?? '3000' }),
    ]));
  });

  test('postgres has a pg_isready healthcheck and keeps its data in a named volume', () => {
    const healthcheck = object(postgres.healthcheck, 'services.postgres.healthcheck');
    expect(JSON.stringify(healthcheck.test)).toContain('pg_isready');
    const volumes = postgres.volumes;
    expect(Array.isArray(volumes)).toBe(true);
    const named = Object.keys(object(compose.volumes, 'volumes'));
    const mounted = (volumes as unknown[]).map((volume) => isObject(volume) ? String(volume.source) : String(volume).split(':')[0]);
    expect(mounted.some((source) => named.includes(source ?? ''))).toBe(true);
    // the database is reachable from the compose network only
    expect(postgres.ports).toBeUndefined();
  });
});

describe('Dockerfile', () => {
  test('exists, and its final stage runs dist/src/main.js as the node user', () => {
    expect(existsSync(DOCKERFILE)).toBe(true);
    // logical lines: join "\" continuations, drop comments and blank lines
    const lines = readFileSync(DOCKERFILE, 'utf8')
      .replace(/\\\r?\n/g, ' ')
      .split(/\r?\n/)
      .map((line) => line.trim())
      .filter((line) => line !== '' && !line.startsWith('#'));
    const lastFrom = lines.findLastIndex((line) => /^FROM\s/i.test(line));
    expect(lastFrom).toBeGreaterThanOrEqual(0);
    const finalStage = lines.slice(lastFrom);

    const cmd = finalStage.findLast((line) => /^CMD\s/i.test(line));
    expect(cmd).toBeDefined();
    const argv: unknown = JSON.parse((cmd ?? '').replace(/^CMD\s+/i, ''));
    expect(argv).toEqual(expect.arrayContaining(['node', 'dist/src/main.js']));
    expect((argv as string[]).at(-1)).toBe('dist/src/main.js');

    expect(finalStage.findLast((line) => /^USER\s/i.test(line))).toBe('USER node');
    expect(finalStage.some((line) => /^HEALTHCHECK\s.*\/healthz/i.test(line))).toBe(true);
  });
});
