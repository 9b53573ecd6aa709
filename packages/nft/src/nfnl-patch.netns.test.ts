// The patch over netlink against the real kernel: every kind of match, action, set and comment the
// model has, patched in over NETLINK_NETFILTER in one namespace and through `nft -f` in another;
// the kernel must then hold the same rules (its own encoding of each, compared as digests) and
// `nft -j list` must print the same table.
import { cleanupStale, type Netns, NetnsSet } from '@podnet/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tableListing } from './__fixtures__/listing.js';
import { natModel } from './__fixtures__/models.js';
import { NftError } from './errors.js';
import { nftCli } from './exec.js';
import type { Chain, Rule, Table } from './model.js';
import { NfNetlink } from './netlink.js';
import { NftTable } from './nft.js';
import { emptyPlan, type PatchPlan } from './patch.js';

const lab = new NetnsSet();
let viaNetlink: Netns;
let viaNft: Netns;

/** One chain per rule shape (each rule alone, so a mismatch names its shape). */
const SHAPES: Record<string, Rule> = {
  addr4: { match: [{ kind: 'addr', field: 'ip saddr', set: 'x4' }], action: { kind: 'return' } },
  addr4not: { match: [{ kind: 'addr', field: 'ip daddr', set: 'x4', negate: true }], counter: true },
  addr6: {
    match: [{ kind: 'addr', field: 'ip6 saddr', set: 'x6' }],
    counter: true,
    action: { kind: 'drop' },
    comment: 'x6 peers',
  },
  addr6not: {
    match: [{ kind: 'addr', field: 'ip6 daddr', set: 'x6', negate: true }],
    action: { kind: 'accept' },
  },
  twoAddrs: {
    match: [
      { kind: 'addr', field: 'ip saddr', set: 'x4' },
      { kind: 'addr', field: 'ip daddr', set: 'x4', negate: true },
    ],
    action: { kind: 'return' },
  },
  addrPort: {
    match: [
      { kind: 'addr', field: 'ip saddr', set: 'x4' },
      { kind: 'l4', proto: 'tcp', dport: 8080 },
    ],
    action: { kind: 'return' },
    comment: 'allow from x4 to tcp 8080',
  },
  proto: { match: [{ kind: 'l4', proto: 'sctp' }], action: { kind: 'return' } },
  protoThenPort: {
    match: [
      { kind: 'l4', proto: 'udp' },
      { kind: 'l4', proto: 'udp', dport: 53 },
    ],
    action: { kind: 'accept' },
  },
  portRange: {
    match: [{ kind: 'l4', proto: 'udp', dport: { range: [1000, 2000] } }],
    action: { kind: 'return' },
  },
  portSet: { match: [{ kind: 'l4', proto: 'tcp', dport: { set: 'xp' } }], action: { kind: 'return' } },
  ifPrefix: {
    match: [{ kind: 'ifname', field: 'iifname', name: 'pn*' }],
    action: { kind: 'jump', chain: 'np-t-target' },
  },
  ifExact: {
    match: [{ kind: 'ifname', field: 'oifname', name: 'eth0', negate: true }],
    action: { kind: 'goto', chain: 'np-t-target' },
  },
  ifSet: { match: [{ kind: 'ifset', field: 'oifname', set: 'xi', negate: true }], action: { kind: 'drop' } },
  concat: {
    match: [
      { kind: 'l4', proto: 'tcp' },
      { kind: 'concat', fields: ['iifname', 'th dport'], set: 'pod-ports' },
    ],
    action: { kind: 'accept' },
  },
  concat3: {
    match: [{ kind: 'concat', fields: ['ip saddr', 'ip daddr', 'th dport'], set: 'flows', negate: true }],
    action: { kind: 'drop' },
  },
  ct: {
    match: [{ kind: 'ct', states: ['new', 'invalid', 'untracked'] }],
    counter: true,
    action: { kind: 'drop' },
  },
  vmapIf: { action: { kind: 'vmap', field: 'oifname', map: 'xm' } },
  vmap6: { action: { kind: 'vmap', field: 'ip6 daddr', map: 'xm6' } },
  vmapPort: {
    match: [{ kind: 'l4', proto: 'tcp' }],
    action: { kind: 'vmap', field: 'th dport', map: 'xmp' },
  },
  counterOnly: { counter: true, comment: 'count' },
};

/** natModel plus the concatenated sets the shapes use (they exist before the patch). */
function base(): Table {
  const t = natModel();
  t.chains.push({ name: 'np-t-target', rules: [{ action: { kind: 'return' } }] });
  t.sets!.push(
    { name: 'pod-ports', type: 'ifname . inet_service', elements: ['pn0001 . 80'] },
    {
      name: 'flows',
      type: 'ipv4_addr . ipv4_addr . inet_service',
      elements: ['10.65.0.1 . 10.65.0.2 . 443'],
    },
  );
  return t;
}

