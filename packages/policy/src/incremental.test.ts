import { describe, expect, it } from 'vitest';
import { type Translation, translate } from './compute.js';
import { Incremental } from './incremental.js';
import { LowerMemo, policyTable } from './lower.js';
import type { NamespaceInput, PodInput } from './types.js';

/** mulberry32: a small seeded generator, so a failure replays. */
function rng(seed: number) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (n: number) => Math.floor(next() * n);
  const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)]!;
  return { next, int, pick };
}
type R = ReturnType<typeof rng>;

const NS = ['x', 'y', 'z'] as const;
const NODES = ['n1', 'n2'] as const;

function labels(r: R): Record<string, string> {
  const l: Record<string, string> = {};
  if (r.next() < 0.8) l.app = r.pick(['a', 'b', 'c']);
  if (r.next() < 0.4) l.role = r.pick(['db', 'web']);
  return l;
}

function selector(r: R) {
  const k = r.int(4);
  if (k === 0) return {};
  if (k === 1) return { matchLabels: { app: r.pick(['a', 'b', 'c']) } };
  if (k === 2)
    return {
      matchExpressions: [{ key: 'role', operator: r.pick(['In', 'NotIn']), values: [r.pick(['db', 'web'])] }],
    };
  return { matchExpressions: [{ key: 'role', operator: r.pick(['Exists', 'DoesNotExist']) }] };
}

function peer(r: R) {
  const k = r.int(5);
  if (k === 0) return { podSelector: selector(r) };
  if (k === 1) return { namespaceSelector: { matchLabels: { team: r.pick(['t0', 't1']) } } };
  if (k === 2)
    return { namespaceSelector: { matchLabels: { team: r.pick(['t0', 't1']) } }, podSelector: selector(r) };
  if (k === 3) return { namespaceSelector: {} };
  return { ipBlock: { cidr: '10.1.0.0/16', except: ['10.1.0.0/24'] } };
}

function port(r: R) {
  const k = r.int(4);
  if (k === 0) return { protocol: 'TCP', port: 80 };
  if (k === 1) return { protocol: 'UDP', port: 53, endPort: 60 };
  if (k === 2) return { port: r.pick(['http', 'dns']), protocol: r.pick(['TCP', 'UDP']) };
  return { protocol: 'TCP', port: 'http' };
}

function rule(r: R, dir: 'from' | 'to') {
  const out: Record<string, unknown> = {};
  if (r.next() < 0.8) out[dir] = Array.from({ length: 1 + r.int(2) }, () => peer(r));
  if (r.next() < 0.7) out.ports = Array.from({ length: 1 + r.int(2) }, () => port(r));
  return out;
}

function policy(r: R, ns: string, name: string) {
  const spec: Record<string, unknown> = { podSelector: selector(r) };
  const types = r.pick([['Ingress'], ['Egress'], ['Ingress', 'Egress'], undefined]);
  if (types) spec.policyTypes = types;
  if (r.next() < 0.8) spec.ingress = Array.from({ length: r.int(3) }, () => rule(r, 'from'));
  if (r.next() < 0.6) spec.egress = Array.from({ length: r.int(3) }, () => rule(r, 'to'));
  // Now and then one the translation rejects (a port out of range): a problem, not a part.
  if (r.next() < 0.05) spec.ingress = [{ ports: [{ protocol: 'TCP', port: 70000 }] }];
  return { metadata: { namespace: ns, name }, spec };
}

function pod(r: R, ns: string, name: string, n: number): PodInput {
  const ips = r.pick([
    [`10.1.${n % 3}.${n}`],
    [`10.2.0.${n}`, `fd00::${n.toString(16)}`],
    [`fd00::1:${n.toString(16)}`],
    [],
    ['not-an-ip'],
  ]);
  const ports = r.pick([
    [],
    [{ name: 'http', containerPort: 8080, protocol: 'TCP' as const }],
    [{ name: 'http', containerPort: 80, protocol: 'TCP' as const }],
    [{ name: 'dns', containerPort: 53, protocol: 'UDP' as const }],
  ]);
  return { namespace: ns, name, labels: labels(r), ips, node: r.pick(NODES), ports };
}

const sortedProblems = (t: Translation) => ({ ...t, problems: [...t.problems].sort() });

