// The agent's NetworkPolicy side without a cluster: the projections kept per object, the debounce,
// and the translation over the stores (bad policies reported, the others still enforced).
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import type { EventRecorder } from './events.js';
import {
  type Clock,
  Debouncer,
  Interner,
  type NamespaceProjection,
  type PodProjection,
  PolicyEngine,
  type PolicyFragment,
  type PolicyObject,
  policyOfProblem,
  projectNamespace,
  projectPod,
  projectPolicy,
  withPolicy,
} from './policy-sync.js';

const silent = pino({ level: 'silent' });

function rawPod(
  ns: string,
  name: string,
  labels: Record<string, string>,
  ips: string[],
  node: string,
  extra: { hostNetwork?: boolean; phase?: string; ports?: { name?: string; containerPort: number }[] } = {},
) {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      namespace: ns,
      name,
      labels,
      uid: `uid-${name}`,
      resourceVersion: '17',
      annotations: { 'example.com/note': ips.join(',') } as Record<string, string>,
      managedFields: [{ manager: 'kubelet', operation: 'Update', fieldsV1: { 'f:status': {} } }],
    },
    spec: {
      nodeName: node,
      ...(extra.hostNetwork ? { hostNetwork: true } : {}),
      containers: [{ name: 'c', image: 'registry.k8s.io/pause:3.10', ports: extra.ports ?? [] }],
    },
    status: {
      phase: extra.phase ?? 'Running',
      podIP: ips[0],
      podIPs: ips.map((ip) => ({ ip })),
      conditions: [{ type: 'Ready', status: 'True' }],
    },
  };
}

class FakeClock implements Clock {
  t = 0;
  timers: { at: number; fn: () => void; id: number }[] = [];
  private next = 0;
  now() {
    return this.t;
  }
  setTimeout(fn: () => void, ms: number) {
    const id = ++this.next;
    this.timers.push({ at: this.t + ms, fn, id });
    return id;
  }
  clearTimeout(h: unknown) {
    this.timers = this.timers.filter((x) => x.id !== h);
  }
  advance(ms: number) {
    const end = this.t + ms;
    for (;;) {
      const due = this.timers.filter((x) => x.at <= end).sort((a, b) => a.at - b.at)[0];
      if (!due) break;
      this.timers = this.timers.filter((x) => x !== due);
      this.t = due.at;
      due.fn();
    }
    this.t = end;
  }
}