/** base() plus a chain per shape and the sets and maps they use, each of a kind the patch creates. */
function patched(): Table {
  const t = base();
  const chains: Chain[] = Object.entries(SHAPES).map(([name, rule]) => ({
    name: `np-t-${name}`,
    rules: [rule],
    ...(name === 'addr6' ? { comment: 'a chain comment' } : {}),
  }));
  t.chains.push(...chains);
  t.sets!.push(
    { name: 'x4', type: 'ipv4_addr', elements: ['10.65.1.1', '10.65.1.2'], comment: 'peers of a policy' },
    { name: 'x6', type: 'ipv6_addr', elements: ['fd00:65::1'] },
    { name: 'xp', type: 'inet_service', elements: ['80', '8443'] },
    { name: 'xi', type: 'ifname', elements: ['pn0002', 'eth1'], comment: 'interfaces' },
  );
  t.maps!.push(
    {
      name: 'xm',
      type: 'ifname',
      elements: [{ key: 'pn0003', verdict: { kind: 'jump', chain: 'np-t-target' } }],
    },
    {
      name: 'xm6',
      type: 'ipv6_addr',
      elements: [{ key: 'fd00:65::2', verdict: { kind: 'drop' } }],
      comment: 'a map',
    },
    { name: 'xmp', type: 'inet_service', elements: [{ key: '22', verdict: { kind: 'accept' } }] },
  );
  // An existing chain rewritten, an existing set's elements changed.
  t.chains.find((c) => c.name === 'np-t-target')!.rules = [{ counter: true, action: { kind: 'return' } }];
  t.sets!.find((s) => s.name === 'pod-ifs')!.elements = ['pn0001', 'pn0009'];
  return t;
}

describe('a patch over netlink in namespaces with the real kernel and nft', () => {
  beforeAll(async () => {
    await cleanupStale();
    viaNetlink = await lab.create('nlpatch');
    viaNft = await lab.create('nftpatch');
  });

  afterAll(() => lab.destroy());

  it('leaves the rules nft -f leaves, for every match, action, set type and comment', async () => {
    const nl = nftCli({ netns: viaNetlink.name });
    const a = new NftTable({ exec: nl });
    const b = new NftTable({ exec: nftCli({ netns: viaNft.name, netlinkPatches: false }) });
    for (const t of [a, b]) expect((await t.sync(base())).mode).toBe('full');
    const ra = await a.sync(patched());
    const rb = await b.sync(patched());
    expect([ra.mode, ra.via, rb.mode, rb.via]).toEqual(['patch', 'netlink', 'patch', 'nft']);
    expect(a.counters.patchesNetlink).toBe(1);

    const want = await nftCli({ netns: viaNft.name }).ruleDigests!('podnet');
    const got = await nl.ruleDigests!('podnet');
    expect(want!.size).toBe(patched().chains.filter((c) => c.rules.length).length);
    for (const name of Object.keys(SHAPES)) {
      const chain = `np-t-${name}`;
      expect({ chain, digests: got!.get(chain) }).toEqual({ chain, digests: want!.get(chain) });
    }
    expect(got).toEqual(want);
    expect(await tableListing(viaNetlink)).toEqual(await tableListing(viaNft));
    expect(await b.drift()).toEqual({ structural: [], elements: [] });
    expect(await a.drift()).toEqual({ structural: [], elements: [] });

    // And back: chains, sets and maps deleted over netlink.
    const back = await a.sync(base());
    expect([back.mode, back.via]).toEqual(['patch', 'netlink']);
    await b.sync(base());
    expect(await tableListing(viaNetlink)).toEqual(await tableListing(viaNft));
    a.close();
    b.close();
  });

  it('what the encoder does not take (an interval set added) goes through nft -f', async () => {
    const t = new NftTable({ exec: nftCli({ netns: viaNetlink.name }) });
    await t.sync(base());
    const more = base();
    more.sets!.push({ name: 'blocks', type: 'ipv4_addr', interval: true, elements: ['10.0.0.0/8'] });
    const r = await t.sync(more);
    expect([r.mode, r.via]).toEqual(['patch', 'nft']);
    expect(await viaNetlink.run('nft', ['list', 'set', 'inet', 'podnet', 'blocks'])).toContain('10.0.0.0/8');
    t.close();
  });

  it('a step the kernel refuses fails the whole batch, named, and changes nothing', async () => {
    const t = new NftTable({ exec: nftCli({ netns: viaNetlink.name }) });
    await t.sync(base());
    t.close();
    const before = await tableListing(viaNetlink);
    const nl = new NfNetlink({ netns: `/var/run/netns/${viaNetlink.name}` });
    const rule: Rule = {
      match: [{ kind: 'addr', field: 'ip saddr', set: 'no-such-set' }],
      action: { kind: 'drop' },
    };
    const plan: PatchPlan = {
      ...emptyPlan('podnet'),
      addChains: [{ name: 'np-t-new', rules: [rule] }],
      rules: [{ chain: 'np-t-new', rule }],
      written: ['np-t-new'],
    };
    const err = await nl.applyPatch(plan).catch((e: NftError) => e);
    expect(err).toBeInstanceOf(NftError);
    expect((err as NftError).code).toBe('NFT_ERR_APPLY');
    expect((err as NftError).message).toMatch(/add rule inet podnet np-t-new \(addr\): ENOENT/);
    expect(await tableListing(viaNetlink)).toEqual(before);
    nl.close();
  });
});
