import { K8S_ERR, K8sError, type KubeClient } from '@podnet/k8s';
import { describe, expect, it } from 'vitest';
import { compute } from './compute.js';
import type { ComputeInputs } from './model.js';
import {
  COMMUNITIES_ANNOTATION,
  type EndpointSliceView,
  LOCAL_PREFERENCE_ANNOTATION,
  type ServiceInputs,
  type ServiceView,
  serviceRoutes,
} from './service-routes.js';
import { projectService, projectSlice, sliceSource } from './service-sync.js';

const lb = (name: string, ip: string, over: Partial<ServiceView> = {}): ServiceView => ({
  namespace: 'shop',
  name,
  type: 'LoadBalancer',
  clusterIPs: ['10.96.0.10'],
  externalIPs: [],
  loadBalancerIPs: [ip],
  externalTrafficPolicy: 'Local',
  annotations: {},
  ...over,
});

const slice = (service: string, readyNodes: string[]): EndpointSliceView => ({
  namespace: 'shop',
  name: `${service}-abc`,
  service,
  addressType: 'IPv4',
  readyNodes,
});

const base = (over: Partial<ServiceInputs> = {}): ServiceInputs => ({
  nodeName: 'node-a',
  services: [],
  slices: [],
  ranges: { clusterIPs: [], externalIPs: [], loadBalancerIPs: ['192.0.2.0/24', '2001:db8:5::/112'] },
  mode: 'Aggregate',
  ...over,
});

