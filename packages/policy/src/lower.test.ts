// The nft model of a translation: the dispatch, the per-pod chains, one set per rule and family;
// rendered by @podnet/nft's own renderer. Rules grow with the pods a policy selects, never with the
// peers (those are set elements).
import { podInterfaceName } from '@podnet/net';
import { renderFull, renderRule, validate } from '@podnet/nft';
import { describe, expect, it } from 'vitest';
import { NAMESPACES, NODE1, NODE1_ADDRS, PODS, pod, policy, translateFor } from './__fixtures__/cluster.js';
import { EVERY_FEATURE } from './__fixtures__/policies.js';
import { translate } from './compute.js';
import { egressChain, ingressChain, policyTable } from './lower.js';
import type { PodInput } from './types.js';

const chainText = (table: ReturnType<typeof policyTable>, name: string) =>
  table.chains.find((c) => c.name === name)!.rules.map(renderRule);

describe('policyTable', () => {
  it('dispatches each selected pod by its interface to its ingress and egress chains', () => {
    const table = policyTable(translateFor(NODE1, EVERY_FEATURE));
    const a = podInterfaceName('x', 'a');
    expect(chainText(table, 'np-forward')).toEqual([
      'ct state established,related accept',
      'iifname vmap @np-egress',
      'oifname vmap @np-ingress',
    ]);
    const ingress = table.maps.find((m) => m.name === 'np-ingress')!;
    expect(ingress.elements).toContainEqual({ key: a, verdict: { kind: 'jump', chain: ingressChain(a) } });
    // y/a is selected for ingress only; x/a for both; y/c by nothing.
    expect(ingress.elements.map((e) => e.key).sort()).toEqual(
      [a, podInterfaceName('x', 'c'), podInterfaceName('y', 'a')].sort(),
    );
    expect(
      table.maps
        .find((m) => m.name === 'np-egress')!
        .elements.map((e) => e.key)
        .sort(),
    ).toEqual([a, podInterfaceName('x', 'c')].sort());
  });

  it('writes one rule per family and port of each allowed rule, resolved for the pod, then a drop', () => {
    const t = translateFor(NODE1, EVERY_FEATURE);
    const table = policyTable(t);
    const a = podInterfaceName('x', 'a');
    const [i0, i1, i2] = t.sets.filter((s) => s.origin.startsWith('x/web ingress')).map((s) => s.id);
    expect(chainText(table, ingressChain(a))).toEqual([
      'ip saddr @np-node4 return',
      'ip6 saddr @np-node6 return',
      `ip saddr @${i0}-p4 tcp dport 8080 return comment "x/web ingress[0]"`,
      `ip6 saddr @${i0}-p6 tcp dport 8080 return comment "x/web ingress[0]"`,
      `ip saddr @${i1}-v4 tcp dport 80-81 return comment "x/web ingress[1]"`,
      `ip6 saddr @${i1}-v6 tcp dport 80-81 return comment "x/web ingress[1]"`,
      `ip saddr @${i2}-v4 sctp dport 81 return comment "x/web ingress[2]"`,
      `ip6 saddr @${i2}-v6 sctp dport 81 return comment "x/web ingress[2]"`,
      'meta l4proto udp return comment "x/web ingress[3]"',
      'counter drop comment "x/a ingress not allowed"',
    ]);
    // The egress named port: one set per number it means on the destinations (8080 on a, 9090 on b).
    const out = chainText(table, egressChain(a));
    expect(out.filter((r) => r.includes('tcp dport')).map((r) => r.replace(/@\S+/, '@S'))).toEqual([
      'ip daddr @S tcp dport 8080 return comment "x/web egress[0]"',
      'ip6 daddr @S tcp dport 8080 return comment "x/web egress[0]"',
      'ip daddr @S tcp dport 9090 return comment "x/web egress[0]"',
      'ip6 daddr @S tcp dport 9090 return comment "x/web egress[0]"',
    ]);
    const web8080 = t.sets.find((s) => s.id.endsWith('-e0-tcp8080'))!;
    expect(web8080.pods!.v4).toEqual(['10.0.1.1', '10.0.2.1', '10.0.3.1']);
  });

  it("puts a rule's pods in plain sets and its ipBlocks in interval sets, a rule row for each", () => {
    const t = translateFor(NODE1, [
      policy('x', 'mixed', {
        podSelector: { matchLabels: { pod: 'a' } },
        ingress: [
          { from: [{ ipBlock: { cidr: '10.9.0.0/16' } }, { podSelector: {} }], ports: [{ port: 80 }] },
        ],
      }),
    ]);
    const table = policyTable(t);
    const id = t.sets[0]!.id;
    expect(chainText(table, ingressChain(podInterfaceName('x', 'a'))).slice(2, -1)).toEqual([
      `ip saddr @${id}-p4 tcp dport 80 return comment "x/mixed ingress[0]"`,
      `ip6 saddr @${id}-p6 tcp dport 80 return comment "x/mixed ingress[0]"`,
      `ip saddr @${id}-v4 tcp dport 80 return comment "x/mixed ingress[0]"`,
      `ip6 saddr @${id}-v6 tcp dport 80 return comment "x/mixed ingress[0]"`,
    ]);
    const set = (name: string) => table.sets.find((s) => s.name === name)!;
    expect(set(`${id}-p4`).interval).toBeUndefined();
    expect(set(`${id}-p4`).elements).toEqual(['10.0.1.1', '10.0.1.2', '10.0.1.3']);
    expect(set(`${id}-v4`).interval).toBe(true);
    expect(set(`${id}-v4`).elements).toEqual(['10.9.0.0/16']);
    // A rule with selectors only has no interval sets, one with ipBlocks only no plain sets.
    const only = policyTable(
      translateFor(NODE1, [
        policy('x', 'sel', { podSelector: {}, ingress: [{ from: [{ podSelector: {} }] }] }),
        policy('x', 'blk', { podSelector: {}, ingress: [{ from: [{ ipBlock: { cidr: '10.9.0.0/16' } }] }] }),
      ]),
    );
    expect(
      only.sets
        .filter((s) => s.name.startsWith('np') && !s.name.startsWith('np-node'))
        .map((s) => s.name.slice(-3)),
    ).toEqual(expect.arrayContaining(['-p4', '-p6', '-v4', '-v6']));
    expect(only.sets.filter((s) => s.name.startsWith('np') && !s.name.startsWith('np-node'))).toHaveLength(4);
  });

  it('is a valid model for @podnet/nft, every set holding its node and rule addresses', () => {
    const table = policyTable(translateFor(NODE1, EVERY_FEATURE));
    const text = renderFull(validate({ ...table }));
    expect(text).toContain(
      'add set inet podnet np-node4 { type ipv4_addr; flags interval; comment "this node"; }',
    );
    expect(text).toContain('add element inet podnet np-node4 { 192.168.0.1 }');
    expect(text).toContain('add element inet podnet np-node6 { fd00:192::1 }');
  });

  it('grows its rules with the selected pods, not with the peers', () => {
    const ps = [
      policy('x', 'from-y', {
        podSelector: {},
        ingress: [{ from: [{ namespaceSelector: { matchLabels: { ns: 'y' } } }], ports: [{ port: 80 }] }],
      }),
    ];
    const rules = (pods: PodInput[]) => {
      const t = translate({
        node: NODE1,
        nodeAddresses: NODE1_ADDRS,
        policies: ps,
        pods,
        namespaces: NAMESPACES,
      });
      const table = policyTable(t);
      return {
        rules: table.chains.reduce((n, c) => n + c.rules.length, 0),
        elements: table.sets.reduce((n, s) => n + s.elements.length, 0),
      };
    };
    const manyPeers = (n: number) =>
      Array.from({ length: n }, (_, i) => ({
        ...pod('y', 'a'),
        name: `peer-${i}`,
        node: 'elsewhere',
        ips: [`10.1.${i >> 8}.${i & 255}`],
      }));
    const few = rules(PODS);
    const many = rules([...PODS, ...manyPeers(1000)]);
    expect(many.rules).toBe(few.rules);
    expect(many.elements).toBeGreaterThan(few.elements);
    const localPods = (n: number) =>
      Array.from({ length: n }, (_, i) => ({ ...pod('x', 'a'), name: `local-${i}`, ips: [`10.2.0.${i}`] }));
    const one = rules([...PODS, ...localPods(1)]);
    const eleven = rules([...PODS, ...localPods(11)]);
    // Each selected local pod adds its chain: node rules, one rule per family for the port, the drop.
    expect((eleven.rules - one.rules) / 10).toBe(5);
  });
});
