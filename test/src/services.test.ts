// Services to the top-of-rack on the real lab: backend pods behind a LoadBalancer Service with
// externalTrafficPolicy Local on two of the three nodes. The ToR (BIRD) holds the Service /32 via
// exactly those two nodes (ECMP in its kernel); removing the endpoints on one node withdraws it
// there. The lab has no endpointslice controller: the test writes the EndpointSlices as that
// controller would. The address comes from podnet's LoadBalancer allocator (a LoadBalancerPool,
// the agents' elected allocator writing status.loadBalancer.ingress).
import { spawn, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  downScenarioLab,
  type KernelRoute,
  type Lab,
  podIp,
  routes,
  scenarioConfig,
  upScenarioLab,
} from './harness.js';

const config = scenarioConfig('svc', { podsPerNode: 1 });
let lab: Lab;

const NS = 'default';
const V4_RANGE = '192.0.2.0/24';
const V6_RANGE = '2001:db8:5::/112';
const BGPCONF = '/apis/podnet.io/v1alpha1/bgpconfigurations';
const SERVICES = `/api/v1/namespaces/${NS}/services`;
const SLICES = `/apis/discovery.k8s.io/v1/namespaces/${NS}/endpointslices`;
const LBPOOLS = '/apis/podnet.io/v1alpha1/loadbalancerpools';

const nodeIp = (name: string, family: 4 | 6 = 4) =>
  (family === 4 ? lab.service(name).links[0]?.ipv4 : lab.service(name).links[0]?.ipv6)?.split('/')[0] ?? '';
/** The next hops of every path BIRD holds for `prefix` (best and alternatives), sorted. */
function torPaths(prefix: string): string[] {
  const sock = join(config.stateDir, 'tor', 'root', 'run', 'bird', 'bird.ctl');
  // birdc exits non-zero when BIRD answers "Network not found": read its output either way.
  const r = spawnSync('birdc', ['-s', sock, 'show', 'route', prefix], { encoding: 'utf8', timeout: 10_000 });
  if (r.error) throw r.error;
  if (!/Network not found|Table master/.test(r.stdout))
    throw new Error(`birdc show route ${prefix}: ${r.stdout.trim() || r.stderr.trim()}`);
  return [...r.stdout.matchAll(/\bvia (\S+)/g)].map((m) => m[1]!).sort();
}

/** BIRD's `show route all` for `prefix`: every path with its attributes. */
function torRouteAll(prefix: string): string {
  const sock = join(config.stateDir, 'tor', 'root', 'run', 'bird', 'bird.ctl');
  const r = spawnSync('birdc', ['-s', sock, 'show', 'route', 'all', prefix], {
    encoding: 'utf8',
    timeout: 10_000,
  });
  if (r.error) throw r.error;
  return r.stdout;
}

/** Waits (bounded) for an Event on Service `name` with `reason` whose message holds every `parts`. */
async function serviceEvent(name: string, reason: string, parts: string[]): Promise<boolean> {
  for (let i = 0; i < 100; i++) {
    const events = await lab.kube.list(`/api/v1/namespaces/${NS}/events`);
    const hit = events.some(
      (e) =>
        (e.involvedObject as { name?: string }).name === name &&
        e.reason === reason &&
        parts.every((p) => String(e.message).includes(p)),
    );
    if (hit) return true;
    await new Promise((r) => setTimeout(r, 200));
  }
  return false;
}

const hopsOf = (r: KernelRoute | undefined) =>
  r ? (r.nexthops ?? [r]).map((h) => h.gateway ?? '').sort() : [];

/** Polls `read` every 100 ms until it equals `want` (bounded), and returns the last reading. */
async function until<T>(read: () => T, want: T, boundMs = 20_000): Promise<T> {
  const t0 = Date.now();
  let last = read();
  while (JSON.stringify(last) !== JSON.stringify(want) && Date.now() - t0 < boundMs) {
    await new Promise((r) => setTimeout(r, 100));
    last = read();
  }
  return last;
}

/** Creates the Service and returns the address the allocator gives it (bounded wait). */
async function createService(
  name: string,
  family: 4 | 6,
  requested?: string,
  annotations: Record<string, string> = {},
): Promise<string> {
  const r = await lab.kube.request('POST', SERVICES, {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name, namespace: NS, annotations },
    spec: {
      type: 'LoadBalancer',
      externalTrafficPolicy: 'Local',
      ipFamilies: [family === 4 ? 'IPv4' : 'IPv6'],
      ipFamilyPolicy: 'SingleStack',
      ...(requested ? { loadBalancerIP: requested } : {}),
      selector: { app: name },
      ports: [{ name: 'http', port: 80, targetPort: 8080, protocol: 'TCP' }],
    },
  });
  expect(r.status, `create Service ${name}: ${JSON.stringify(r.body).slice(0, 300)}`).toBe(201);
  let last: unknown;
  for (let i = 0; i < 150; i++) {
    const svc = (await lab.kube.get(`${SERVICES}/${name}`)) as
      | { status?: { loadBalancer?: { ingress?: { ip?: string }[] } } }
      | undefined;
    last = svc?.status;
    const ip = svc?.status?.loadBalancer?.ingress?.[0]?.ip;
    if (ip) return ip;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`Service ${name} got no LoadBalancer address from the allocator: ${JSON.stringify(last)}`);
}

