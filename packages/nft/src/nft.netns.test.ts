// The nf_tables layer against the real kernel, in a namespace of its own, with `nft -j list
// ruleset` (run by the test, not by the package) as the independent reader.
import { cleanupStale, type Netns, NetnsSet } from '@podnet/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { natModel } from './__fixtures__/models.js';
import { NftError } from './errors.js';
import { nftCli } from './exec.js';
import type { Table } from './model.js';
import { NftTable } from './nft.js';

type Item = Record<string, Record<string, unknown>>;

const lab = new NetnsSet();
let ns: Netns;
let nft: NftTable;

/** The whole ruleset of the namespace, read by the test itself. */
async function ruleset(): Promise<Item[]> {
  return (JSON.parse(await ns.run('nft', ['-j', 'list', 'ruleset'])) as { nftables: Item[] }).nftables;
}
const ofTable = (items: Item[], table: string, kind: string) =>
  items.filter((i) => i[kind] && i[kind].table === table).map((i) => i[kind]!);
const setElems = (items: Item[], name: string) =>
  ofTable(items, 'podnet', 'set').find((s) => s.name === name)?.elem;
const ruleHandles = (items: Item[]) => ofTable(items, 'podnet', 'rule').map((r) => `${r.chain}#${r.handle}`);

// Another table in the namespace, of the same family, with a base chain on the same hook as podnet's.
const OTHER = `table inet hostfw {
  set allowed { type ipv4_addr; elements = { 192.0.2.1 } }
  chain input {
    type filter hook input priority filter; policy accept;
    ip saddr @allowed counter accept
  }
  chain forward {
    type filter hook forward priority filter; policy drop;
    ct state established,related accept
  }
}
`;

