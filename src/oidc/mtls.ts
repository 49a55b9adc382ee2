import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { TLSSocket } from 'node:tls';

import type { KoaContextWithOIDC } from 'oidc-provider';

import type { Config } from '../config.js';

/**
 * Where a client certificate comes from, and whether it is trusted:
 * - our own TLS listener (TLS_CLIENT_CA_FILE set): the socket's peer certificate; it is
 *   "authorized" when Node verified its chain against the CA bundle;
 * - a TLS-terminating proxy, only when TRUSTED_PROXY_CERT_HEADER is configured: the
 *   header's PEM (URL-encoded, as nginx and Envoy send it) or base64 DER; never otherwise.
 *   It is authorized when it chains to TLS_CLIENT_CA_FILE, if that is set, or else on the
 *   proxy's word (the proxy must verify the chain).
 * Self-signed certificates (self_signed_tls_client_auth) need no chain: oidc-provider
 * matches their thumbprint against the client's registered keys.
 */
export interface CertificateSource {
  getCertificate(ctx: KoaContextWithOIDC): X509Certificate | undefined;
  certificateAuthorized(ctx: KoaContextWithOIDC): boolean;
  certificateSubjectMatches(ctx: KoaContextWithOIDC, property: string, expected: string): boolean;
}

const STATE_KEY = 'portcullisClientCertificate';

interface Resolved { certificate: X509Certificate | undefined; authorized: boolean }

function splitPemBundle(pem: string): X509Certificate[] {
  return (pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? []).map((block) => new X509Certificate(block));
}

function parseHeaderCertificate(value: string): X509Certificate | undefined {
  try {
    const decoded = value.includes('%') ? decodeURIComponent(value) : value;
    if (decoded.includes('-----BEGIN CERTIFICATE-----')) return new X509Certificate(decoded.replace(/\t/g, '\n'));
    return new X509Certificate(Buffer.from(decoded.replace(/\s/g, ''), 'base64'));
  } catch {
    return undefined;
  }
}

function chainsTo(certificate: X509Certificate, authorities: X509Certificate[]): boolean {
  const now = Date.now();
  if (Date.parse(certificate.validFrom) > now || Date.parse(certificate.validTo) < now) return false;
  return authorities.some((ca) => certificate.checkIssued(ca) && certificate.verify(ca.publicKey));
}

/** Distinguished names compared as sets of TYPE=value pairs, types and values normalised. */
const ATTRIBUTE_ALIASES: Readonly<Record<string, string>> = {
  COMMONNAME: 'CN', '2.5.4.3': 'CN', ORGANIZATIONNAME: 'O', '2.5.4.10': 'O', ORGANIZATIONALUNITNAME: 'OU', '2.5.4.11': 'OU',
  COUNTRYNAME: 'C', '2.5.4.6': 'C', LOCALITYNAME: 'L', '2.5.4.7': 'L', STATEORPROVINCENAME: 'ST', S: 'ST', '2.5.4.8': 'ST',
  STREETADDRESS: 'STREET', '2.5.4.9': 'STREET', DOMAINCOMPONENT: 'DC', '0.9.2342.19200300.100.1.25': 'DC',
  EMAILADDRESS: 'EMAILADDRESS', E: 'EMAILADDRESS', '1.2.840.113549.1.9.1': 'EMAILADDRESS', SERIALNUMBER: 'SERIALNUMBER', '2.5.4.5': 'SERIALNUMBER',
  ORGANIZATIONIDENTIFIER: 'ORGANIZATIONIDENTIFIER', '2.5.4.97': 'ORGANIZATIONIDENTIFIER', UID: 'UID', USERID: 'UID', '0.9.2342.19200300.100.1.1': 'UID',
};

/** Splits on unescaped separators (RFC 4514 uses ',' and '+'; Node's subject uses newlines). */
function splitUnescaped(value: string, separators: RegExp): string[] {
  const parts: string[] = [];
  let current = '';
  for (let i = 0; i < value.length; i += 1) {
    const ch = value[i]!;
    if (ch === '\\' && i + 1 < value.length) {
      current += ch + value[i + 1];
      i += 1;
    } else if (separators.test(ch)) {
      parts.push(current);
      current = '';
    } else {
      current += ch;
    }
  }
  parts.push(current);
  return parts;
}