/** Writes the Service's EndpointSlice with one ready endpoint per pod, as the controller would. */
async function writeSlice(
  service: string,
  family: 4 | 6,
  pods: { name: string; node: string; ip: string }[],
) {
  const name = `${service}-1`;
  const body = {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { name, namespace: NS, labels: { 'kubernetes.io/service-name': service } },
    addressType: family === 4 ? 'IPv4' : 'IPv6',
    ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
    endpoints: pods.map((p) => ({
      addresses: [p.ip],
      nodeName: p.node,
      conditions: { ready: true },
      targetRef: { kind: 'Pod', namespace: NS, name: p.name },
    })),
  };
  const existing = await lab.kube.get(`${SLICES}/${name}`);
  const r = existing
    ? await lab.kube.request('PUT', `${SLICES}/${name}`, {
        ...body,
        metadata: {
          ...body.metadata,
          resourceVersion: (existing.metadata as { resourceVersion: string }).resourceVersion,
        },
      })
    : await lab.kube.request('POST', SLICES, body);
  expect(r.status, `write EndpointSlice ${name}: ${JSON.stringify(r.body).slice(0, 300)}`).toBeLessThan(300);
}

beforeAll(async () => {
  lab = await upScenarioLab(config);
  // Service LoadBalancer addresses may be announced from these ranges.
  const conf = await lab.kube.get(`${BGPCONF}/default`);
  const spec = (conf?.spec ?? {}) as Record<string, unknown>;
  const bgpConfiguration = {
    apiVersion: 'podnet.io/v1alpha1',
    kind: 'BGPConfiguration',
    metadata: { name: 'default' },
    spec: { ...spec, serviceLoadBalancerIPs: [{ cidr: V4_RANGE }, { cidr: V6_RANGE }] },
  };
  await lab.kube.apply(BGPCONF, bgpConfiguration);
  // The allocator's pools: inside the announced ranges, and one outside them (by request only).
  const pool = (name: string, addresses: string[], autoAssign = true) => ({
    apiVersion: 'podnet.io/v1alpha1',
    kind: 'LoadBalancerPool',
    metadata: { name },
    spec: { addresses, autoAssign },
  });
  await lab.kube.apply(LBPOOLS, pool('lab', ['192.0.2.0/27', '2001:db8:5::/120']));
  await lab.kube.apply(LBPOOLS, pool('outside', ['198.51.100.0/28'], false));
});

afterAll(() => downScenarioLab(config));

const backends = (family: 4 | 6, nodes: string[]) =>
  lab.pods
    .filter((p) => nodes.includes(p.node))
    .map((p) => ({ name: p.name, node: p.node, ip: podIp(p, family) }));

