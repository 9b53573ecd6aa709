// The real cluster's credentials, made by openssl and read back by openssl: certificates chain to
// the CA and carry the subject (RBAC user and groups) and names the components check.
import { execFileSync } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { kubeconfigFor, makePki } from './pki.js';

const dir = `/tmp/podnet-pki-test-${process.pid}`;
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const text = (crt: string) => execFileSync('openssl', ['x509', '-in', crt, '-noout', '-text']).toString();

describe('makePki', () => {
  it('signs server and client certificates with its CA, with the subject and names asked for', async () => {
    const pki = await makePki(dir, [
      { name: 'apiserver', cn: 'kube-apiserver', sans: ['IP:10.88.0.2', 'DNS:kubernetes'] },
      { name: 'node-a', cn: 'system:node:node-a', orgs: ['system:nodes'] },
    ]);
    for (const n of ['apiserver', 'node-a']) {
      expect(execFileSync('openssl', ['verify', '-CAfile', pki.caCrt, pki.crt(n)]).toString()).toContain(
        ': OK',
      );
    }
    const api = text(pki.crt('apiserver'));
    expect(api).toMatch(/IP Address:10\.88\.0\.2, DNS:kubernetes/);
    expect(api).toMatch(/CA:FALSE/);
    const node = execFileSync('openssl', ['x509', '-in', pki.crt('node-a'), '-noout', '-subject']).toString();
    expect(node).toMatch(/O ?= ?system:nodes, CN ?= ?system:node:node-a/);
    expect(readFileSync(pki.saPub, 'utf8')).toContain('BEGIN PUBLIC KEY');
  });

  it('writes kubeconfigs with the CA and the credentials inline', async () => {
    const pki = await makePki(`${dir}/kc`, [{ name: 'admin', cn: 'admin', orgs: ['system:masters'] }]);
    const kc = JSON.parse(
      kubeconfigFor('https://10.88.0.2:6443', pki.caCrt, { crt: pki.crt('admin'), key: pki.key('admin') }),
    );
    expect(kc.clusters[0].cluster.server).toBe('https://10.88.0.2:6443');
    expect(Buffer.from(kc.clusters[0].cluster['certificate-authority-data'], 'base64').toString()).toBe(
      readFileSync(pki.caCrt, 'utf8'),
    );
    expect(kc.users[0].user['client-key-data']).toBe(readFileSync(pki.key('admin')).toString('base64'));
    const tok = JSON.parse(kubeconfigFor('https://x', pki.caCrt, { token: 't0k' }, 'sa'));
    expect(tok.users).toEqual([{ name: 'sa', user: { token: 't0k' } }]);
  });
});
