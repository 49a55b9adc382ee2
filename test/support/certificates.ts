import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * Test PKI made with the openssl command line: a CA, a server certificate for 127.0.0.1
 * and client certificates (CA-issued or self-signed). Files live in a temporary folder.
 */
export interface Pki {
  readonly dir: string;
  readonly caFile: string;
  readonly ca: string;
  server: { certFile: string; keyFile: string };
  client(name: string, subject: string, options?: { selfSigned?: boolean; san?: string }): { cert: string; key: string };
  cleanup(): void;
}

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

export function createPki(): Pki {
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-pki-'));
  openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=Portcullis Test CA'], dir);

  function issue(name: string, subject: string, extensions: string, selfSigned: boolean): void {
    writeFileSync(join(dir, `${name}.ext`), extensions);
    openssl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', subject], dir);
    const signer = selfSigned ? ['-signkey', `${name}.key`] : ['-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial'];
    openssl(['x509', '-req', '-in', `${name}.csr`, ...signer, '-out', `${name}.pem`, '-days', '2', '-extfile', `${name}.ext`], dir);
  }

  issue('server', '/CN=127.0.0.1', 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n', false);
  return {
    dir,
    caFile: join(dir, 'ca.pem'),
    ca: readFileSync(join(dir, 'ca.pem'), 'utf8'),
    server: { certFile: join(dir, 'server.pem'), keyFile: join(dir, 'server.key') },
    client(name, subject, { selfSigned = false, san } = {}) {
      issue(name, subject, `extendedKeyUsage=clientAuth\n${san === undefined ? '' : `subjectAltName=${san}\n`}`, selfSigned);
      return { cert: readFileSync(join(dir, `${name}.pem`), 'utf8'), key: readFileSync(join(dir, `${name}.key`), 'utf8') };
    },
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}