describe('LoadBalancer Service with externalTrafficPolicy Local (3 nodes, BIRD ToR)', () => {
  it('the ToR holds the Service /32 via exactly the two nodes with endpoints, and drops one whose endpoints go', async () => {
    const address = await createService('web', 4);
    expect(address.startsWith('192.0.2.'), `${address} from pool lab`).toBe(true);
    await writeSlice('web', 4, backends(4, ['node-a', 'node-b']));
    const both = [nodeIp('node-a'), nodeIp('node-b')].sort();
    expect(await until(() => torPaths(`${address}/32`), both), 'BIRD paths for the /32').toEqual(both);
    // BIRD merges the two paths into one ECMP route in the ToR's kernel.
    const kernel = () => hopsOf(routes(lab.service('tor').ns).find((r) => r.dst === address));
    expect(await until(kernel, both), 'ToR kernel route').toEqual(both);

    await writeSlice('web', 4, backends(4, ['node-a']));
    const one = [nodeIp('node-a')];
    expect(
      await until(() => torPaths(`${address}/32`), one),
      'BIRD paths after node-b lost its endpoints',
    ).toEqual(one);
    expect(await until(kernel, one), 'ToR kernel route after node-b lost its endpoints').toEqual(one);
    // The range itself is still announced by every node (Aggregate mode).
    expect(torPaths(V4_RANGE)).toHaveLength(lab.nodes.length);
  });

  it('does the same for an IPv6 Service address (/128 via the nodes’ IPv6 addresses)', async () => {
    const address = await createService('web6', 6);
    expect(address.startsWith('2001:db8:5::'), `${address} from pool lab`).toBe(true);
    await writeSlice('web6', 6, backends(6, ['node-b', 'node-c']));
    const want = [nodeIp('node-b', 6), nodeIp('node-c', 6)].sort();
    expect(await until(() => torPaths(`${address}/128`), want), 'BIRD paths for the /128').toEqual(want);
    await writeSlice('web6', 6, backends(6, ['node-c']));
    const one = [nodeIp('node-c', 6)];
    expect(
      await until(() => torPaths(`${address}/128`), one),
      'BIRD paths after node-b lost its endpoints',
    ).toEqual(one);
  });

  it('does not announce an address outside the ranges and says why in an Event on the Service', async () => {
    const address = await createService('outside', 4, '198.51.100.7');
    expect(address).toBe('198.51.100.7');
    await writeSlice('outside', 4, backends(4, ['node-a']));
    expect(
      await serviceEvent('outside', 'ServiceAddressNotAnnounced', [
        'status.loadBalancer.ingress[0].ip',
        address,
      ]),
      'a ServiceAddressNotAnnounced Event naming the field and the address',
    ).toBe(true);
    // The Event comes from the same computation that left the address out of the announcements.
    expect(torPaths(`${address}/32`)).toEqual([]);
  });

  it('sends the Service’s communities (standard and large) to the ToR, and announces it without one that does not parse, with an Event', async () => {
    const address = await createService('tagged', 4, undefined, {
      'podnet.io/bgp-communities': '65000:120, 64512:7:9',
    });
    await writeSlice('tagged', 4, backends(4, ['node-a']));
    const one = [nodeIp('node-a')];
    expect(await until(() => torPaths(`${address}/32`), one), 'BIRD path for the /32').toEqual(one);
    const tagged = () => {
      const all = torRouteAll(`${address}/32`);
      return (
        /BGP\.community:.*\(65000,\s*120\)/.test(all) &&
        /BGP\.large_community:.*\(64512,\s*7,\s*9\)/.test(all)
      );
    };
    expect(await until(tagged, true), `BIRD route attributes:\n${torRouteAll(`${address}/32`)}`).toBe(true);

    // A bad value: the Service stays announced, without the communities, and an Event says why.
    const svc = (await lab.kube.get(`${SERVICES}/tagged`)) as { metadata: Record<string, unknown> };
    const r = await lab.kube.request('PUT', `${SERVICES}/tagged`, {
      ...svc,
      metadata: { ...svc.metadata, annotations: { 'podnet.io/bgp-communities': '65000:x' } },
    });
    expect(r.status, `update Service tagged: ${JSON.stringify(r.body).slice(0, 300)}`).toBe(200);
    expect(
      await serviceEvent('tagged', 'InvalidServiceAnnotation', ['podnet.io/bgp-communities', '65000:x']),
      'an InvalidServiceAnnotation Event naming the annotation and the value',
    ).toBe(true);
    const untagged = () => {
      const all = torRouteAll(`${address}/32`);
      return all.includes('via') && !/BGP\.(large_)?community:/.test(all);
    };
    expect(await until(untagged, true), `BIRD route attributes:\n${torRouteAll(`${address}/32`)}`).toBe(true);
    expect(torPaths(`${address}/32`)).toEqual(one);
  });

  it('keeps the Service /32 on the ToR while the agent announcing it restarts gracefully', async () => {
    const address = await createService('steady', 4);
    await writeSlice('steady', 4, backends(4, ['node-a']));
    const one = [nodeIp('node-a')];
    expect(await until(() => torPaths(`${address}/32`), one), 'BIRD path for the /32').toEqual(one);
    // Every route change in the ToR's kernel while node-a's agent restarts: the /32 must not go.
    const monitor = spawn('ip', ['-n', lab.service('tor').ns, 'monitor', 'route'], {
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    let changes = '';
    monitor.stdout.on('data', (b: Buffer) => {
      changes += b.toString();
    });
    const before = lab.processes.find((p) => p.service === 'node-a')?.pid;
    try {
      await new Promise((r) => setTimeout(r, 500));
      await lab.restartService('node-a', 'SIGTERM');
      await lab.waitForSessions();
      // Past the new agent's first announcements and End-of-RIB, when stale routes are swept.
      await new Promise((r) => setTimeout(r, 3000));
    } finally {
      monitor.kill('SIGTERM');
    }
    // The monitor watched the whole restart (it had not exited before it was stopped).
    expect(monitor.exitCode, 'ip monitor route exited early').toBeNull();
    expect(lab.processes.find((p) => p.service === 'node-a')?.pid, 'a new node-a agent').not.toBe(before);
    const gone = changes.split('\n').filter((l) => l.startsWith('Deleted') && l.includes(`${address} `));
    expect(gone, `ToR kernel route changes:\n${changes}`).toEqual([]);
    expect(torPaths(`${address}/32`), 'BIRD path after the restart').toEqual(one);
  });
});
