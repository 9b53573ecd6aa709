// `podnetctl policy NAMESPACE/POD` and `podnetctl trace`'s NetworkPolicy verdicts against an API
// server over real HTTP (the embedded one, or the cluster named by KUBECONFIG): the policies
// selecting the pod, its effective allow list, and the verdict of each side of a path.
import { fileURLToPath } from 'node:url';
import { installCrds, KubeClient, loadCrdFiles } from '@podnet/k8s';
import { type TestCluster, testCluster } from '@podnet/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCtl } from './cli-main.js';

let cluster: TestCluster;

async function ctl(...argv: string[]) {
  let out = '';
  let err = '';
  const code = await runCtl([...argv, '--kubeconfig', cluster.kubeconfigPath], {
    env: {},
    stdout: (s) => {
      out += s;
    },
    stderr: (s) => {
      err += s;
    },
  });
  return { code, out, err };
}

beforeAll(async () => {
  cluster = await testCluster();
  const client = new KubeClient({ kubeconfigPath: cluster.kubeconfigPath });
  const { core, custom } = client;
  // trace reads podnet's IPAMBlocks and NodeStatuses beside the policies, pods and namespaces.
  await installCrds(client, {
    crds: loadCrdFiles(fileURLToPath(new URL('../../../deploy/crds', import.meta.url))),
  });
  for (const ns of ['ctl-x', 'ctl-y'])
    await core.createNamespace({ body: { metadata: { name: ns, labels: { team: ns.slice(4) } } } });
  const pods: [string, string, string, number][] = [
    ['ctl-x', 'a', '10.0.1.1', 8080],
    ['ctl-y', 'b', '10.0.2.2', 9090],
  ];
  for (const [namespace, name, ip, web] of pods) {
    await core.createNamespacedPod({
      namespace,
      body: {
        metadata: { name, labels: { pod: name } },
        spec: {
          nodeName: 'n1',
          containers: [{ name: 'c', image: 'x', ports: [{ name: 'web', containerPort: web }] }],
        },
      },
    });
    const created = await core.readNamespacedPod({ namespace, name });
    await core.replaceNamespacedPodStatus({
      namespace,
      name,
      body: { ...created, status: { ...created.status, podIP: ip, podIPs: [{ ip }] } },
    });
  }
  await custom.createNamespacedCustomObject({
    group: 'networking.k8s.io',
    version: 'v1',
    namespace: 'ctl-x',
    plural: 'networkpolicies',
    body: {
      apiVersion: 'networking.k8s.io/v1',
      kind: 'NetworkPolicy',
      metadata: { name: 'from-y' },
      spec: {
        podSelector: {},
        ingress: [
          { from: [{ namespaceSelector: { matchLabels: { team: 'y' } } }], ports: [{ port: 'web' }] },
        ],
      },
    },
  });
  await client.close();
});
afterAll(() => cluster?.close());

describe('podnetctl policy', () => {
  it('lists the selecting policies and the allow list, named ports resolved on the pod', async () => {
    const r = await ctl('policy', 'ctl-x/a', '-o', 'json');
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    expect(JSON.parse(r.out)).toMatchObject({
      pod: 'ctl-x/a',
      node: 'n1',
      policies: ['ctl-x/from-y'],
      ingressIsolated: true,
      egressIsolated: false,
      allow: [
        {
          direction: 'ingress',
          policy: 'ctl-x/from-y',
          rule: 0,
          peers: '10.0.2.2',
          ports: 'TCP/8080 (web=TCP/8080)',
        },
      ],
    });
    const table = await ctl('policy', 'ctl-x/a');
    expect(table.out).toContain('Ingress: isolated: only the rows below');
    expect(table.out).toContain('Egress: not isolated: everything allowed');
    expect(table.out).toMatch(/ingress\s+ctl-x\/from-y\s+0\s+10\.0\.2\.2\s+TCP\/8080/);
  });

  it('says when no policy selects the pod, and refuses a pod it cannot find', async () => {
    const r = await ctl('policy', 'ctl-y/b');
    expect(r.out).toContain('Selected by: no NetworkPolicy');
    const missing = await ctl('policy', 'ctl-y/nope');
    expect(missing.code).toBe(1);
    expect(missing.err).toContain('pod ctl-y/nope not found');
    const bad = await ctl('policy', 'just-a-name');
    expect(bad.code).toBe(2);
  });
});

interface TraceDoc {
  policyQuery: string;
  hops: { hop: string; where: string; status: string; detail: string; decidedBy?: string[] }[];
}