function unescapeValue(value: string): string {
  return value.replace(/\\([0-9A-Fa-f]{2}|.)/g, (_m, seq: string) => (seq.length === 2 ? String.fromCharCode(parseInt(seq, 16)) : seq));
}

export function normaliseDistinguishedName(dn: string): string[] {
  const separators = dn.includes('\n') ? /[\n+]/ : /[,+;]/;
  return splitUnescaped(dn.trim(), separators)
    .map((pair) => pair.trim())
    .filter((pair) => pair !== '')
    .map((pair) => {
      const eq = pair.indexOf('=');
      if (eq <= 0) return `?=${pair.toLowerCase()}`;
      const rawType = pair.slice(0, eq).trim().toUpperCase();
      const type = ATTRIBUTE_ALIASES[rawType] ?? rawType;
      const value = unescapeValue(pair.slice(eq + 1).trim().replace(/^"(.*)"$/, '$1')).replace(/\s+/g, ' ').toLowerCase();
      return `${type}=${value}`;
    })
    .sort();
}

export function distinguishedNamesMatch(a: string, b: string): boolean {
  const left = normaliseDistinguishedName(a);
  const right = normaliseDistinguishedName(b);
  return left.length > 0 && left.length === right.length && left.every((part, i) => part === right[i]);
}

const SAN_PREFIX: Readonly<Record<string, string>> = {
  tls_client_auth_san_dns: 'DNS',
  tls_client_auth_san_ip: 'IP Address',
  tls_client_auth_san_email: 'email',
  tls_client_auth_san_uri: 'URI',
};

function subjectAltNames(certificate: X509Certificate, kind: string): string[] {
  return (certificate.subjectAltName ?? '')
    .split(/,\s*/)
    .map((entry) => entry.trim())
    .filter((entry) => entry.startsWith(`${kind}:`))
    .map((entry) => entry.slice(kind.length + 1).replace(/^"(.*)"$/, '$1'));
}

export function createCertificateSource(config: Config): CertificateSource {
  const authorities = config.clientCaFile === undefined ? [] : splitPemBundle(readFileSync(config.clientCaFile, 'utf8'));
  const proxyHeader = config.trustedProxyCertHeader;

  function resolve(ctx: KoaContextWithOIDC): Resolved {
    const cached = ctx.state[STATE_KEY] as Resolved | undefined;
    if (cached !== undefined) return cached;
    let resolved: Resolved = { certificate: undefined, authorized: false };
    if (proxyHeader !== undefined) {
      const header = ctx.get(proxyHeader);
      const certificate = header === '' ? undefined : parseHeaderCertificate(header);
      if (certificate !== undefined) {
        resolved = { certificate, authorized: authorities.length === 0 ? true : chainsTo(certificate, authorities) };
      }
    } else {
      const socket = ctx.req.socket as Partial<TLSSocket>;
      const peer = typeof socket.getPeerCertificate === 'function' ? socket.getPeerCertificate(false) : undefined;
      if (peer?.raw !== undefined && peer.raw.length > 0) {
        resolved = { certificate: new X509Certificate(peer.raw), authorized: socket.authorized === true };
      }
    }
    ctx.state[STATE_KEY] = resolved;
    return resolved;
  }

  return {
    getCertificate: (ctx) => resolve(ctx).certificate,
    certificateAuthorized: (ctx) => resolve(ctx).authorized,
    certificateSubjectMatches(ctx, property, expected) {
      const { certificate } = resolve(ctx);
      if (certificate === undefined) return false;
      if (property === 'tls_client_auth_subject_dn') return distinguishedNamesMatch(certificate.subject, expected);
      const kind = SAN_PREFIX[property];
      if (kind === undefined) return false;
      const wanted = kind === 'DNS' || kind === 'email' ? expected.toLowerCase() : expected;
      return subjectAltNames(certificate, kind).some((name) => (kind === 'DNS' || kind === 'email' ? name.toLowerCase() : name) === wanted);
    },
  };
}
