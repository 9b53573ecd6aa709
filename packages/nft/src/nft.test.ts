// NftTable.sync's choice of transaction, against the in-memory executor.
import { describe, expect, it } from 'vitest';
import { FakeExecutor } from './__fixtures__/fake.js';
import { natModel } from './__fixtures__/models.js';
import { NftError } from './errors.js';
import { nftCli } from './exec.js';
import { type ElementUpdate, NftTable } from './nft.js';

/** A sync()'s phases: four times in ms. */
const anyPhases = {
  check: expect.any(Number),
  plan: expect.any(Number),
  apply: expect.any(Number),
  readBack: expect.any(Number),
};

/** A listing equal to natModel(pools) as the kernel would print it, with `forwardRules` rules in forward. */
function listing(
  pools: string[],
  forwardRules = 2,
  opts: { ports?: number[]; ifs?: string[]; policy?: [string, string][]; forwardExpr?: unknown[] } = {},
): string {
  const t = 'podnet';
  const rule = (chain: string, handle: number, expr: unknown[] = []) => ({
    rule: { family: 'inet', table: t, chain, handle, expr },
  });
  return JSON.stringify({
    nftables: [
      { table: { family: 'inet', name: t } },
      {
        chain: {
          family: 'inet',
          table: t,
          name: 'nat-postrouting',
          type: 'nat',
          hook: 'postrouting',
          prio: 100,
          policy: 'accept',
        },
      },
      {
        chain: {
          family: 'inet',
          table: t,
          name: 'forward',
          type: 'filter',
          hook: 'forward',
          prio: 0,
          policy: 'accept',
        },
      },
      { chain: { family: 'inet', table: t, name: 'pod-ingress' } },
      {
        set: {
          family: 'inet',
          table: t,
          name: 'pools4',
          type: 'ipv4_addr',
          flags: ['interval'],
          comment: 'IPv4 pools',
          elem: pools,
        },
      },
      {
        set: {
          family: 'inet',
          table: t,
          name: 'pools6',
          type: 'ipv6_addr',
          flags: ['interval'],
          elem: [{ prefix: { addr: 'fd00:65::', len: 48 } }],
        },
      },
      {
        set: { family: 'inet', table: t, name: 'dns-ports', type: 'inet_service', elem: opts.ports ?? [53] },
      },
      { set: { family: 'inet', table: t, name: 'pod-ifs', type: 'ifname', elem: opts.ifs ?? ['pn0001'] } },
      {
        map: {
          family: 'inet',
          table: t,
          name: 'pod-policy',
          type: 'ipv4_addr',
          map: 'verdict',
          elem: (opts.policy ?? [['10.65.0.1', 'pod-ingress']]).map(([k, c]) => [k, { jump: { target: c } }]),
        },
      },
      rule('nat-postrouting', 1),
      ...Array.from({ length: forwardRules }, (_, i) =>
        rule('forward', 10 + i, i === 0 ? (opts.forwardExpr ?? []) : []),
      ),
      ...[1, 2, 3].map((h) => rule('pod-ingress', 20 + h)),
    ],
  });
}