/** `podnetctl trace` from off the nodes (no agent answers): the API's hops and the policy verdicts. */
async function traceDoc(...argv: string[]) {
  const r = await ctl('trace', ...argv, '--agent', 'http://127.0.0.1:1/status', '-o', 'json');
  const doc = r.out ? (JSON.parse(r.out) as TraceDoc) : undefined;
  const hop = (h: string) => doc?.hops.find((x) => x.hop === h);
  return { ...r, doc, hop };
}

describe('podnetctl trace: the NetworkPolicy verdict on each side', () => {
  it('allows y/b → x/a on the port ctl-x/from-y names (web = TCP 8080), naming the policy', async () => {
    const r = await traceDoc('ctl-y/b', 'ctl-x/a', '--port', '8080');
    expect(r.err).toBe('');
    expect(r.doc?.policyQuery).toBe('TCP port 8080');
    expect(r.hop('egress policy')).toMatchObject({
      where: 'node n1',
      status: 'ok',
      detail: 'allowed: no NetworkPolicy isolates ctl-y/b for egress',
      decidedBy: [],
    });
    expect(r.hop('ingress policy')).toMatchObject({
      where: 'node n1',
      status: 'ok',
      detail: 'allowed from 10.0.2.2 on TCP port 8080 by ctl-x/from-y ingress[0]',
      decidedBy: ['ctl-x/from-y'],
    });
  });

  it('denies another port and another protocol, naming the isolating policy; exit code 1', async () => {
    const r = await traceDoc('ctl-y/b', 'ctl-x/a', '--port', '9090');
    expect(r.hop('ingress policy')).toMatchObject({
      status: 'problem',
      detail:
        'denied from 10.0.2.2 on TCP port 9090: ctl-x/a is isolated for ingress by ctl-x/from-y and no rule allows it; rules allowing 10.0.2.2 on other ports: TCP/8080',
      decidedBy: ['ctl-x/from-y'],
    });
    expect(r.code).toBe(1);
    const udp = await traceDoc('ctl-y/b', 'ctl-x/a', '--protocol', 'udp');
    expect(udp.doc?.policyQuery).toBe('UDP (any port)');
    expect(udp.hop('ingress policy')?.status).toBe('problem');
    const icmp = await traceDoc('ctl-y/b', 'ctl-x/a', '--protocol', 'ICMP');
    expect(icmp.hop('ingress policy')?.detail).toMatch(/^denied from 10\.0\.2\.2 on ICMP: /);
  });

  it('without --port the verdict is for any port: partial, listing the ports allowed', async () => {
    const r = await traceDoc('ctl-y/b', 'ctl-x/a');
    expect(r.doc?.policyQuery).toBe('any port and protocol');
    expect(r.hop('ingress policy')).toMatchObject({
      status: 'partial',
      detail:
        'allowed from 10.0.2.2 only on TCP/8080 by ctl-x/from-y ingress[0]; every other port is denied (asked about any port and protocol: give --port/--protocol to check one)',
    });
    expect(r.code).toBe(0);
    const table = await ctl('trace', 'ctl-y/b', 'ctl-x/a', '--agent', 'http://127.0.0.1:1/status');
    expect(table.out).toContain(
      'NetworkPolicy verdicts for any port and protocol: ok = every port and protocol allowed, partial = only the ports named',
    );
    expect(table.out).toMatch(
      /ingress policy\s+node n1\s+policy\s+partial\s+allowed from 10\.0\.2\.2 only on TCP\/8080/,
    );
  });

  it('the other way, and to the pod by address: a pod no policy selects is not isolated', async () => {
    const r = await traceDoc('ctl-x/a', 'ctl-y/b', '--port', '9090');
    expect(r.hop('ingress policy')).toMatchObject({
      status: 'ok',
      detail: 'allowed: no NetworkPolicy isolates ctl-y/b for ingress',
    });
    // x/a's address given as an IP: the ingress verdict is the pod's that holds it.
    const byIp = await traceDoc('ctl-y/b', '10.0.1.1', '--port', '8080');
    expect(byIp.hop('ingress policy')).toMatchObject({ where: 'node n1 (pod ctl-x/a)', status: 'ok' });
  });

  it('refuses a bad --port or --protocol, naming the flag and the value', async () => {
    const port = await ctl('trace', 'ctl-y/b', 'ctl-x/a', '--port', '70000');
    expect(port.code).toBe(2);
    expect(port.err).toContain('--port "70000": use a number from 1 to 65535');
    const proto = await ctl('trace', 'ctl-y/b', 'ctl-x/a', '--protocol', 'gre');
    expect(proto.err).toContain('--protocol "gre": use tcp, udp, sctp or icmp');
    const icmp = await ctl('trace', 'ctl-y/b', 'ctl-x/a', '--protocol', 'icmp', '--port', '1');
    expect(icmp.err).toContain('ICMP has no ports');
  });
});
