// The real cluster's credentials, made with openssl: one CA, the API server's serving certificate,
// client certificates for the components and nodes (RBAC reads user = CN, groups = O), and the
// service-account signing key. ECDSA P-256 keys: quick to make, and every component accepts them.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { run } from '../sh.js';

export interface CertSpec {
  /** File stem: <name>.crt and <name>.key. */
  name: string;
  cn: string;
  /** Groups (RBAC): one O= each. */
  orgs?: string[];
  /** subjectAltName entries, e.g. `IP:10.88.0.2`, `DNS:kubernetes`. */
  sans?: string[];
}

export interface Pki {
  dir: string;
  caCrt: string;
  caKey: string;
  saKey: string;
  saPub: string;
  crt(name: string): string;
  key(name: string): string;
}

const days = '30';
const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

/** Makes the CA, the service-account key pair and one certificate per spec (a fresh set each time). */
export async function makePki(dir: string, certs: readonly CertSpec[]): Promise<Pki> {
  mkdirSync(dir, { recursive: true });
  const pki: Pki = {
    dir,
    caCrt: join(dir, 'ca.crt'),
    caKey: join(dir, 'ca.key'),
    saKey: join(dir, 'sa.key'),
    saPub: join(dir, 'sa.pub'),
    crt: (n) => join(dir, `${n}.crt`),
    key: (n) => join(dir, `${n}.key`),
  };
  await run('openssl', [
    'req',
    '-x509',
    ...ec,
    '-keyout',
    pki.caKey,
    '-out',
    pki.caCrt,
    '-days',
    days,
    '-subj',
    '/CN=podnet-lab-ca',
  ]);
  await run('openssl', ['genrsa', '-out', pki.saKey, '2048']);
  await run('openssl', ['rsa', '-in', pki.saKey, '-pubout', '-out', pki.saPub]);
  for (const c of certs) {
    const cnf = join(dir, `${c.name}.cnf`);
    writeFileSync(
      cnf,
      [
        '[req]',
        'distinguished_name = dn',
        '[dn]',
        '[ext]',
        'basicConstraints = critical,CA:FALSE',
        'keyUsage = critical,digitalSignature,keyEncipherment',
        'extendedKeyUsage = serverAuth,clientAuth',
        ...(c.sans?.length ? [`subjectAltName = ${c.sans.join(',')}`] : []),
        '',
      ].join('\n'),
    );
    const subj = `${(c.orgs ?? []).map((o) => `/O=${o}`).join('')}/CN=${c.cn}`;
    await run('openssl', [
      'req',
      '-x509',
      ...ec,
      '-keyout',
      pki.key(c.name),
      '-out',
      pki.crt(c.name),
      '-days',
      days,
      '-subj',
      subj,
      '-CA',
      pki.caCrt,
      '-CAkey',
      pki.caKey,
      '-config',
      cnf,
      '-extensions',
      'ext',
    ]);
  }
  return pki;
}

export interface KubeconfigCreds {
  /** Client certificate and key files … */
  crt?: string;
  key?: string;
  /** … or a bearer token. */
  token?: string;
}

/** A kubeconfig with its CA and credentials inline (components and agents read it from anywhere). */
export function kubeconfigFor(server: string, caCrt: string, creds: KubeconfigCreds, user = 'lab'): string {
  const b64 = (f: string) => readFileSync(f).toString('base64');
  const u: Record<string, string> = {};
  if (creds.crt && creds.key) {
    u['client-certificate-data'] = b64(creds.crt);
    u['client-key-data'] = b64(creds.key);
  }
  if (creds.token) u.token = creds.token;
  return `${JSON.stringify(
    {
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'lab', cluster: { server, 'certificate-authority-data': b64(caCrt) } }],
      users: [{ name: user, user: u }],
      contexts: [{ name: 'lab', context: { cluster: 'lab', user } }],
      'current-context': 'lab',
    },
    null,
    2,
  )}\n`;
}

export const pkiExists = (dir: string) => existsSync(join(dir, 'ca.crt'));