describe('NftTable.sync', () => {
  it('first sync of a process is a full transaction even when the kernel already holds the model', async () => {
    const fake = new FakeExecutor();
    fake.listing = listing(['10.65.0.0/16']);
    const nft = new NftTable({ exec: fake });
    const r = await nft.sync(natModel());
    expect(r.mode).toBe('full');
    expect(fake.applied).toEqual([r.script]);
    expect(r.script.startsWith('add table inet podnet\nflush table inet podnet\n')).toBe(true);
  });

  it('then an element change is an element transaction, and an equal kernel needs none', async () => {
    const fake = new FakeExecutor();
    const nft = new NftTable({ exec: fake });
    fake.listing = listing(['10.65.0.0/16']);
    await nft.sync(natModel());
    const r = await nft.sync(natModel(['10.65.0.0/16', '10.66.0.0/16']));
    expect(r).toEqual({
      mode: 'elements',
      script: 'add element inet podnet pools4 { 10.66.0.0/16 }\n',
      via: 'nft',
      repaired: [],
      phases: anyPhases,
    });
    fake.listing = listing(['10.65.0.0/16', '10.66.0.0/16']);
    expect(await nft.sync(natModel(['10.65.0.0/16', '10.66.0.0/16']))).toEqual({
      mode: 'none',
      script: '',
      phases: anyPhases,
    });
    expect(fake.applied).toHaveLength(2);
  });

  it('a rule missing in the kernel (drift) gives a full transaction', async () => {
    const fake = new FakeExecutor();
    const nft = new NftTable({ exec: fake });
    await nft.sync(natModel());
    fake.listing = listing(['10.65.0.0/16'], 1);
    expect((await nft.drift()).structural).toEqual(['chain forward has 1 rules, want 2']);
    expect((await nft.sync(natModel())).mode).toBe('full');
  });

  it('a changed rule (same count) gives a full transaction', async () => {
    const fake = new FakeExecutor();
    const nft = new NftTable({ exec: fake });
    await nft.sync(natModel());
    fake.listing = listing(['10.65.0.0/16']);
    const changed = natModel();
    changed.chains[1]!.rules[0]!.counter = true;
    const r = await nft.sync(changed);
    expect(r.mode).toBe('full');
    expect(r.script).toContain('add rule inet podnet forward ct state established,related counter accept\n');
  });

  it('an invalid model never reaches the executor; a refused one surfaces nft stderr', async () => {
    const fake = new FakeExecutor();
    const nft = new NftTable({ exec: fake });
    const bad = natModel(['10.65.0.0/33']);
    await expect(nft.sync(bad)).rejects.toMatchObject({ code: 'NFT_ERR_INVALID' });
    expect(fake.applied).toEqual([]);
    fake.refuse = 'Error: Could not process rule: Too many levels of symbolic links';
    const err = await nft.sync(natModel()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NftError);
    expect(err).toMatchObject({
      code: 'NFT_ERR_APPLY',
      stderr: 'Error: Could not process rule: Too many levels of symbolic links',
    });
  });
});

describe('NftTable.sync with the fast path and the generation', () => {
  const withPolicy = (keys: string[]) => {
    const m = natModel();
    m.maps![0]!.elements = keys.map((key) => ({ key, verdict: { kind: 'jump', chain: 'pod-ingress' } }));
    return m;
  };

  it('sends a change of sets without interval over the fast path and skips the read while the generation holds', async () => {
    const fake = new FakeExecutor({ fast: true });
    const nft = new NftTable({ exec: fake });
    fake.listing = listing(['10.65.0.0/16']);
    expect((await nft.sync(natModel())).mode).toBe('full');
    const lists = fake.lists;
    const r = await nft.sync(withPolicy(['10.65.0.1', '10.65.0.2']));
    expect(r).toMatchObject({ mode: 'elements', via: 'netlink', repaired: [] });
    expect(r.script).toBe('add element inet podnet pod-policy { 10.65.0.2 : jump pod-ingress }\n');
    expect(fake.fastApplied).toEqual([
      [
        {
          set: 'pod-policy',
          kind: 'map',
          type: 'ipv4_addr',
          add: ['10.65.0.2 : jump pod-ingress'],
          delete: [],
        },
      ],
    ]);
    expect(await nft.sync(withPolicy(['10.65.0.2']))).toMatchObject({ mode: 'elements', via: 'netlink' });
    expect(fake.lists).toBe(lists); // the generation was podnet's own: no read
    expect(nft.counters).toEqual({
      fullApplies: 1,
      patches: 0,
      patchesNetlink: 0,
      elementDeltas: 2,
      elementDeltasNetlink: 2,
      driftRepairs: 0,
      readsSkipped: 2,
      generation: fake.gen,
    });
  });

  it('a change that touches an interval set, or that the fast path declines, goes through nft -f', async () => {
    const fake = new FakeExecutor({ fast: true });
    const nft = new NftTable({ exec: fake });
    fake.listing = listing(['10.65.0.0/16']);
    await nft.sync(natModel());
    const both = withPolicy(['10.65.0.1', '10.65.0.9']);
    both.sets![0]!.elements.push('10.66.0.0/16');
    expect(await nft.sync(both)).toMatchObject({ mode: 'elements', via: 'nft' });
    expect(fake.applied.at(-1)).toBe(
      'add element inet podnet pools4 { 10.66.0.0/16 }\nadd element inet podnet pod-policy { 10.65.0.9 : jump pod-ingress }\n',
    );
    fake.fastDeclines = true;
    expect(await nft.sync(natModel(['10.65.0.0/16', '10.66.0.0/16']))).toMatchObject({ via: 'nft' });
    expect(fake.fastApplied).toEqual([]);
    expect(nft.counters.generation).toBe(fake.gen);
  });

  it('a changed generation makes the sync read the table, and a rule edited in place is repaired by a full apply', async () => {
    const fake = new FakeExecutor({ fast: true });
    const nft = new NftTable({ exec: fake });
    fake.listing = listing(['10.65.0.0/16']);
    await nft.sync(natModel());
    // Someone replaced forward's first rule (same count, other content) and bumped the generation.
    fake.listing = listing(['10.65.0.0/16'], 2, { forwardExpr: [{ accept: null }] });
    fake.gen += 1;
    expect((await nft.drift()).structural).toEqual(['chain forward rule 1 differs from the one applied']);
    const lists = fake.lists;
    const r = await nft.sync(natModel());
    expect(fake.lists).toBeGreaterThan(lists);
    expect(r).toMatchObject({
      mode: 'full',
      repaired: ['chain forward rule 1 differs from the one applied'],
    });
    expect(nft.counters).toMatchObject({ fullApplies: 2, driftRepairs: 1, readsSkipped: 0 });
  });

  it('a refused fast-path change leaves the old model: the next sync reads the kernel and retries', async () => {
    const fake = new FakeExecutor({ fast: true });
    const nft = new NftTable({ exec: fake });
    fake.listing = listing(['10.65.0.0/16']);
    await nft.sync(natModel());
    fake.refuse = 'ENOENT';
    await expect(nft.sync(withPolicy(['10.65.0.7']))).rejects.toMatchObject({ code: 'NFT_ERR_APPLY' });
    expect(nft.counters.generation).toBeUndefined();
    const lists = fake.lists;
    const r = await nft.sync(withPolicy(['10.65.0.7']));
    expect(fake.lists).toBe(lists + 1);
    expect(r).toMatchObject({ mode: 'elements', via: 'netlink', repaired: [] });
    expect(fake.fastApplied.at(-1)).toEqual([
      {
        set: 'pod-policy',
        kind: 'map',
        type: 'ipv4_addr',
        add: ['10.65.0.7 : jump pod-ingress'],
        delete: ['10.65.0.1 : jump pod-ingress'],
      },
    ]);
  });
});