describe('projections', () => {
  it('keeps of a Pod only namespace, name, labels, addresses, node and container ports', () => {
    const p = projectPod(
      rawPod('x', 'a', { pod: 'a' }, ['10.244.0.5', 'fd00:244::5'], 'n1', {
        ports: [{ name: 'serve-80', containerPort: 80 }],
      }),
      new Interner(),
    );
    expect(p).toEqual({
      metadata: { namespace: 'x', name: 'a', resourceVersion: expect.any(String) },
      labels: { pod: 'a' },
      ips: ['10.244.0.5', 'fd00:244::5'],
      node: 'n1',
      ports: [{ name: 'serve-80', containerPort: 80, protocol: 'TCP' }],
    });
  });

  it('changes the version only when a field the translation reads changes', () => {
    const i = new Interner();
    const base = projectPod(rawPod('x', 'a', { pod: 'a' }, ['10.244.0.5'], 'n1'), i);
    const statusOnly = rawPod('x', 'a', { pod: 'a' }, ['10.244.0.5'], 'n1');
    statusOnly.status.conditions = [{ type: 'Ready', status: 'False' }];
    statusOnly.metadata.resourceVersion = '18';
    expect(projectPod(statusOnly, i).metadata.resourceVersion).toBe(base.metadata.resourceVersion);
    const relabelled = projectPod(rawPod('x', 'a', { pod: 'b' }, ['10.244.0.5'], 'n1'), i);
    expect(relabelled.metadata.resourceVersion).not.toBe(base.metadata.resourceVersion);
    const moved = projectPod(rawPod('x', 'a', { pod: 'a' }, ['10.244.0.6'], 'n1'), i);
    expect(moved.metadata.resourceVersion).not.toBe(base.metadata.resourceVersion);
  });

  it('takes the addresses podnet-cni annotated before the kubelet writes status.podIPs', () => {
    const raw = rawPod('x', 'a', { pod: 'a' }, [], 'n1');
    (raw.metadata.annotations as Record<string, string>)['podnet.io/podIPs'] = '10.244.0.7,fd00:244::7';
    expect(projectPod(raw, new Interner()).ips).toEqual(['10.244.0.7', 'fd00:244::7']);
  });

  it('leaves host-network pods and finished pods without addresses', () => {
    const i = new Interner();
    const host = projectPod(
      rawPod('kube-system', 'agent', {}, ['192.168.0.1'], 'n1', { hostNetwork: true }),
      i,
    );
    expect(host).toMatchObject({ ips: [], hostNetwork: true });
    const done = projectPod(rawPod('x', 'job', {}, ['10.244.0.9'], 'n1', { phase: 'Succeeded' }), i);
    expect(done.ips).toEqual([]);
  });

  it('shares one label map and one port list between the pods of a workload', () => {
    const i = new Interner();
    const a = projectPod(rawPod('x', 'w-1', { app: 'web', tier: 'fe' }, ['10.244.0.1'], 'n1'), i);
    const b = projectPod(rawPod('x', 'w-2', { tier: 'fe', app: 'web' }, ['10.244.0.2'], 'n2'), i);
    expect(a.labels).toBe(b.labels);
    expect(a.ports).toBe(b.ports);
    const c = projectPod(rawPod('x', 'w-3', { app: 'db' }, ['10.244.0.3'], 'n1'), i);
    expect(c.labels).not.toBe(a.labels);
  });

  it('keeps namespace labels and policy specs', () => {
    const ns = projectNamespace(
      {
        metadata: { name: 'y', labels: { 'kubernetes.io/metadata.name': 'y', ns: 'y' }, uid: 'u' },
        spec: {},
      },
      new Interner(),
    );
    expect(ns).toEqual({
      metadata: { name: 'y', resourceVersion: expect.any(String) },
      labels: { 'kubernetes.io/metadata.name': 'y', ns: 'y' },
    });
    const np = projectPolicy({
      metadata: { namespace: 'x', name: 'deny', resourceVersion: '4', uid: 'u1', managedFields: [] },
      spec: { podSelector: {} },
    });
    expect(np).toEqual({
      metadata: { namespace: 'x', name: 'deny', resourceVersion: '4', uid: 'u1' },
      spec: { podSelector: {} },
    });
  });

  it('bounds the interning table', () => {
    const i = new Interner(10);
    for (let n = 0; n < 100; n++) i.string(`value-${n}`);
    expect(i.size).toBeLessThanOrEqual(10);
  });
});

describe('Debouncer', () => {
  it('runs a lone change on the next turn, without the quiet time', () => {
    const clock = new FakeClock();
    const at: number[] = [];
    const d = new Debouncer(() => at.push(clock.now()), 20, 200, clock);
    d.trigger();
    d.trigger();
    expect(at).toEqual([]);
    clock.advance(0);
    expect(at).toEqual([0]);
    clock.advance(100);
    d.trigger();
    clock.advance(0);
    expect(at).toEqual([0, 100]);
  });

  it('coalesces the rest of a burst into one call after the quiet time', () => {
    const clock = new FakeClock();
    const at: number[] = [];
    const d = new Debouncer(() => at.push(clock.now()), 20, 200, clock);
    for (let k = 0; k < 5; k++) {
      d.trigger();
      clock.advance(5);
    }
    // The first change at once; the four after it in one call 20 ms after the last.
    expect(at).toEqual([0]);
    clock.advance(20);
    expect(at).toEqual([0, 40]);
  });

  it('calls at the latest the maximum delay after the first held change while changes keep coming', () => {
    const clock = new FakeClock();
    const at: number[] = [];
    const d = new Debouncer(() => at.push(clock.now()), 20, 100, clock);
    for (let k = 0; k < 30; k++) {
      d.trigger();
      clock.advance(10);
    }
    expect(at[0]).toBe(0);
    expect(at[1]).toBe(110);
    expect(at.length).toBeGreaterThanOrEqual(3);
    for (let k = 1; k < at.length; k++) expect(at[k]! - at[k - 1]!).toBeLessThanOrEqual(110);
  });
});