describe('Incremental', () => {
  for (const seed of [1, 2, 3, 4, 5, 6, 7, 8]) {
    it(`equals a full translation after every change of a random sequence (seed ${seed})`, () => {
      const r = rng(seed);
      const node = 'n1';
      const inc = new Incremental(node);
      const memo = new LowerMemo();
      const pods = new Map<string, PodInput>();
      const namespaces = new Map<string, NamespaceInput>();
      const policies = new Map<string, unknown>();
      let addresses: string[] = [];
      let partsBefore = 0;
      let fewerParts = 0;
      for (let step = 0; step < 150; step++) {
        const op = r.int(10);
        const ns = r.pick(NS);
        if (op <= 3) {
          const name = `p${r.int(12)}`;
          const p = pod(r, ns, name, step);
          pods.set(`${ns}/${name}`, p);
          inc.setPod(p);
        } else if (op === 4) {
          const key = r.pick([...pods.keys(), 'x/none']);
          const [pns, pname] = key.split('/') as [string, string];
          pods.delete(key);
          inc.deletePod(pns, pname);
        } else if (op === 5) {
          const n: NamespaceInput = {
            name: ns,
            labels: r.next() < 0.8 ? { team: r.pick(['t0', 't1']) } : {},
          };
          namespaces.set(ns, n);
          inc.setNamespace(n);
        } else if (op === 6 && namespaces.size) {
          const name = r.pick([...namespaces.keys()]);
          namespaces.delete(name);
          inc.deleteNamespace(name);
        } else if (op <= 8) {
          const name = `np${r.int(6)}`;
          const p = policy(r, ns, name);
          policies.set(`${ns}/${name}`, p);
          inc.setPolicy(p);
        } else if (r.next() < 0.7 && policies.size) {
          const key = r.pick([...policies.keys()]);
          const [pns, pname] = key.split('/') as [string, string];
          policies.delete(key);
          inc.deletePolicy(pns, pname);
        } else {
          addresses = r.pick([['10.9.0.1'], ['10.9.0.1', 'fd09::1'], ['10.9.0.2/24']]);
          inc.setNodeAddresses(addresses);
        }
        const dirty = inc.pending();
        const got = inc.translation();
        const want = translate({
          node,
          nodeAddresses: addresses,
          policies: [...policies.values()],
          pods: [...pods.values()],
          namespaces: [...namespaces.values()],
        });
        expect(sortedProblems(got), `seed ${seed} step ${step}`).toEqual(sortedProblems(want));
        expect(policyTable(got, memo), `seed ${seed} step ${step} (lowered)`).toEqual(policyTable(want));
        // It recomputed only the marked parts, and fewer than all of them at least sometimes.
        expect(inc.stats.partsComputed - partsBefore).toBeLessThanOrEqual(dirty);
        if (dirty < policies.size) fewerParts++;
        partsBefore = inc.stats.partsComputed;
      }
      expect(fewerParts).toBeGreaterThan(0);
    });
  }

  it('recomputes only the policies a remote pod label change concerns, and reuses the unchanged sets and chains', () => {
    const inc = new Incremental('n1');
    const memo = new LowerMemo();
    inc.setNamespace({ name: 'x' });
    for (let k = 0; k < 10; k++)
      inc.setPolicy({
        metadata: { namespace: 'x', name: `np${k}` },
        spec: {
          podSelector: { matchLabels: { app: `a${k}` } },
          ingress: [{ from: [{ podSelector: { matchLabels: { app: `a${(k + 1) % 10}` } } }] }],
        },
      });
    for (let k = 0; k < 10; k++)
      inc.setPod({
        namespace: 'x',
        name: `local${k}`,
        labels: { app: `a${k}` },
        ips: [`10.0.1.${k}`],
        node: 'n1',
      });
    inc.setPod({ namespace: 'x', name: 'remote', labels: { app: 'a3' }, ips: ['10.0.2.1'], node: 'n2' });
    const before = policyTable(inc.translation(), memo);
    const parts = inc.stats.partsComputed;
    // a3 → a5: only np2 (peers app=a3) and np4 (peers app=a5) change, as elements of their sets.
    inc.setPod({ namespace: 'x', name: 'remote', labels: { app: 'a5' }, ips: ['10.0.2.1'], node: 'n2' });
    expect(inc.pending()).toBe(2);
    const after = policyTable(inc.translation(), memo);
    expect(inc.stats.partsComputed - parts).toBe(2);
    expect(memo.rebuilt).toEqual({ chains: 0, sets: 2 });
    const changed = after.sets
      .filter((s, i) => s !== before.sets[i])
      .map((s) => s.elements)
      .sort((a, b) => a.length - b.length);
    expect(changed).toEqual([['10.0.1.3'], ['10.0.1.5', '10.0.2.1']]);
    expect(after.chains.every((c, i) => c === before.chains[i])).toBe(true);
  });
});
