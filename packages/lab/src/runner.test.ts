// The namespace runner against the real kernel and a real BIRD: the parts of the lab that do not
// need the agent (bridges, veths, addresses, the ToR, the client), and that `down` and a re-run
// after an interrupted run leave nothing behind. Namespaces use a per-run prefix (pnt-l<pid>-).
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanupStaleLabs, Lab, type LabConfig } from './runner.js';
import { processStartTime } from './state.js';

const repoRoot = resolve(import.meta.dirname, '..', '..', '..');
const prefix = `pnt-l${process.pid}-`;
const config: LabConfig = {
  repoRoot,
  composeFile: join(repoRoot, 'compose.yaml'),
  stateDir: `/tmp/podnet-lab-test-${process.pid}`,
  prefix,
  only: ['tor', 'client'],
};

const netns = () => (existsSync('/var/run/netns') ? readdirSync('/var/run/netns') : []);
const rootLinks = () =>
  (JSON.parse(execFileSync('ip', ['-json', 'link', 'show']).toString()) as { ifname: string }[])
    .map((l) => l.ifname)
    .sort();
const ip = (ns: string, ...args: string[]) => execFileSync('ip', ['-n', ns, ...args]).toString();

let lab: Lab;
let linksBefore: string[];

beforeAll(async () => {
  await cleanupStaleLabs(/^pnt-l(\d+)[a-z]*-/);
  linksBefore = rootLinks();
  lab = new Lab(config);
  await lab.up();
}, 120_000);

afterAll(async () => {
  await new Lab(config).down({ quiet: true });
});

describe('lab runner on namespaces (ToR and client)', () => {
  it('creates one namespace per service plus one holding the bridges', () => {
    expect(
      netns()
        .filter((n) => n.startsWith(prefix))
        .sort(),
    ).toEqual([`${prefix}client`, `${prefix}net`, `${prefix}tor`]);
    const bridges = JSON.parse(ip(`${prefix}net`, '-json', 'link', 'show', 'type', 'bridge')) as {
      ifname: string;
    }[];
    // br-rack2: the ToR's interface on the second rack's subnet (used by profile racks).
    expect(bridges.map((b) => b.ifname).sort()).toEqual(['br-external', 'br-fabric', 'br-rack2']);
  });

  it('gives the client its compose addresses and a default route via the ToR only', () => {
    const addrs = ip(`${prefix}client`, '-br', 'addr', 'show', 'eth0');
    expect(addrs).toContain('10.89.0.10/24');
    expect(addrs).toContain('fd00:89::10/64');
    expect(ip(`${prefix}client`, 'route', 'show', 'default')).toContain('via 10.89.0.254');
  });

  it('joins the client and the ToR through the external bridge', async () => {
    expect(await lab.ping(`${prefix}client`, '10.89.0.254')).toBe(true);
    expect(await lab.ping(`${prefix}client`, 'fd00:89::fe')).toBe(true);
  });

  it('runs BIRD in the ToR namespace with a BGP session configured per node and address family', async () => {
    const rows = await lab.birdProtocols(lab.service('tor'));
    expect(rows.map((r) => r.peer).sort()).toEqual([
      'node_a_v4',
      'node_a_v6',
      'node_b_v4',
      'node_b_v6',
      'node_c_v4',
      'node_c_v6',
    ]);
    expect(ip(`${prefix}tor`, 'addr', 'show', 'eth0')).toContain('10.88.0.254/24');
    expect(
      execFileSync('ip', ['netns', 'exec', `${prefix}tor`, 'sysctl', '-n', 'net.ipv4.ip_forward'])
        .toString()
        .trim(),
    ).toBe('1');
  });

  it('leaves the links of the namespace it runs in untouched', () => {
    expect(rootLinks()).toEqual(linksBefore);
  });

  it('cleans up the leftovers of an interrupted run before starting again', async () => {
    const birdBefore = lab.processes.find((p) => p.service === 'tor');
    // A second `up` without `down`, as after a crash: the old BIRD and namespaces must go first.
    const again = new Lab(config);
    await again.up();
    expect(birdBefore && processStartTime(birdBefore.pid)).toBeUndefined();
    expect(netns().filter((n) => n.startsWith(prefix))).toHaveLength(3);
    lab = again;
  }, 60_000);

  it('removes every namespace, process and file on down, and a second down is a no-op', async () => {
    const pids = lab.processes.map((p) => p.pid);
    expect(pids.length).toBeGreaterThan(0);
    const first = await new Lab(config).down();
    expect(first.namespaces).toBe(3);
    expect(netns().filter((n) => n.startsWith(prefix))).toEqual([]);
    for (const pid of pids) expect(processStartTime(pid)).toBeUndefined();
    expect(existsSync(config.stateDir)).toBe(false);
    expect(await new Lab(config).down()).toEqual({ processes: 0, namespaces: 0 });
    expect(rootLinks()).toEqual(linksBefore);
  }, 60_000);
});