describe('serviceRoutes', () => {
  it('announces a Local Service /32 only from a node with a ready local endpoint', () => {
    const services = [lb('web', '192.0.2.10')];
    const here = serviceRoutes(base({ services, slices: [slice('web', ['node-a', 'node-b'])] }));
    expect(here.advertisements.map((a) => a.prefix)).toEqual(['192.0.2.10/32']);
    expect(here.advertisements[0]!.source).toBe('service-loadbalancer-ip');
    const elsewhere = serviceRoutes(base({ services, slices: [slice('web', ['node-b'])] }));
    expect(elsewhere.advertisements).toEqual([]);
    expect(serviceRoutes(base({ services })).advertisements).toEqual([]);
  });

  it('withdraws when the last local endpoint goes, even if another slice of the Service remains', () => {
    const services = [lb('web', '192.0.2.10')];
    const two = [slice('web', ['node-a']), { ...slice('web', ['node-b']), name: 'web-def' }];
    expect(serviceRoutes(base({ services, slices: two })).advertisements).toHaveLength(1);
    expect(serviceRoutes(base({ services, slices: [two[1]!] })).advertisements).toEqual([]);
  });

  it('announces IPv6 addresses as /128', () => {
    const r = serviceRoutes(
      base({ services: [lb('v6', '2001:db8:5::7')], slices: [slice('v6', ['node-a'])] }),
    );
    expect(r.advertisements.map((a) => a.prefix)).toEqual(['2001:db8:5::7/128']);
  });

  it('reports an address outside every range, naming the field and value, and does not announce it', () => {
    const r = serviceRoutes(
      base({ services: [lb('web', '198.51.100.4')], slices: [slice('web', ['node-a'])] }),
    );
    expect(r.advertisements).toEqual([]);
    expect(r.problems).toEqual([
      expect.objectContaining({
        name: 'web',
        field: 'status.loadBalancer.ingress[0].ip',
        value: '198.51.100.4',
        reason: 'ServiceAddressNotAnnounced',
      }),
    ]);
    expect(r.problems[0]!.message).toContain('serviceLoadBalancerIPs');
  });

  it('Cluster policy: nothing per Service in Aggregate mode, every Service address in PerService mode', () => {
    const services = [lb('web', '192.0.2.10', { externalTrafficPolicy: 'Cluster' })];
    expect(serviceRoutes(base({ services })).advertisements).toEqual([]);
    const per = serviceRoutes(base({ services, mode: 'PerService' }));
    expect(per.advertisements.map((a) => a.prefix)).toEqual(['192.0.2.10/32']);
  });

  it('applies valid community and local preference annotations', () => {
    const r = serviceRoutes(
      base({
        services: [
          lb('web', '192.0.2.10', {
            annotations: {
              [COMMUNITIES_ANNOTATION]: '65000:100, 65000:1:2',
              [LOCAL_PREFERENCE_ANNOTATION]: '200',
            },
          }),
        ],
        slices: [slice('web', ['node-a'])],
      }),
    );
    expect(r.problems).toEqual([]);
    expect(r.advertisements[0]).toMatchObject({
      communities: ['65000:100'],
      largeCommunities: ['65000:1:2'],
      localPref: 200,
    });
  });

  it('reports a bad annotation by name and value and still announces the Service without it', () => {
    const r = serviceRoutes(
      base({
        services: [
          lb('web', '192.0.2.10', {
            annotations: { [COMMUNITIES_ANNOTATION]: '65000:70000', [LOCAL_PREFERENCE_ANNOTATION]: 'high' },
          }),
        ],
        slices: [slice('web', ['node-a'])],
      }),
    );
    expect(r.advertisements).toHaveLength(1);
    expect(r.advertisements[0]).toMatchObject({ communities: [], largeCommunities: [] });
    expect(r.advertisements[0]!.localPref).toBeUndefined();
    expect(r.problems.map((p) => [p.field, p.value, p.reason])).toEqual([
      [COMMUNITIES_ANNOTATION, '65000:70000', 'InvalidServiceAnnotation'],
      [LOCAL_PREFERENCE_ANNOTATION, 'high', 'InvalidServiceAnnotation'],
    ]);
  });

  it('announces a shared address once for both Services', () => {
    const r = serviceRoutes(
      base({
        services: [lb('a', '192.0.2.10'), lb('b', '192.0.2.10', { externalTrafficPolicy: 'Cluster' })],
        slices: [slice('a', ['node-a'])],
        mode: 'PerService',
      }),
    );
    expect(r.advertisements).toHaveLength(1);
    expect(r.advertisements[0]!.services).toEqual(['shop/a', 'shop/b']);
  });

  it('answers the same lists and settings with the same result, and anything else afresh', () => {
    const services = [lb('web', '192.0.2.10')];
    const slices = [slice('web', ['node-a'])];
    const a = serviceRoutes(base({ services, slices }));
    expect(a.advertisements.map((x) => x.prefix)).toEqual(['192.0.2.10/32']);
    expect(serviceRoutes(base({ services, slices }))).toBe(a);
    expect(serviceRoutes(base({ services, slices: [slice('web', ['node-b'])] })).advertisements).toEqual([]);
    expect(serviceRoutes(base({ services, slices, nodeName: 'node-b' })).advertisements).toEqual([]);
    expect(
      serviceRoutes(base({ services: [...services, lb('api', '192.0.2.11')], slices })).advertisements,
    ).toHaveLength(1);
    const moved = serviceRoutes(
      base({
        services,
        slices,
        ranges: { clusterIPs: [], externalIPs: [], loadBalancerIPs: ['198.51.100.0/24'] },
      }),
    );
    expect(moved.advertisements).toEqual([]);
    expect(serviceRoutes(base({ services, slices }))).toEqual(a);
  });

  it('gives the same answer when Services are reused across passes (the per-object memo)', () => {
    // The informer hands out the same objects pass after pass: a merge for a shared address must not
    // leak into the next pass, and a change of ranges must be seen by an unchanged Service.
    const a = lb('a', '192.0.2.10', { annotations: { [COMMUNITIES_ANNOTATION]: '65000:1' } });
    const b = lb('b', '192.0.2.10', {
      externalTrafficPolicy: 'Cluster',
      annotations: { [COMMUNITIES_ANNOTATION]: '65000:2', [LOCAL_PREFERENCE_ANNOTATION]: '300' },
    });
    const slices = [slice('a', ['node-a'])];
    const both = serviceRoutes(base({ services: [a, b], slices, mode: 'PerService' }));
    expect(both.advertisements).toMatchObject([
      {
        prefix: '192.0.2.10/32',
        services: ['shop/a', 'shop/b'],
        communities: ['65000:1', '65000:2'],
        localPref: 300,
      },
    ]);
    const alone = serviceRoutes(base({ services: [a], slices, mode: 'PerService' }));
    expect(alone.advertisements).toEqual([
      {
        prefix: '192.0.2.10/32',
        source: 'service-loadbalancer-ip',
        communities: ['65000:1'],
        largeCommunities: [],
        services: ['shop/a'],
      },
    ]);
    expect(serviceRoutes(base({ services: [a], slices, mode: 'PerService' })).advertisements[0]).toBe(
      alone.advertisements[0],
    );
    const moved = serviceRoutes(
      base({
        services: [a],
        slices,
        ranges: { clusterIPs: [], externalIPs: [], loadBalancerIPs: ['198.51.100.0/24'] },
      }),
    );
    expect(moved.advertisements).toEqual([]);
    expect(moved.problems.map((p) => p.field)).toEqual(['status.loadBalancer.ingress[0].ip']);
    expect(serviceRoutes(base({ services: [a], slices })).advertisements.map((x) => x.prefix)).toEqual([
      '192.0.2.10/32',
    ]);
  });
});

