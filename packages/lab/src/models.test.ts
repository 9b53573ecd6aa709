import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseCompose } from './compose.js';
import { LabError } from './errors.js';
import {
  expectedFor,
  FLAT,
  modelPoolFields,
  parseModels,
  selectModel,
  TRAFFIC,
  torExportFilters,
} from './models.js';
import { Lab } from './runner.js';
import { type MeasuredRow, planTable, renderTable, rowProblems } from './table.js';

const project = parseCompose(readFileSync(new URL('../../../compose.yaml', import.meta.url), 'utf8'));
const models = project.settings.models;
const model = (name: string) => selectModel(models, name);

describe('x-podnet.models', () => {
  it('the repository compose file defines flat, island and isolated', () => {
    expect(models.map((m) => [m.name, m.natOutgoing, m.isolated, m.podRoutesToTor])).toEqual([
      ['flat', false, false, true],
      ['island', true, false, false],
      ['isolated', false, true, true],
    ]);
  });

  it('defaults to flat, and to flat alone when the file names no models', () => {
    expect(selectModel(models, undefined).name).toBe('flat');
    expect(parseModels(undefined)).toEqual([FLAT]);
  });

  it('refuses an unknown model naming the flag, the value and the known ones', () => {
    expect(() => selectModel(models, 'overlay')).toThrow(
      /--model "overlay": no such model in x-podnet.models \(have: flat, island, isolated\)/,
    );
  });

  it.each([
    [{ Island: {} }, /x-podnet.models.Island = "Island": a model name/],
    [{ a: { natOutgoing: 'yes' } }, /x-podnet.models.a.natOutgoing = "yes": expected true or false/],
    [{ a: { natOutgoing: true, isolated: true } }, /x-podnet.models.a.natOutgoing = true: isolated pools/],
    [{ a: { nat: true } }, /x-podnet.models.a.nat = true: unknown field/],
    [[], /x-podnet.models = \[\]: expected a map/],
    [{}, /x-podnet.models = \{\}: names no model/],
  ])('rejects %j with an error naming the field and value', (x, message) => {
    let err: unknown;
    try {
      parseModels(x);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(LabError);
    expect((err as Error).message).toMatch(message);
  });
});

describe('what a model writes to the API', () => {
  const pools = project.settings.ipPools;

  it('sets natOutgoing on every pool, and isolated only where the model isolates', () => {
    expect(modelPoolFields(model('flat'))).toEqual({ natOutgoing: false });
    expect(modelPoolFields(model('island'))).toEqual({ natOutgoing: true });
    expect(modelPoolFields(model('isolated'))).toEqual({ natOutgoing: false, isolated: true });
  });

  it('island: the ToR peers reject each pool of their family and everything inside it', () => {
    expect(torExportFilters(model('island'), pools, 4)).toEqual([
      { cidr: '10.244.0.0/16', ge: 16, le: 32, action: 'Reject' },
    ]);
    expect(torExportFilters(model('island'), pools, 6)).toEqual([
      { cidr: 'fd00:244::/48', ge: 48, le: 128, action: 'Reject' },
    ]);
  });

  it('flat and isolated: the ToR learns the pod blocks (no export filter)', () => {
    expect(torExportFilters(model('flat'), pools, 4)).toEqual([]);
    expect(torExportFilters(model('isolated'), pools, 6)).toEqual([]);
  });
});

describe('the model table', () => {
  const nodes = [
    { name: 'node-a', ns: 'n-a', ipv4: '10.88.0.11', ipv6: 'fd00:88::11' },
    { name: 'node-b', ns: 'n-b', ipv4: '10.88.0.12', ipv6: 'fd00:88::12' },
  ];
  const pods = [
    { name: 'pa0', ns: 'p-a0', node: 'node-a', ipv4: '10.244.0.0', ipv6: 'fd00:244::' },
    { name: 'pa1', ns: 'p-a1', node: 'node-a', ipv4: '10.244.0.1', ipv6: 'fd00:244::1' },
    { name: 'pb0', ns: 'p-b0', node: 'node-b', ipv4: '10.244.0.128' },
  ];
  const external = { name: 'client', ns: 'c', ipv4: '10.89.0.10', ipv6: 'fd00:89::10' };

  it('pairs every kind of traffic, each family only where both ends have it', () => {
    const rows = planTable(model('flat'), { pods, nodes, external });
    const count = (t: string) => rows.filter((r) => r.traffic === t).length;
    expect(TRAFFIC.map(count)).toEqual([2, 4, 6, 3, 3, 2]);
    const toPb0 = rows.find((r) => r.traffic === 'pod→pod cross node' && r.to.name === 'pb0');
    expect(toPb0?.expected).toEqual({ 4: '10.244.0.0' });
  });

  it.each([
    ['flat', '10.244.0.0', '10.89.0.10'],
    ['island', '10.88.0.11', null],
    ['isolated', null, null],
  ])('%s: pod→external sees %s, external→pod sees %s', (name, podOut, extIn) => {
    const rows = planTable(model(name), { pods, nodes, external });
    const out = rows.find((r) => r.traffic === 'pod→external' && r.from.name === 'pa0');
    const inn = rows.find((r) => r.traffic === 'external→pod' && r.to.name === 'pa0');
    expect(out?.expected[4]).toBe(podOut);
    expect(inn?.expected[4]).toBe(extIn);
    // Inside the cluster and to the nodes, nothing changes between models.
    const node = rows.find((r) => r.traffic === 'node→pod' && r.from.name === 'node-b');
    expect(node?.expected).toEqual({ 4: '10.88.0.12', 6: 'fd00:88::12' });
  });

  it('without translation and without pod routes outside, a pod reaches nothing outside', () => {
    const m = { ...FLAT, name: 'x', podRoutesToTor: false };
    expect(expectedFor(m, 'pod→external')).toBe('none');
    expect(expectedFor(m, 'external→pod')).toBe('none');
  });

  it('names each cell that differs from the promise and prints the verdict per row', () => {
    const [row] = planTable(model('island'), { pods, nodes, external }).filter(
      (r) => r.traffic === 'pod→external' && r.from.name === 'pa0',
    );
    if (!row) throw new Error('no row');
    const measured: MeasuredRow = {
      ...row,
      seen: {
        4: { tcp: '10.88.0.11', udp: '10.88.0.11' },
        6: { tcp: 'fd00:244::', udpError: 'timeout' },
      },
    };
    expect(rowProblems(measured)).toEqual([
      'tcp6 saw fd00:244::, want fd00:88::11',
      'udp6 saw nothing (timeout), want fd00:88::11',
    ]);
    const text = renderTable(model('island'), [measured]);
    expect(text).toContain('0/1 rows as promised');
    expect(text).toContain('tcp fd00:244:: / udp none');
    const good: MeasuredRow = {
      ...measured,
      seen: { 4: measured.seen[4], 6: { tcp: 'fd00:88::11', udp: 'fd00:88::11' } },
    };
    expect(rowProblems(good)).toEqual([]);
    const none = planTable(model('isolated'), { pods, nodes, external }).find(
      (r) => r.traffic === 'pod→external',
    );
    if (!none) throw new Error('no row');
    expect(rowProblems({ ...none, seen: { 4: { tcp: '10.244.0.0', udpError: 'timeout' } } })).toContain(
      'tcp4 answered (saw 10.244.0.0), want no connection',
    );
  });
});

describe('a model is also a compose profile', () => {
  it('services tagged with the model name join that model’s lab only', () => {
    const dir = mkdtempSync(join(tmpdir(), 'pnl-models-'));
    const file = join(dir, 'compose.yaml');
    const text = readFileSync(new URL('../../../compose.yaml', import.meta.url), 'utf8');
    writeFileSync(
      file,
      `${text}\n  probe-island:\n    image: x\n    profiles: [island]\n    networks: {external: {ipv4_address: 10.89.0.77}}\n    x-podnet: {role: client}\n`,
    );
    const lab = (m?: string) =>
      new Lab({
        repoRoot: dir,
        composeFile: file,
        stateDir: join(dir, 'state'),
        prefix: 'pnx-',
        ...(m ? { model: m } : {}),
      });
    try {
      expect(lab('island').model.name).toBe('island');
      expect(lab('island').plan.services.map((s) => s.name)).toContain('probe-island');
      expect(lab().model.name).toBe('flat');
      expect(lab().plan.services.map((s) => s.name)).not.toContain('probe-island');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
