import { mkdirSync, mkdtempSync, readdirSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CniErrorCode } from './errors.js';
import { loadKubeTarget, tlsNameOptions } from './kube.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'podnet-cni-kube-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const yaml = (server: string) =>
  [
    'apiVersion: v1',
    'kind: Config',
    'clusters:',
    '- name: "c"',
    '  cluster:',
    `    server: "${server}"`,
    `    certificate-authority-data: ${Buffer.from('PEM').toString('base64')}`,
    'users:',
    '- name: "u"',
    '  user:',
    '    token: "s3cret"',
    'contexts:',
    '- name: "ctx"',
    '  context:',
    '    cluster: "c"',
    '    user: "u"',
    'current-context: "ctx"',
    '',
  ].join('\n');

describe('loadKubeTarget', () => {
  it('reads the current context of a YAML kubeconfig: server, CA and token', () => {
    const file = join(dir, 'kubeconfig');
    writeFileSync(file, yaml('https://127.0.0.1:6443'));
    const t = loadKubeTarget(file, {});
    expect(t.server.href).toBe('https://127.0.0.1:6443/');
    expect(t.ca?.toString()).toBe('PEM');
    expect(t.token).toBe('s3cret');
  });

  it('reuses the parse of an unchanged file and notices a changed one', () => {
    const file = join(dir, 'kubeconfig');
    const cache = join(dir, 'cache');
    writeFileSync(file, yaml('https://10.0.0.1:6443'));
    expect(loadKubeTarget(file, {}, cache).server.host).toBe('10.0.0.1:6443');
    expect(readdirSync(join(cache, 'kubeconfig'))).toHaveLength(1);
    expect(loadKubeTarget(file, {}, cache).server.host).toBe('10.0.0.1:6443');
    writeFileSync(file, yaml('https://10.0.0.2:6443'));
    utimesSync(file, new Date(), new Date(Date.now() + 5000));
    expect(loadKubeTarget(file, {}, cache).server.host).toBe('10.0.0.2:6443');
  });

  it('reads a JSON kubeconfig', () => {
    const file = join(dir, 'kubeconfig.json');
    writeFileSync(
      file,
      JSON.stringify({
        clusters: [{ name: 'c', cluster: { server: 'http://127.0.0.1:8080' } }],
        contexts: [],
        users: [],
      }),
    );
    expect(loadKubeTarget(file, {}).server.protocol).toBe('http:');
  });

  it.each([
    ['a missing file', () => join(dir, 'nope'), /cannot be read/],
    [
      'no cluster',
      () => {
        const f = join(dir, 'empty');
        writeFileSync(f, 'apiVersion: v1\nkind: Config\n');
        return f;
      },
      /names no cluster with a server/,
    ],
  ])('rejects %s with code 7 naming the file', (_, make, msg) => {
    const file = make();
    expect(() => loadKubeTarget(file, {})).toThrow(msg);
    try {
      loadKubeTarget(file, {});
    } catch (err) {
      expect((err as { code: number }).code).toBe(CniErrorCode.InvalidConfig);
      expect((err as Error).message).toContain(file);
    }
  });

  it('asks for a kubeconfig when there is neither a file nor an in-cluster account', () => {
    expect(() => loadKubeTarget(undefined, {})).toThrow(/no kubeconfig/);
  });

  it('reads tls-server-name, insecure-skip-tls-verify and client certificate data', () => {
    const file = join(dir, 'kubeconfig');
    writeFileSync(
      file,
      JSON.stringify({
        'current-context': 'x',
        contexts: [{ name: 'x', context: { cluster: 'c', user: 'u' } }],
        clusters: [
          {
            name: 'c',
            cluster: {
              server: 'https://10.0.0.1:6443',
              'tls-server-name': 'kubernetes.default.svc',
              'insecure-skip-tls-verify': true,
            },
          },
        ],
        users: [
          {
            name: 'u',
            user: { 'client-certificate-data': b64('CERT'), 'client-key-data': b64('KEY') },
          },
        ],
      }),
    );
    const t = loadKubeTarget(file, {});
    expect(t.tlsServerName).toBe('kubernetes.default.svc');
    expect(t.insecure).toBe(true);
    expect(t.cert?.toString()).toBe('CERT');
    expect(t.key?.toString()).toBe('KEY');
    expect(t.token).toBeUndefined();
  });

  it('resolves certificate, key, CA and token files relative to the kubeconfig, not the working directory', () => {
    const sub = join(dir, 'etc');
    mkdirSync(join(sub, 'pki'), { recursive: true });
    writeFileSync(join(sub, 'pki', 'ca.crt'), 'CA');
    writeFileSync(join(sub, 'pki', 'client.crt'), 'CERT');
    writeFileSync(join(sub, 'pki', 'client.key'), 'KEY');
    writeFileSync(join(sub, 'token'), 'tok-from-file\n');
    const file = join(sub, 'kubeconfig');
    writeFileSync(
      file,
      kubeconfig(
        { server: 'https://api.example:6443', 'certificate-authority': 'pki/ca.crt' },
        { 'client-certificate': 'pki/client.crt', 'client-key': 'pki/client.key', tokenFile: 'token' },
      ),
    );
    const t = loadKubeTarget(file, {});
    expect(t.ca?.toString()).toBe('CA');
    expect(t.cert?.toString()).toBe('CERT');
    expect(t.key?.toString()).toBe('KEY');
    expect(t.token).toBe('tok-from-file');
  });

  it('prefers the inline token to a token file, and uses basic credentials only without a token', () => {
    const file = join(dir, 'kubeconfig');
    writeFileSync(
      file,
      kubeconfig({ server: 'https://a:1' }, { token: 'inline', tokenFile: '/nonexistent' }),
    );
    expect(loadKubeTarget(file, {}).token).toBe('inline');
    writeFileSync(file, kubeconfig({ server: 'https://a:1' }, { username: 'admin', password: 'pw' }));
    expect(loadKubeTarget(file, {}).basic).toEqual({ username: 'admin', password: 'pw' });
  });

  it('merges a KUBECONFIG-style list: the first current-context and the first entry of a name win', () => {
    const a = join(dir, 'a');
    const b = join(dir, 'b');
    writeFileSync(
      a,
      JSON.stringify({ 'current-context': 'prod', users: [{ name: 'u', user: { token: 'A' } }] }),
    );
    writeFileSync(
      b,
      JSON.stringify({
        'current-context': 'dev',
        contexts: [
          { name: 'dev', context: { cluster: 'dev', user: 'u' } },
          { name: 'prod', context: { cluster: 'prod', user: 'u' } },
        ],
        clusters: [
          { name: 'dev', cluster: { server: 'https://dev:6443' } },
          { name: 'prod', cluster: { server: 'https://prod:6443' } },
        ],
        users: [{ name: 'u', user: { token: 'B' } }],
      }),
    );
    const t = loadKubeTarget(`${a}:${b}`, {});
    expect(t.server.hostname).toBe('prod');
    expect(t.token).toBe('A');
  });

  it.each([
    [
      'certificate-authority-data that is not base64',
      { server: 'https://a:1', 'certificate-authority-data': 'not base64!' },
      {},
      /clusters\[name=c\]\.cluster\.certificate-authority-data is not base64/,
    ],
    [
      'a CA file that cannot be read',
      { server: 'https://a:1', 'certificate-authority': 'missing-ca.crt' },
      {},
      /clusters\[name=c\]\.cluster\.certificate-authority = "missing-ca\.crt" cannot be read/,
    ],
    ['a server that is not a URL', { server: 'a:b:c' }, {}, /cluster\.server = "a:b:c" must be https/],
    ['a server that is no URL at all', { server: '::' }, {}, /cluster\.server = "::" is not a URL/],
    [
      'a proxy-url',
      { server: 'https://a:1', 'proxy-url': 'http://proxy:3128' },
      {},
      /proxy-url = "http:\/\/proxy:3128": proxies are not supported/,
    ],
    [
      'a tls-server-name that is not a host name',
      { server: 'https://a:1', 'tls-server-name': 'https://x/' },
      {},
      /tls-server-name = "https:\/\/x\/" is not a host name/,
    ],
    [
      'a client certificate without its key',
      { server: 'https://a:1' },
      { 'client-certificate-data': b64('CERT') },
      /users\[name=u\]\.user has a client certificate but no key/,
    ],
    [
      'an exec credential plugin as the only credential',
      { server: 'https://a:1' },
      { exec: { command: 'aws', args: ['eks', 'get-token'] } },
      /users\[name=u\]\.user\.exec: credential plugins are not supported/,
    ],
    [
      'an empty token file',
      { server: 'https://a:1' },
      { tokenFile: '/dev/null' },
      /tokenFile = "\/dev\/null" is empty/,
    ],
  ])('rejects %s with code 7 naming the field', (_, cluster, user, msg) => {
    const file = join(dir, 'kubeconfig');
    writeFileSync(file, kubeconfig(cluster, user));
    let err: unknown;
    try {
      loadKubeTarget(file, {});
    } catch (e) {
      err = e;
    }
    expect((err as Error | undefined)?.message).toMatch(msg);
    expect((err as { code: number }).code).toBe(CniErrorCode.InvalidConfig);
    expect((err as Error).message).toContain(file);
  });

  it('rejects a current-context that names no context', () => {
    const file = join(dir, 'kubeconfig');
    writeFileSync(
      file,
      JSON.stringify({
        'current-context': 'gone',
        clusters: [{ name: 'c', cluster: { server: 'https://a:1' } }],
      }),
    );
    expect(() => loadKubeTarget(file, {})).toThrow(/current-context "gone" is not among contexts/);
  });
});