describe('projections', () => {
  it('keep only the fields the announcements use', () => {
    const s = projectService({
      metadata: {
        name: 'web',
        namespace: 'shop',
        uid: 'u1',
        annotations: {
          [LOCAL_PREFERENCE_ANNOTATION]: '150',
          'kubectl.kubernetes.io/last-applied': 'x'.repeat(100),
        },
      },
      spec: { type: 'LoadBalancer', clusterIPs: ['10.96.0.5'], externalTrafficPolicy: 'Local' },
      status: { loadBalancer: { ingress: [{ ip: '192.0.2.9' }] } },
    });
    expect(s).toEqual({
      namespace: 'shop',
      name: 'web',
      uid: 'u1',
      type: 'LoadBalancer',
      clusterIPs: ['10.96.0.5'],
      externalIPs: [],
      loadBalancerIPs: ['192.0.2.9'],
      externalTrafficPolicy: 'Local',
      annotations: { [LOCAL_PREFERENCE_ANNOTATION]: '150' },
    });
    const e = projectSlice({
      metadata: { name: 'web-x', namespace: 'shop', labels: { 'kubernetes.io/service-name': 'web' } },
      addressType: 'IPv4',
      endpoints: [
        { nodeName: 'node-b', conditions: { ready: true } },
        { nodeName: 'node-a' },
        { nodeName: 'node-c', conditions: { ready: false } },
        { nodeName: 'node-b', conditions: { ready: null } },
      ],
    });
    expect(e.readyNodes).toEqual(['node-a', 'node-b']);
    expect(e.service).toBe('web');
  });
});

