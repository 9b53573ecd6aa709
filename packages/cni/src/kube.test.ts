import { mkdtempSync, readdirSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CniErrorCode } from './errors.js';
import { loadKubeTarget } from './kube.js';

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
});