describe('tlsNameOptions', () => {
  it.each([
    ['a host name: sent as SNI and checked', 'api.example', 'api.example', true],
    ['an IPv4 address: checked, not sent (SNI carries host names only)', '10.0.0.1', undefined, true],
    ['an IPv6 address in brackets', '[fd00::1]', undefined, true],
  ])('%s', (_, name, servername, checks) => {
    const o = tlsNameOptions(name);
    expect(o.servername).toBe(servername);
    expect(typeof o.checkServerIdentity === 'function').toBe(checks);
  });

  it('checks the certificate against the configured name, not the host connected to', () => {
    const o = tlsNameOptions('api.example');
    const cert = { subject: { CN: 'x' }, subjectaltname: 'DNS:api.example' } as never;
    expect(o.checkServerIdentity?.('127.1.2.3', cert)).toBeUndefined();
    const other = { subject: { CN: 'x' }, subjectaltname: 'DNS:other.example' } as never;
    expect(o.checkServerIdentity?.('api.example', other)?.message).toMatch(/api\.example/);
    const ip = tlsNameOptions('10.0.0.1');
    expect(
      ip.checkServerIdentity?.('127.1.2.3', { subject: {}, subjectaltname: 'IP Address:10.0.0.1' } as never),
    ).toBeUndefined();
  });

  it('sets nothing without a name', () => {
    expect(tlsNameOptions(undefined)).toEqual({});
  });
});

function b64(s: string): string {
  return Buffer.from(s).toString('base64');
}

function kubeconfig(cluster: Record<string, unknown>, user: Record<string, unknown>): string {
  return JSON.stringify({
    'current-context': 'ctx',
    contexts: [{ name: 'ctx', context: { cluster: 'c', user: 'u' } }],
    clusters: [{ name: 'c', cluster }],
    users: [{ name: 'u', user }],
  });
}
