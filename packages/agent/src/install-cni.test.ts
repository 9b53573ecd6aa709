import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { installCni } from './install-cni.js';

const dirs: string[] = [];
const tmp = () => {
  const d = mkdtempSync(join(tmpdir(), 'podnet-install-cni-'));
  dirs.push(d);
  return d;
};
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe('installCni', () => {
  it('installs the plugin, its wrapper, a token kubeconfig and the conflist for this node', () => {
    const root = tmp();
    const bundle = join(root, 'bundle.js');
    writeFileSync(bundle, 'console.log("cni")');
    const tokenDir = join(root, 'token');
    mkdirSync(tokenDir);
    writeFileSync(join(tokenDir, 'token'), 'tok123\n');
    writeFileSync(join(tokenDir, 'ca.crt'), 'CA');
    const binDir = join(root, 'bin');
    const confDir = join(root, 'net.d');
    const { files } = installCni({
      nodeName: 'node-a',
      binDir,
      confDir,
      pluginBundle: bundle,
      nodeBinary: bundle,
      tokenDir,
      server: 'https://10.96.0.1:443',
    });
    expect(files.map((f) => f.slice(root.length))).toEqual([
      '/bin/podnet-cni.js',
      '/bin/podnet-node',
      '/bin/podnet',
      '/net.d/podnet-kubeconfig',
      '/net.d/10-podnet.conflist',
    ]);
    expect(statSync(join(binDir, 'podnet')).mode & 0o111).toBeTruthy();
    const conf = JSON.parse(readFileSync(join(confDir, '10-podnet.conflist'), 'utf8'));
    expect(conf.plugins[0]).toMatchObject({
      type: 'podnet',
      nodeName: 'node-a',
      kubeconfig: join(confDir, 'podnet-kubeconfig'),
    });
    const kc = readFileSync(join(confDir, 'podnet-kubeconfig'), 'utf8');
    expect(kc).toContain('token: tok123');
    expect(kc).toContain('server: https://10.96.0.1:443');
    expect(statSync(join(confDir, 'podnet-kubeconfig')).mode & 0o077).toBe(0);
  });

  it('fails naming the missing plugin bundle and what to do', () => {
    const root = tmp();
    expect(() =>
      installCni({
        nodeName: 'n',
        binDir: join(root, 'b'),
        confDir: join(root, 'c'),
        pluginBundle: join(root, 'none.js'),
      }),
    ).toThrow(/none\.js not found; build @podnet\/cni first/);
  });

  it('rejects a conflist template that is not JSON', () => {
    const root = tmp();
    const bundle = join(root, 'bundle.js');
    writeFileSync(bundle, '');
    expect(() =>
      installCni({
        nodeName: 'n',
        binDir: join(root, 'b'),
        confDir: join(root, 'c'),
        pluginBundle: bundle,
        nodeBinary: bundle,
        conflistTemplate: '{ nope',
      }),
    ).toThrow(/conflist template is not valid JSON/);
  });
});