describe('NftTable in a namespace with the real nft', () => {
  let otherBefore: string;

  beforeAll(async () => {
    await cleanupStale();
    ns = await lab.create('nft');
    await ns.run('nft', ['-f', '-'], { input: OTHER });
    otherBefore = await ns.run('nft', ['-j', 'list', 'table', 'inet', 'hostfw']);
    nft = new NftTable({ exec: nftCli({ netns: ns.name }) });
  });

  afterAll(async () => {
    // The other table is exactly as the test made it, after every sync, refusal and repair below.
    try {
      expect(await ns.run('nft', ['-j', 'list', 'table', 'inet', 'hostfw'])).toBe(otherBefore);
    } finally {
      await lab.destroy();
    }
  });

  it('applies a model from empty and reads it back with nft -j', async () => {
    const r = await nft.sync(natModel());
    expect(r.mode).toBe('full');
    const items = await ruleset();
    expect(ofTable(items, 'podnet', 'chain').map((c) => c.name)).toEqual([
      'nat-postrouting',
      'forward',
      'pod-ingress',
    ]);
    expect(ofTable(items, 'podnet', 'chain')[0]).toMatchObject({
      type: 'nat',
      hook: 'postrouting',
      prio: 100,
    });
    expect(ofTable(items, 'podnet', 'rule')).toHaveLength(6);
    expect(setElems(items, 'pools4')).toEqual([{ prefix: { addr: '10.65.0.0', len: 16 } }]);
    expect(setElems(items, 'pod-ifs')).toEqual(['pn0001']);
    const masq = ofTable(items, 'podnet', 'rule').find((x) => x.chain === 'nat-postrouting')!;
    expect(masq.comment).toBe('pods to outside every pool');
    expect(JSON.stringify(masq.expr)).toContain('"masquerade"');
    expect(await nft.drift()).toEqual({ structural: [], elements: [] });
    expect(await nft.sync(natModel())).toMatchObject({ mode: 'none', script: '' });
  });

  it('a set change is an element update: every rule keeps its handle', async () => {
    const before = ruleHandles(await ruleset());
    const r = await nft.sync(natModel(['10.65.0.0/16', '10.96.0.0/12'], ['53', '5353']));
    expect(r.mode).toBe('elements');
    expect(r.script).not.toContain('rule');
    const items = await ruleset();
    expect(ruleHandles(items)).toEqual(before);
    expect(setElems(items, 'pools4')).toEqual([
      { prefix: { addr: '10.65.0.0', len: 16 } },
      { prefix: { addr: '10.96.0.0', len: 12 } },
    ]);
    expect(setElems(items, 'dns-ports')).toEqual([53, 5353]);
    // And back: elements deleted, rules untouched.
    expect((await nft.sync(natModel(['10.96.0.0/12']))).mode).toBe('elements');
    const after = await ruleset();
    expect(ruleHandles(after)).toEqual(before);
    expect(setElems(after, 'pools4')).toEqual([{ prefix: { addr: '10.96.0.0', len: 12 } }]);
  });

  it('a model the kernel refuses changes nothing (one transaction)', async () => {
    const before = await ns.run('nft', ['-j', 'list', 'ruleset']);
    // Valid to the renderer, refused by the kernel: two regular chains that jump to each other (a loop).
    const broken: Table = natModel(['10.1.0.0/16']);
    broken.chains.push(
      { name: 'loop-a', rules: [{ action: { kind: 'jump', chain: 'loop-b' } }] },
      { name: 'loop-b', rules: [{ action: { kind: 'jump', chain: 'loop-a' } }] },
    );
    broken.chains[2]!.rules.unshift({ action: { kind: 'jump', chain: 'loop-a' } });
    const err = await nft.sync(broken).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NftError);
    expect((err as NftError).code).toBe('NFT_ERR_APPLY');
    expect((err as NftError).stderr).toMatch(/Could not process rule/); // the kernel's refusal, not a parse error
    expect(await ns.run('nft', ['-j', 'list', 'ruleset'])).toBe(before);
  });

  it('a rule deleted by hand is drift; the next sync repairs it', async () => {
    const model = natModel(['10.96.0.0/12']);
    expect(await nft.sync(model)).toMatchObject({ mode: 'none', script: '' });
    const fwd = ofTable(await ruleset(), 'podnet', 'rule').filter((r) => r.chain === 'forward');
    await ns.run('nft', ['delete', 'rule', 'inet', 'podnet', 'forward', 'handle', String(fwd[0]!.handle)]);
    expect(ofTable(await ruleset(), 'podnet', 'rule').filter((r) => r.chain === 'forward')).toHaveLength(1);
    expect((await nft.drift()).structural).toEqual(['chain forward has 1 rules, want 2']);
    expect((await nft.sync(model)).mode).toBe('full');
    expect(await nft.drift()).toEqual({ structural: [], elements: [] });
    const items = await ruleset();
    expect(ofTable(items, 'podnet', 'rule').filter((r) => r.chain === 'forward')).toHaveLength(2);
  });

  it('a flushed table and an element added by hand are drift; the next sync repairs both', async () => {
    const model = natModel(['10.96.0.0/12']);
    await ns.run('nft', ['add', 'element', 'inet', 'podnet', 'pools4', '{ 192.0.2.0/24 }']);
    expect((await nft.drift()).elements).toEqual([{ set: 'pools4', add: [], delete: ['192.0.2.0/24'] }]);
    expect((await nft.sync(model)).mode).toBe('elements');
    await ns.run('nft', ['flush', 'table', 'inet', 'podnet']);
    expect((await nft.drift()).structural.length).toBeGreaterThan(0);
    expect((await nft.sync(model)).mode).toBe('full');
    expect(await nft.drift()).toEqual({ structural: [], elements: [] });
  });

  it('reads the same table through a namespace path (nsenter) as through its name', async () => {
    const byName = await nftCli({ netns: ns.name }).list('podnet');
    expect(byName).not.toBeNull();
    expect(await nftCli({ netns: ns.path }).list('podnet')).toBe(byName);
    expect(await nftCli({ netns: ns.path }).list('absent')).toBeNull();
  });

  it('element changes of sets and maps without interval go over netlink: every rule keeps its handle', async () => {
    const model = natModel(['10.96.0.0/12']);
    expect((await nft.sync(model)).mode).toBe('none');
    const before = ruleHandles(await ruleset());
    const bigger = natModel(['10.96.0.0/12'], ['53', '853']);
    bigger.sets!.find((x) => x.name === 'pod-ifs')!.elements.push('pn0002');
    bigger.maps![0]!.elements.push({ key: '10.65.0.2', verdict: { kind: 'jump', chain: 'pod-ingress' } });
    const skipped = nft.counters.readsSkipped;
    const r = await nft.sync(bigger);
    expect(r).toMatchObject({ mode: 'elements', via: 'netlink', repaired: [] });
    expect(nft.counters.readsSkipped).toBe(skipped + 1);
    let items = await ruleset();
    expect(ruleHandles(items)).toEqual(before);
    expect(setElems(items, 'dns-ports')).toEqual([53, 853]);
    expect(setElems(items, 'pod-ifs')).toEqual(['pn0001', 'pn0002']);
    const policy = ofTable(items, 'podnet', 'map').find((m) => m.name === 'pod-policy')!.elem;
    expect(policy).toEqual([
      ['10.65.0.1', { jump: { target: 'pod-ingress' } }],
      ['10.65.0.2', { jump: { target: 'pod-ingress' } }],
    ]);
    // And back: deleted over netlink too.
    expect(await nft.sync(model)).toMatchObject({ mode: 'elements', via: 'netlink' });
    items = await ruleset();
    expect(ruleHandles(items)).toEqual(before);
    expect(setElems(items, 'dns-ports')).toEqual([53]);
    expect(setElems(items, 'pod-ifs')).toEqual(['pn0001']);
    expect(ofTable(items, 'podnet', 'map').find((m) => m.name === 'pod-policy')!.elem).toEqual([
      ['10.65.0.1', { jump: { target: 'pod-ingress' } }],
    ]);
    expect(await nft.drift()).toEqual({ structural: [], elements: [] });
  });

  it("update() adds and removes one pod's elements over netlink; the kernel holds exactly them", async () => {
    const model = natModel(['10.96.0.0/12']);
    expect((await nft.sync(model)).mode).toBe('none');
    const before = ruleHandles(await ruleset());
    const r = await nft.update([
      { set: 'pod-ifs', add: ['pn0042'] },
      { map: 'pod-policy', add: [{ key: '10.65.0.42', verdict: { kind: 'jump', chain: 'pod-ingress' } }] },
    ]);
    expect(r).toMatchObject({ mode: 'elements', via: 'netlink' });
    let items = await ruleset();
    expect(ruleHandles(items)).toEqual(before);
    expect(setElems(items, 'pod-ifs')).toEqual(['pn0001', 'pn0042']);
    expect(ofTable(items, 'podnet', 'map').find((m) => m.name === 'pod-policy')!.elem).toContainEqual([
      '10.65.0.42',
      { jump: { target: 'pod-ingress' } },
    ]);
    await nft.update([
      { set: 'pod-ifs', delete: ['pn0042'] },
      { map: 'pod-policy', delete: ['10.65.0.42'] },
    ]);
    items = await ruleset();
    expect(setElems(items, 'pod-ifs')).toEqual(['pn0001']);
    expect(await nft.drift()).toEqual({ structural: [], elements: [] });
    expect(await nft.sync(model)).toMatchObject({ mode: 'none', script: '' });
  });

  it('concatenated keys (ifname . address, ifname . port): sync, update() over netlink, nft reads them back', async () => {
    const own = new NftTable({ exec: nftCli({ netns: ns.name }) });
    const model: Table = {
      name: 'podnetcat',
      chains: [
        {
          name: 'forward',
          base: { type: 'filter', hook: 'forward', priority: 'filter' },
          rules: [
            {
              match: [{ kind: 'concat', fields: ['oifname', 'ip saddr'], set: 'in4' }],
              action: { kind: 'accept' },
            },
            {
              match: [{ kind: 'concat', fields: ['oifname', 'ip6 saddr'], set: 'in6' }],
              action: { kind: 'accept' },
            },
            {
              match: [
                { kind: 'l4', proto: 'tcp' },
                { kind: 'concat', fields: ['iifname', 'th dport'], set: 'outdeny' },
              ],
              action: { kind: 'drop' },
            },
          ],
        },
      ],
      sets: [
        { name: 'in4', type: 'ifname . ipv4_addr', elements: ['pn0001 . 10.65.0.2'] },
        { name: 'in6', type: 'ifname . ipv6_addr', elements: [] },
        { name: 'outdeny', type: 'ifname . inet_service', elements: ['pn0001 . 25'] },
      ],
    };
    try {
      expect((await own.sync(model)).mode).toBe('full');
      const r = await own.update([
        { set: 'in4', add: ['pn0002 . 10.65.0.3'], delete: ['pn0001 . 10.65.0.2'] },
        { set: 'in6', add: ['pn0002 . fd00:65::3'] },
        { set: 'outdeny', add: ['pn0002 . 443'] },
      ]);
      expect(r).toMatchObject({ mode: 'elements', via: 'netlink' });
      const sets = ofTable(await ruleset(), 'podnetcat', 'set');
      const elems = (n: string) => sets.find((x) => x.name === n)?.elem;
      expect(elems('in4')).toEqual([{ concat: ['pn0002', '10.65.0.3'] }]);
      expect(elems('in6')).toEqual([{ concat: ['pn0002', 'fd00:65::3'] }]);
      expect(elems('outdeny')).toEqual(
        expect.arrayContaining([{ concat: ['pn0001', 25] }, { concat: ['pn0002', 443] }]),
      );
      expect(await own.drift()).toEqual({ structural: [], elements: [] });
      await ns.run('nft', ['delete', 'table', 'inet', 'podnetcat']);
    } finally {
      own.close();
    }
  });

  it('a fast-path transaction the kernel refuses changes nothing and names the element and the errno', async () => {
    const exec = nftCli({ netns: ns.name });
    try {
      const before = await ns.run('nft', ['-j', 'list', 'ruleset']);
      const err = await exec.applyElements!('podnet', [
        { set: 'pod-ifs', kind: 'set', type: 'ifname', add: ['pn0777'], delete: [] },
        { set: 'dns-ports', kind: 'set', type: 'inet_service', add: [], delete: ['9999'] },
      ]).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(NftError);
      expect((err as NftError).code).toBe('NFT_ERR_APPLY');
      expect((err as NftError).message).toContain('delete element inet podnet dns-ports { 9999 }: ENOENT');
      expect(await ns.run('nft', ['-j', 'list', 'ruleset'])).toBe(before); // pn0777 was not added either
      const gen = await exec.generation!();
      expect(
        await exec.applyElements!('podnet', [
          { set: 'pod-ifs', kind: 'set', type: 'ifname', add: ['pn0777'], delete: [] },
        ]),
      ).toBe(gen + 1);
      expect(setElems(await ruleset(), 'pod-ifs')).toEqual(['pn0001', 'pn0777']);
      await exec.applyElements!('podnet', [
        { set: 'pod-ifs', kind: 'set', type: 'ifname', add: [], delete: ['pn0777'] },
      ]);
    } finally {
      exec.close!();
    }
  });

  it('a rule replaced in place (same count, other content) is drift; the next sync repairs it', async () => {
    const model = natModel(['10.96.0.0/12']);
    expect((await nft.sync(model)).mode).toBe('none');
    const fwd = ofTable(await ruleset(), 'podnet', 'rule').filter((r) => r.chain === 'forward');
    const original = JSON.stringify(fwd[0]!.expr);
    await ns.run('nft', [
      'replace',
      'rule',
      'inet',
      'podnet',
      'forward',
      'handle',
      String(fwd[0]!.handle),
      'accept',
    ]);
    expect(ofTable(await ruleset(), 'podnet', 'rule').filter((r) => r.chain === 'forward')).toHaveLength(2);
    expect((await nft.drift()).structural).toEqual(['chain forward rule 1 differs from the one applied']);
    const repairs = nft.counters.driftRepairs;
    const r = await nft.sync(model);
    expect(r).toMatchObject({
      mode: 'full',
      repaired: ['chain forward rule 1 differs from the one applied'],
    });
    expect(nft.counters.driftRepairs).toBe(repairs + 1);
    const after = ofTable(await ruleset(), 'podnet', 'rule').filter((r) => r.chain === 'forward');
    expect(JSON.stringify(after[0]!.expr)).toBe(original);
    expect(await nft.drift()).toEqual({ structural: [], elements: [] });
  });

  it('a change in another table moves the generation: the next sync reads the table and finds no drift', async () => {
    const model = natModel(['10.96.0.0/12']);
    expect((await nft.sync(model)).mode).toBe('none');
    const { readsSkipped, generation } = nft.counters;
    await ns.run('nft', ['add', 'table', 'inet', 'scratch']);
    await ns.run('nft', ['delete', 'table', 'inet', 'scratch']);
    expect(await nft.sync(model)).toMatchObject({ mode: 'none', script: '' });
    expect(nft.counters.readsSkipped).toBe(readsSkipped);
    expect(nft.counters.generation).toBe(generation! + 2);
    expect(await nft.sync(model)).toMatchObject({ mode: 'none', script: '' });
    expect(nft.counters.readsSkipped).toBe(readsSkipped + 1);
  });

  it('removes chains and sets the model no longer has, and the whole table when deleted by hand it comes back', async () => {
    const smaller = natModel(['10.96.0.0/12']);
    smaller.chains = smaller.chains.slice(0, 1);
    smaller.maps = [];
    smaller.sets = smaller.sets!.filter((s) => s.name === 'pools4');
    // The kernel held the last model: only what goes away is deleted (a patch).
    expect((await nft.sync(smaller)).mode).toBe('patch');
    let items = await ruleset();
    expect(ofTable(items, 'podnet', 'chain').map((c) => c.name)).toEqual(['nat-postrouting']);
    expect(ofTable(items, 'podnet', 'set').map((s) => s.name)).toEqual(['pools4']);
    expect(ofTable(items, 'podnet', 'map')).toEqual([]);
    await ns.run('nft', ['delete', 'table', 'inet', 'podnet']);
    expect((await nft.drift()).structural).toEqual(['table inet podnet is missing']);
    expect((await nft.sync(smaller)).mode).toBe('full');
    items = await ruleset();
    expect(ofTable(items, 'podnet', 'rule')).toHaveLength(1);
  });

  it('never touched the other table in the namespace (after every sync, refusal and repair above)', async () => {
    expect(await ns.run('nft', ['-j', 'list', 'table', 'inet', 'hostfw'])).toBe(otherBefore);
    const items = await ruleset();
    expect(ofTable(items, 'hostfw', 'chain').map((c) => c.name)).toEqual(['input', 'forward']);
    expect(ofTable(items, 'hostfw', 'rule')).toHaveLength(2);
  });
});