describe('EndpointSlices on a server without discovery.k8s.io/v1 (Kubernetes 1.20)', () => {
  it('lists and watches v1beta1 after v1 answers 404, and reads the node from topology', async () => {
    const asked: string[] = [];
    const client = {
      stats: { reads: 0 },
      async request(method: string, path: string) {
        const version = path.split('/')[3] ?? '';
        asked.push(`${method} ${version}`);
        if (version === 'v1')
          throw new K8sError(K8S_ERR.NOT_FOUND, 'the server could not find the requested resource', 404);
        return {
          metadata: { resourceVersion: '7' },
          items: [
            {
              metadata: {
                name: 'web-x',
                namespace: 'shop',
                labels: { 'kubernetes.io/service-name': 'web' },
              },
              addressType: 'IPv4',
              endpoints: [
                { topology: { 'kubernetes.io/hostname': 'node-b' }, conditions: { ready: true } },
                { topology: { 'kubernetes.io/hostname': 'node-c' }, conditions: { ready: false } },
              ],
            },
          ],
        };
      },
    } as unknown as KubeClient;
    const src = sliceSource(client);
    expect(src.path).toBe('/apis/discovery.k8s.io/v1/endpointslices');
    const listed = await src.list({});
    expect(asked).toEqual(['GET v1', 'GET v1beta1']);
    expect(src.path).toBe('/apis/discovery.k8s.io/v1beta1/endpointslices');
    expect(listed.resourceVersion).toBe('7');
    const parsed = src.parse(listed.items[0]);
    expect(parsed.ok && parsed.value.readyNodes).toEqual(['node-b']);
    await src.list({});
    expect(asked).toEqual(['GET v1', 'GET v1beta1', 'GET v1beta1']);
  });

  it('keeps other list errors as they are', async () => {
    const client = {
      stats: { reads: 0 },
      async request() {
        throw new K8sError(K8S_ERR.FORBIDDEN, 'endpointslices is forbidden', 403);
      },
    } as unknown as KubeClient;
    const src = sliceSource(client);
    await expect(src.list({})).rejects.toThrow(/forbidden/);
    expect(src.path).toBe('/apis/discovery.k8s.io/v1/endpointslices');
  });
});

describe('compute with Services', () => {
  const inputs = (mode?: 'Aggregate' | 'PerService'): ComputeInputs => ({
    nodeName: 'node-a',
    nodeAddress: '10.0.0.1/24',
    nodes: [{ name: 'node-a', labels: {}, ipv4: '10.0.0.1/24' }],
    pools: [],
    bgpConfigs: [
      {
        name: 'default',
        serviceLoadBalancerIPs: ['192.0.2.0/24'],
        communities: [{ cidr: '192.0.2.0/24', values: ['65000:1'] }],
        ...(mode ? { serviceAdvertisement: mode } : {}),
      },
    ],
    peers: [],
    secrets: {},
    blocks: [],
    affinities: [],
    pods: [],
    rib: [],
    services: {
      services: [lb('web', '192.0.2.10', { annotations: { [COMMUNITIES_ANNOTATION]: '65000:2' } })],
      slices: [slice('web', ['node-a'])],
    },
  });

  it('announces the range and the Local /32 with range and Service communities', () => {
    const d = compute(inputs());
    expect(d.advertisements.map((a) => [a.prefix, a.communities])).toEqual([
      ['192.0.2.0/24', ['65000:1']],
      ['192.0.2.10/32', ['65000:1', '65000:2']],
    ]);
    expect(d.advertisements[1]!.nextHop).toBe('10.0.0.1');
  });

  it('reuses a Service advertisement for the same Service, next hop and rules, and makes a new one when they change', () => {
    const first = inputs();
    const again = { ...inputs(), services: first.services! };
    const x = compute(first).advertisements[1]!;
    expect(compute(again).advertisements[1]).toBe(x);
    const other = compute({ ...again, nodeAddress: '10.0.0.2/24' }).advertisements[1]!;
    expect(other.nextHop).toBe('10.0.0.2');
    const rules = compute({
      ...again,
      bgpConfigs: [{ ...again.bgpConfigs[0]!, communities: [{ cidr: '192.0.2.0/24', values: ['65000:9'] }] }],
    }).advertisements[1]!;
    expect(rules.communities).toEqual(['65000:2', '65000:9']);
    expect(compute(again).advertisements[1]).toEqual(x);
  });

  it('PerService mode leaves the range aggregate out', () => {
    const d = compute(inputs('PerService'));
    expect(d.advertisements.map((a) => a.prefix)).toEqual(['192.0.2.10/32']);
  });
});
