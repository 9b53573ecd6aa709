// What an operator sees right after `npm run lab`: `podnetctl routes` run in a node shows each
// route's state from the agent (installed only once the kernel acknowledged it and a later dump
// holds it) beside its own reading of the node's kernel; a route deleted by hand comes back and is
// reported installed again.
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { downScenarioLab, type Lab, repoRoot, scenarioConfig, upScenarioLab } from './harness.js';

const pexec = promisify(execFile);
const CTL = join(repoRoot, 'packages/ctl/dist/cli.js');
const config = scenarioConfig('rs', { podsPerNode: 1 });
let lab: Lab;

interface Row {
  dst: string;
  type: string;
  source: string;
  state: string;
  kernel: string;
}

async function ctlRoutes(ns: string): Promise<{ kernelRead: boolean; routes: Row[] }> {
  const { stdout } = await pexec('ip', ['netns', 'exec', ns, process.execPath, CTL, 'routes', '-o', 'json'], {
    timeout: 30_000,
  });
  return JSON.parse(stdout) as { kernelRead: boolean; routes: Row[] };
}

/** Polls (bounded) until every route of the node is installed and present in its kernel. */
async function allInstalled(ns: string): Promise<Row[]> {
  let last: Row[] = [];
  for (let i = 0; i < 60; i++) {
    const doc = await ctlRoutes(ns);
    last = doc.routes;
    if (
      doc.kernelRead &&
      last.length > 0 &&
      last.every((r) => r.state === 'installed' && r.kernel === 'present')
    )
      return last;
    await new Promise((r) => setTimeout(r, 500));
  }
  throw new Error(`routes in ${ns} not all installed and present: ${JSON.stringify(last)}`);
}

beforeAll(async () => {
  lab = await upScenarioLab(config);
});

afterAll(() => downScenarioLab(config));

describe('route status in the lab (3 nodes, BIRD ToR)', () => {
  it('podnetctl routes in a node shows every route installed by the agent and present in the kernel', async () => {
    const node = lab.service('node-a');
    const rows = await allInstalled(node.ns);
    // The node's own pod, its blocks (v4 and v6) and node-b's blocks, learned over BGP.
    expect(rows.some((r) => r.type === 'local')).toBe(true);
    expect(rows.some((r) => r.type === 'blackhole')).toBe(true);
    expect(rows.some((r) => r.type === 'remote')).toBe(true);
    expect(rows.filter((r) => r.state === 'stale')).toEqual([]);
    const { stdout } = await pexec('ip', ['-n', node.ns, '-json', 'route', 'show', 'proto', '213']);
    expect((JSON.parse(stdout) as unknown[]).length).toBe(rows.filter((r) => !r.dst.includes(':')).length);
  });

  it('puts back a route deleted by hand and reports it installed again', async () => {
    const node = lab.service('node-a');
    const remote = (await allInstalled(node.ns)).find((r) => r.type === 'remote' && !r.dst.includes(':'))!;
    await pexec('ip', ['-n', node.ns, 'route', 'del', remote.dst, 'proto', '213']);
    const rows = await allInstalled(node.ns);
    expect(rows.find((r) => r.dst === remote.dst)).toMatchObject({ state: 'installed', kernel: 'present' });
  });
});