function store<T>(items: T[]) {
  return { items, hasSynced: true, list: () => items };
}

function fragmentAddresses(f: PolicyFragment): string[] {
  return f.sets.filter((s) => !s.name.startsWith('np-node')).flatMap((s) => s.elements ?? []);
}

describe('PolicyEngine', () => {
  const i = new Interner();
  const pods = (labelsOfB: Record<string, string>): PodProjection[] => [
    projectPod(rawPod('x', 'a', { pod: 'a' }, ['10.244.1.1'], 'n1'), i),
    projectPod(rawPod('x', 'b', labelsOfB, ['10.244.2.1'], 'n2'), i),
    projectPod(rawPod('y', 'c', { pod: 'c' }, ['10.244.2.2'], 'n2'), i),
    projectPod(rawPod('kube-system', 'host', { pod: 'b' }, ['192.168.0.2'], 'n2', { hostNetwork: true }), i),
  ];
  const namespaces: NamespaceProjection[] = ['x', 'y', 'kube-system'].map((n) =>
    projectNamespace({ metadata: { name: n, labels: { ns: n } } }, i),
  );
  const allowFromB = projectPolicy({
    metadata: { namespace: 'x', name: 'allow-b', resourceVersion: '1' },
    spec: {
      podSelector: { matchLabels: { pod: 'a' } },
      ingress: [{ from: [{ podSelector: { matchLabels: { pod: 'b' } } }] }],
    },
  });
  const bad = projectPolicy({
    metadata: { namespace: 'x', name: 'bad-cidr', resourceVersion: '1' },
    spec: { podSelector: {}, ingress: [{ from: [{ ipBlock: { cidr: '10.0.0.0/33' } }] }] },
  });

  it('enforces for local pods only, follows label changes, and leaves host-network pods out', () => {
    const p = store(pods({ pod: 'b' }));
    const e = new PolicyEngine(
      { pods: p, namespaces: store(namespaces), policies: store<PolicyObject>([allowFromB]) },
      { node: 'n1', log: silent },
    );
    const f1 = e.fragment(['192.168.0.1']);
    expect(f1.chains.map((c) => c.name)).toContain('np-forward');
    expect(f1.chains.filter((c) => c.name.startsWith('np-in-'))).toHaveLength(1);
    expect(fragmentAddresses(f1)).toEqual(['10.244.2.1']);
    expect(f1.sets.find((s) => s.name === 'np-node4')?.elements).toEqual(['192.168.0.1']);
    // Cached until a store changes.
    expect(e.fragment(['192.168.0.1'])).toBe(f1);
    p.items.splice(0, p.items.length, ...pods({ pod: 'other' }));
    e.changed();
    expect(fragmentAddresses(e.fragment(['192.168.0.1']))).toEqual([]);
    // Another node has no selected pod: no per-pod chain there.
    const n2 = new PolicyEngine(
      { pods: store(pods({ pod: 'b' })), namespaces: store(namespaces), policies: store([allowFromB]) },
      { node: 'n2', log: silent },
    );
    expect(n2.fragment([]).chains.filter((c) => c.name.startsWith('np-in-'))).toEqual([]);
  });

  it('reports a bad policy once, as a log line and a Warning Event naming the field and value, and enforces the others', () => {
    const events: { obj: unknown; reason: string; message: string }[] = [];
    const recorder = {
      record: async (obj: unknown, _type: string, reason: string, message: string) => {
        events.push({ obj, reason, message });
      },
    } as unknown as EventRecorder;
    const lines: string[] = [];
    const log = pino({ level: 'warn' }, { write: (s: string) => lines.push(s) });
    const policies = store<PolicyObject>([allowFromB, bad]);
    const e = new PolicyEngine(
      { pods: store(pods({ pod: 'b' })), namespaces: store(namespaces), policies },
      { node: 'n1', log, events: recorder },
    );
    const f = e.fragment([]);
    expect(fragmentAddresses(f)).toEqual(['10.244.2.1']);
    expect(e.problems().join('\n')).toMatch(/x\/bad-cidr.*10\.0\.0\.0\/33/);
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({
      obj: { kind: 'NetworkPolicy', namespace: 'x', name: 'bad-cidr' },
      reason: 'InvalidNetworkPolicy',
    });
    expect(events[0]!.message).toMatch(/spec\.ingress\[0\]\.from\[0\]\.ipBlock\.cidr.*10\.0\.0\.0\/33/);
    expect(lines.join('')).toMatch(/"policy":"x\/bad-cidr".*NetworkPolicy not enforced as written/);
    // Recomputed (another change) with the same problem: not reported again.
    e.changed();
    e.fragment([]);
    expect(events).toHaveLength(1);
  });

  it('applies watch events change by change: equal to a rebuild, a remote label change only moves set elements', () => {
    const p = store(pods({ pod: 'b' }));
    const ns = store(namespaces);
    const np = store<PolicyObject>([allowFromB]);
    const e = new PolicyEngine({ pods: p, namespaces: ns, policies: np }, { node: 'n1', log: silent });
    const f1 = e.fragment(['192.168.0.1']);
    const rebuilt = () =>
      new PolicyEngine({ pods: p, namespaces: ns, policies: np }, { node: 'n1', log: silent }).fragment([
        '192.168.0.1',
      ]);
    // Remote pod b loses the label: the stores change, then the event arrives (as from an Informer).
    const old = p.items[1]!;
    const now = projectPod(rawPod('x', 'b', { pod: 'other' }, ['10.244.2.1'], 'n2'), i);
    p.items[1] = now;
    e.pod({ type: 'modified', object: now });
    const f2 = e.fragment(['192.168.0.1']);
    expect(f2).toEqual(rebuilt());
    expect(fragmentAddresses(f2)).toEqual([]);
    // Same chain objects; of the sets only the policy's peer set is another object.
    expect(f2.chains.every((c, k) => c === f1.chains[k])).toBe(true);
    expect(f2.sets.filter((s, k) => s !== f1.sets[k]).map((s) => s.name)).toEqual([
      expect.stringMatching(/^np[0-9a-f]{10}-i0-p4$/),
    ]);
    // A new policy, a deleted pod and a namespace event, each applied by its event.
    p.items[1] = old;
    e.pod({ type: 'modified', object: old });
    const denyAll = projectPolicy({
      metadata: { namespace: 'y', name: 'deny', resourceVersion: '1' },
      spec: { podSelector: {} },
    });
    np.items.push(denyAll);
    e.policy({ type: 'added', object: denyAll });
    const c = p.items.splice(2, 1)[0]!;
    e.pod({ type: 'deleted', object: c });
    const y = projectNamespace({ metadata: { name: 'y', labels: { ns: 'y', more: '1' } } }, i);
    ns.items[1] = y;
    e.namespace({ type: 'modified', object: y });
    expect(e.fragment(['192.168.0.1'])).toEqual(rebuilt());
    expect(fragmentAddresses(e.fragment(['192.168.0.1']))).toEqual(['10.244.2.1']);
  });

  it('waits for every store to have listed once', () => {
    const e = new PolicyEngine(
      { pods: store(pods({})), namespaces: { ...store(namespaces), hasSynced: false }, policies: store([]) },
      { node: 'n1', log: silent },
    );
    expect(e.synced()).toBe(false);
  });
});

describe('withPolicy and problems', () => {
  it('adds the fragment to the table without touching its own chains and sets', () => {
    const t = withPolicy(
      {
        name: 'podnet',
        chains: [{ name: 'forward', rules: [] }],
        sets: [{ name: 'pools4', type: 'ipv4_addr', elements: [] }],
      },
      {
        chains: [{ name: 'np-forward', rules: [] }],
        sets: [{ name: 'np-node4', type: 'ipv4_addr', elements: [] }],
        maps: [],
      },
    );
    expect(t.chains.map((c) => c.name)).toEqual(['forward', 'np-forward']);
    expect(t.sets?.map((s) => s.name)).toEqual(['pools4', 'np-node4']);
  });

  it('reads the policy out of a translation problem', () => {
    expect(
      policyOfProblem('networkpolicy x/deny: spec.ingress[0].ports[0].port: "a b" is not a port'),
    ).toEqual({
      namespace: 'x',
      name: 'deny',
      message: 'spec.ingress[0].ports[0].port: "a b" is not a port',
    });
    expect(policyOfProblem('pod x/a: bad')).toBeUndefined();
  });
});