describe('NftTable.update', () => {
  async function synced() {
    const fake = new FakeExecutor({ fast: true });
    const nft = new NftTable({ exec: fake });
    fake.listing = listing(['10.65.0.0/16']);
    await nft.sync(natModel());
    return { fake, nft };
  }

  it("changes one pod's elements without the whole model, over the fast path, and sync() agrees after", async () => {
    const { fake, nft } = await synced();
    const lists = fake.lists;
    const r = await nft.update([
      { map: 'pod-policy', add: [{ key: '10.65.0.2', verdict: { kind: 'jump', chain: 'pod-ingress' } }] },
      { set: 'pod-ifs', add: ['pn0002', 'pn0001'], delete: ['pn0009'] },
    ]);
    expect(r).toMatchObject({ mode: 'elements', via: 'netlink' });
    expect(fake.fastApplied).toEqual([
      [
        { set: 'pod-ifs', kind: 'set', type: 'ifname', add: ['pn0002'], delete: [] },
        {
          set: 'pod-policy',
          kind: 'map',
          type: 'ipv4_addr',
          add: ['10.65.0.2 : jump pod-ingress'],
          delete: [],
        },
      ],
    ]);
    // A verdict change is a delete and an add of the key; deleting what is absent is a no-op.
    await nft.update([
      { map: 'pod-policy', add: [{ key: '10.65.0.2', verdict: { kind: 'drop' } }], delete: ['10.65.0.99'] },
    ]);
    expect(fake.fastApplied.at(-1)).toEqual([
      {
        set: 'pod-policy',
        kind: 'map',
        type: 'ipv4_addr',
        add: ['10.65.0.2 : drop'],
        delete: ['10.65.0.2 : jump pod-ingress'],
      },
    ]);
    expect(fake.lists).toBe(lists);
    const same = natModel();
    same.sets!.find((x) => x.name === 'pod-ifs')!.elements.push('pn0002');
    same.maps![0]!.elements.push({ key: '10.65.0.2', verdict: { kind: 'drop' } });
    expect(await nft.sync(same)).toEqual({ mode: 'none', script: '', phases: anyPhases });
    expect(nft.counters).toMatchObject({ elementDeltasNetlink: 2, readsSkipped: 3 });
  });

  it('keeps the elements it changed as its state: later updates and sync() start from them; a refused update changes nothing', async () => {
    const { fake, nft } = await synced();
    await nft.update([{ set: 'pod-ifs', add: ['pn0002', 'pn0003'] }]);
    // Deleting and re-adding in one update, and adding what the last update added: no change.
    await nft.update([
      { set: 'pod-ifs', add: ['pn0003'], delete: ['pn0002'] },
      { set: 'pod-ifs', add: ['pn0002'] },
    ]);
    expect(fake.fastApplied).toHaveLength(1);
    fake.refuse = 'ENOENT';
    await expect(nft.update([{ set: 'pod-ifs', delete: ['pn0001'] }])).rejects.toMatchObject({
      code: 'NFT_ERR_APPLY',
    });
    // The refusal forgot the generation: the next update reads the table (which holds pn0001-3).
    fake.listing = listing(['10.65.0.0/16'], 2, { ifs: ['pn0001', 'pn0002', 'pn0003'] });
    const r = await nft.update([{ set: 'pod-ifs', delete: ['pn0003'] }]);
    expect(r).toMatchObject({ mode: 'elements', repaired: [] });
    expect(fake.fastApplied.at(-1)).toEqual([
      { set: 'pod-ifs', kind: 'set', type: 'ifname', add: [], delete: ['pn0003'] },
    ]);
    await nft.update([{ set: 'pod-ifs', delete: ['pn0001'] }]);
    const want = natModel();
    want.sets!.find((x) => x.name === 'pod-ifs')!.elements = ['pn0002'];
    expect(await nft.sync(want)).toEqual({ mode: 'none', script: '', phases: anyPhases });
    expect(await nft.sync(natModel())).toMatchObject({ mode: 'elements' });
    expect(fake.fastApplied.at(-1)).toEqual([
      { set: 'pod-ifs', kind: 'set', type: 'ifname', add: ['pn0001'], delete: ['pn0002'] },
    ]);
  });

  it.each([
    [[{ set: 'nope', add: ['1.2.3.4'] }], 'changes[0].set: "nope" is not a set of the table'],
    [[{ map: 'pod-ifs', add: [] }], 'changes[0].map: "pod-ifs" is not a map of the table'],
    [
      [{ set: 'pod-ifs', add: ['pn0001', 'bad name!'] }],
      'changes[0].add[1]: "bad name!" is not a ifname element',
    ],
    [
      [{ map: 'pod-policy', add: [{ key: '10.65.0.2', verdict: { kind: 'jump', chain: 'forward' } }] }],
      'changes[0].add[0].verdict.chain: "forward" is not a regular chain of the table',
    ],
  ] as [ElementUpdate[], string][])(
    'refuses %j naming the field and the value; nothing is sent',
    async (changes, msg) => {
      const { fake, nft } = await synced();
      await expect(nft.update(changes)).rejects.toMatchObject({
        code: 'NFT_ERR_INVALID',
        message: expect.stringContaining(msg),
      });
      expect(fake.fastApplied).toEqual([]);
      expect(fake.applied).toHaveLength(1);
    },
  );

  it('when the generation moved, update is a sync of the updated model: it reads the table and repairs drift', async () => {
    const { fake, nft } = await synced();
    fake.gen += 5;
    fake.listing = listing(['10.65.0.0/16'], 2, { ports: [53, 99] });
    const lists = fake.lists;
    const r = await nft.update([{ set: 'pod-ifs', add: ['pn0002'] }]);
    expect(fake.lists).toBe(lists + 1);
    expect(r).toMatchObject({ mode: 'elements', repaired: ['dns-ports: 0 elements missing, 1 extra'] });
    expect(fake.fastApplied.at(-1)).toEqual([
      { set: 'dns-ports', kind: 'set', type: 'inet_service', add: [], delete: ['99'] },
      { set: 'pod-ifs', kind: 'set', type: 'ifname', add: ['pn0002'], delete: [] },
    ]);
  });
});

describe('nftCli', () => {
  it('a missing nft program is NFT_ERR_EXEC naming the command', async () => {
    const exec = nftCli({ nft: '/nonexistent/nft' });
    await expect(exec.apply('add table inet podnet\n')).rejects.toMatchObject({
      code: 'NFT_ERR_EXEC',
      message: expect.stringContaining('/nonexistent/nft -f -'),
    });
  });
});
