// A self-signed serving certificate (its own CA), made with the openssl CLI: node:crypto can make keys
// but not X.509 certificates.
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { isIP } from 'node:net';
import { networkInterfaces, tmpdir } from 'node:os';
import { join } from 'node:path';

export interface TlsMaterial {
  key: string;
  cert: string;
}

/** The subjectAltNames for a server listening on `host`: loopback, plus every local address for a wildcard. */
export function altNames(host: string, extra: string[] = []): string[] {
  const names = new Set<string>(['DNS:localhost', 'IP:127.0.0.1', 'IP:::1']);
  const add = (h: string) => names.add(isIP(h) ? `IP:${h}` : `DNS:${h}`);
  if (host === '0.0.0.0' || host === '::') {
    for (const addrs of Object.values(networkInterfaces()))
      for (const a of addrs ?? []) add(a.address.split('%')[0]!);
  } else add(host);
  for (const h of extra) add(h);
  return [...names];
}

export async function selfSignedCert(sans: string[]): Promise<TlsMaterial> {
  const dir = await mkdtemp(join(tmpdir(), 'podnet-apiserver-tls-'));
  try {
    const key = join(dir, 'key.pem');
    const cert = join(dir, 'cert.pem');
    await new Promise<void>((resolve, reject) => {
      execFile(
        'openssl',
        [
          'req',
          '-x509',
          '-newkey',
          'ec',
          '-pkeyopt',
          'ec_paramgen_curve:prime256v1',
          '-nodes',
          '-keyout',
          key,
          '-out',
          cert,
          '-days',
          '3650',
          '-subj',
          '/CN=podnet-apiserver',
          '-addext',
          `subjectAltName=${sans.join(',')}`,
          '-addext',
          'basicConstraints=critical,CA:TRUE',
          '-addext',
          'keyUsage=critical,digitalSignature,keyCertSign',
          '-addext',
          'extendedKeyUsage=serverAuth',
        ],
        { timeout: 30_000 },
        (err, _stdout, stderr) => {
          if (err) {
            const missing = (err as NodeJS.ErrnoException).code === 'ENOENT';
            reject(
              new Error(
                missing
                  ? 'openssl is not installed (needed to make the TLS certificate; install it or pass tls: false)'
                  : `openssl failed: ${String(stderr).trim() || err.message}`,
              ),
            );
          } else resolve();
        },
      );
    });
    return { key: await readFile(key, 'utf8'), cert: await readFile(cert, 'utf8') };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
