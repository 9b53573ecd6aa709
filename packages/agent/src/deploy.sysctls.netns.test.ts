// The DaemonSet's privileged init container runs `podnet-agent node-sysctls /etc/podnet/node-sysctls.conf`
// with the ConfigMap's file: run here, as a process, inside a fresh network namespace (never the
// one the test started in), on the file deploy/configmap.yaml ships.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cleanupStale, NetnsSet } from '@podnet/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { parseSysctlConf } from './node-sysctls.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const CLI = join(HERE, '../dist/podnet-agent.js');
const set = new NetnsSet();
let dir: string;
beforeAll(async () => {
  await cleanupStale();
  dir = mkdtempSync(join(tmpdir(), 'podnet-node-sysctls-'));
});
afterAll(async () => {
  await set.destroy();
  rmSync(dir, { recursive: true, force: true });
});

describe('podnet-agent node-sysctls', () => {
  it("turns the node's forwarding on from the shipped node-sysctls.conf, and only that", async () => {
    const cm = parseYaml(readFileSync(join(HERE, '../../../deploy/configmap.yaml'), 'utf8')) as {
      data: Record<string, string>;
    };
    const file = join(dir, 'node-sysctls.conf');
    writeFileSync(file, cm.data['node-sysctls.conf']!);
    const ns = await set.create('sysctl');
    const read = async (k: string) => (await ns.exec('cat', [`/proc/sys/${k}`])).stdout.trim();
    expect(await read('net/ipv4/ip_forward'), 'a new namespace starts with forwarding off').toBe('0');
    const before6 = await read('net/ipv6/conf/all/forwarding');
    const r = await ns.exec(process.execPath, [CLI, 'node-sysctls', file, '--log-level', 'info']);
    expect(r.code, r.stderr).toBe(0);
    expect(await read('net/ipv4/ip_forward')).toBe('1');
    expect(await read('net/ipv6/conf/all/forwarding'), 'IPv6 forwarding is left alone').toBe(before6);
    expect(r.stdout).toContain('"changed":["net/ipv4/ip_forward"]');
    // A second run finds nothing to change (compare, then write).
    const again = await ns.exec(process.execPath, [CLI, 'node-sysctls', file]);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toContain('"changed":[]');
  });

  it('refuses a bad line naming the file and the line', async () => {
    expect(() => parseSysctlConf('net.ipv4.ip_forward = 1\nbogus\n', 'x.conf')).toThrow(
      /line 2 \(from x\.conf\).*"bogus"/,
    );
    expect(
      parseSysctlConf('# c\n; c\nnet/ipv4/conf/eth0.100/forwarding=1\nnet.ipv4.ip_forward = 1\n', 'x'),
    ).toEqual([
      { key: 'net/ipv4/conf/eth0.100/forwarding', value: '1' },
      { key: 'net/ipv4/ip_forward', value: '1' },
    ]);
  });
});
