// core/v1 Services (with /status) and discovery.k8s.io/v1 EndpointSlices, through
// @kubernetes/client-node over real HTTPS: discovery, the verbs, selectors and watch,
// kube-apiserver's defaults and allocations (cluster IPs, node ports), and its validation
// (422 Invalid with causes naming the field path and the value).
import {
  CoreV1Api,
  DiscoveryV1Api,
  KubeConfig,
  type V1EndpointSlice,
  type V1Service,
  Watch,
} from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Cause, getJson, invalid, mergePatch } from './__fixtures__/client.js';
import { type ApiServer, startApiServer } from './index.js';

let server: ApiServer;
let core: CoreV1Api;
let disc: DiscoveryV1Api;
let kc: KubeConfig;

beforeAll(async () => {
  server = await startApiServer({ serviceNodePortRange: '30000-30009' });
  kc = new KubeConfig();
  kc.loadFromString(server.kubeconfig);
  core = kc.makeApiClient(CoreV1Api);
  disc = kc.makeApiClient(DiscoveryV1Api);
});
afterAll(() => server.close());

const fetchJson = (path: string) => getJson(server, kc.getCurrentCluster()!.caData!, path);

const namespace = 'default';

const svc = (name: string, spec: Record<string, unknown>, labels?: Record<string, string>): V1Service =>
  ({ metadata: { name, ...(labels ? { labels } : {}) }, spec }) as V1Service;

async function waitFor(events: string[], n: number): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (events.length < n && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
}

describe('discovery', () => {
  it('lists services, services/status and endpointslices where clients look for them', async () => {
    const core = (await fetchJson('/api/v1')).resources as {
      name: string;
      namespaced: boolean;
      kind: string;
    }[];
    expect(core.find((r) => r.name === 'services')).toMatchObject({
      namespaced: true,
      kind: 'Service',
      shortNames: ['svc'],
    });
    expect(core.find((r) => r.name === 'services/status')).toMatchObject({ kind: 'Service' });
    const groups = (await fetchJson('/apis')).groups as {
      name: string;
      preferredVersion: { version: string };
    }[];
    expect(groups.find((g) => g.name === 'discovery.k8s.io')?.preferredVersion.version).toBe('v1');
    const d = (await fetchJson('/apis/discovery.k8s.io/v1')).resources as { name: string }[];
    expect(d.find((r) => r.name === 'endpointslices')).toMatchObject({
      namespaced: true,
      kind: 'EndpointSlice',
    });
  });
});

describe('Service', () => {
  it('creates a LoadBalancer with the defaults, cluster IP and node port kube-apiserver gives it', async () => {
    const s = await core.createNamespacedService({
      namespace,
      body: svc('web', { type: 'LoadBalancer', selector: { app: 'web' }, ports: [{ port: 80 }] }),
    });
    expect(s.spec).toMatchObject({
      type: 'LoadBalancer',
      sessionAffinity: 'None',
      externalTrafficPolicy: 'Cluster',
      internalTrafficPolicy: 'Cluster',
      allocateLoadBalancerNodePorts: true,
      ipFamilies: ['IPv4'],
      ipFamilyPolicy: 'SingleStack',
    });
    expect(s.spec?.clusterIP).toMatch(/^10\.(9[6-9]|10[0-9]|11[01])\./);
    expect(s.spec?.clusterIPs).toEqual([s.spec?.clusterIP]);
    expect(s.spec?.ports?.[0]).toMatchObject({ port: 80, targetPort: 80, protocol: 'TCP' });
    expect(s.spec?.ports?.[0]?.nodePort).toBeGreaterThanOrEqual(30000);
    expect(s.spec?.ports?.[0]?.nodePort).toBeLessThanOrEqual(30009);
    expect(s.spec?.healthCheckNodePort).toBeUndefined();
    expect(s.status).toEqual({ loadBalancer: {} });
    await core.deleteNamespacedService({ name: 'web', namespace });
  });

  it('gives a dual-stack Service one cluster IP per family, and a Local LoadBalancer a health check port', async () => {
    const s = await core.createNamespacedService({
      namespace,
      body: svc('dual', {
        type: 'LoadBalancer',
        externalTrafficPolicy: 'Local',
        ipFamilyPolicy: 'PreferDualStack',
        ipFamilies: ['IPv6'],
        ports: [{ port: 443, name: 'https' }],
      }),
    });
    expect(s.spec?.ipFamilies).toEqual(['IPv6', 'IPv4']);
    expect(s.spec?.clusterIPs).toHaveLength(2);
    expect(s.spec?.clusterIPs?.[0]).toMatch(/^fd00:10:96::/);
    expect(s.spec?.clusterIPs?.[1]).toMatch(/^10\./);
    expect(s.spec?.healthCheckNodePort).toBeGreaterThanOrEqual(30000);
    expect(s.spec?.healthCheckNodePort).not.toBe(s.spec?.ports?.[0]?.nodePort);
    await core.deleteNamespacedService({ name: 'dual', namespace });
  });

  it('never hands out a cluster IP or node port twice, and refuses a requested one that is taken', async () => {
    const a = await core.createNamespacedService({
      namespace,
      body: svc('np-a', { type: 'NodePort', ports: [{ port: 80, nodePort: 30005 }] }),
    });
    const b = await core.createNamespacedService({
      namespace,
      body: svc('np-b', { type: 'NodePort', ports: [{ port: 80 }] }),
    });
    expect(b.spec?.clusterIP).not.toBe(a.spec?.clusterIP);
    expect(b.spec?.ports?.[0]?.nodePort).not.toBe(30005);
    expect(
      await invalid(
        core.createNamespacedService({
          namespace,
          body: svc('np-c', { type: 'NodePort', ports: [{ port: 80, nodePort: 30005 }] }),
        }),
      ),
    ).toEqual([
      {
        field: 'spec.ports[0].nodePort',
        reason: 'FieldValueInvalid',
        message: 'Invalid value: 30005: provided port is already allocated',
      },
    ]);
    expect(
      await invalid(
        core.createNamespacedService({
          namespace,
          body: svc('np-d', { clusterIP: a.spec!.clusterIP!, ports: [{ port: 80 }] }),
        }),
      ),
    ).toEqual([
      {
        field: 'spec.clusterIPs',
        reason: 'FieldValueInvalid',
        message: `Invalid value: ["${a.spec!.clusterIP}"]: failed to allocate IP ${a.spec!.clusterIP}: provided IP is already allocated`,
      },
    ]);
    expect(
      await invalid(
        core.createNamespacedService({
          namespace,
          body: svc('np-e', { clusterIP: '192.0.2.1', ports: [{ port: 80 }] }),
        }),
      ),
    ).toEqual([
      {
        field: 'spec.clusterIPs',
        reason: 'FieldValueInvalid',
        message:
          'Invalid value: ["192.0.2.1"]: failed to allocate IP 192.0.2.1: the provided IP (192.0.2.1) is not in the valid range. The range of valid IPs is 10.96.0.0/12',
      },
    ]);
    await core.deleteNamespacedService({ name: 'np-a', namespace });
    await core.deleteNamespacedService({ name: 'np-b', namespace });
  });

  it('serves status.loadBalancer.ingress through /status, and refuses an ingress ip that is no address', async () => {
    await core.createNamespacedService({
      namespace,
      body: svc('lb', { type: 'LoadBalancer', ports: [{ port: 80 }] }),
    });
    const patched = await core.patchNamespacedServiceStatus(
      { name: 'lb', namespace, body: { status: { loadBalancer: { ingress: [{ ip: '198.51.100.7' }] } } } },
      mergePatch,
    );
    expect(patched.status?.loadBalancer?.ingress).toEqual([{ ip: '198.51.100.7' }]);
    // a spec write keeps the status; a status write ignores the spec
    const spec = await core.patchNamespacedService(
      {
        name: 'lb',
        namespace,
        body: { spec: { externalTrafficPolicy: 'Local' }, status: { loadBalancer: {} } },
      },
      mergePatch,
    );
    expect(spec.status?.loadBalancer?.ingress).toEqual([{ ip: '198.51.100.7' }]);
    expect(spec.spec?.externalTrafficPolicy).toBe('Local');
    expect(
      await invalid(
        core.patchNamespacedServiceStatus(
          {
            name: 'lb',
            namespace,
            body: { status: { loadBalancer: { ingress: [{ ip: '198.51.100.300' }] } } },
          },
          mergePatch,
        ),
      ),
    ).toEqual([
      {
        field: 'status.loadBalancer.ingress[0].ip',
        reason: 'FieldValueInvalid',
        message: 'Invalid value: "198.51.100.300": must be a valid IP address',
      },
    ]);
    const kept = await core.readNamespacedServiceStatus({ name: 'lb', namespace });
    expect(kept.status?.loadBalancer?.ingress).toEqual([{ ip: '198.51.100.7' }]);
    await core.deleteNamespacedService({ name: 'lb', namespace });
  });

  it('keeps allocated values on a replace that leaves them out, and keeps loadBalancerClass and clusterIP immutable', async () => {
    const s = await core.createNamespacedService({
      namespace,
      body: svc('cls', { type: 'LoadBalancer', loadBalancerClass: 'podnet.io/lb', ports: [{ port: 80 }] }),
    });
    const replaced = await core.replaceNamespacedService({
      name: 'cls',
      namespace,
      body: {
        metadata: { name: 'cls', resourceVersion: s.metadata!.resourceVersion! },
        spec: { type: 'LoadBalancer', loadBalancerClass: 'podnet.io/lb', ports: [{ port: 80 }] },
      },
    });
    expect(replaced.spec?.clusterIP).toBe(s.spec?.clusterIP);
    expect(replaced.spec?.ports?.[0]?.nodePort).toBe(s.spec?.ports?.[0]?.nodePort);
    expect(
      await invalid(
        core.patchNamespacedService(
          { name: 'cls', namespace, body: { spec: { loadBalancerClass: 'other.io/lb' } } },
          mergePatch,
        ),
      ),
    ).toEqual([
      {
        field: 'spec.loadBalancerClass',
        reason: 'FieldValueInvalid',
        message: 'Invalid value: "other.io/lb": may not change once set',
      },
    ]);
    expect(
      await invalid(
        core.patchNamespacedService(
          { name: 'cls', namespace, body: { spec: { clusterIP: '10.96.9.9' } } },
          mergePatch,
        ),
      ),
    ).toContainEqual({
      field: 'spec.clusterIP',
      reason: 'FieldValueInvalid',
      message: 'Invalid value: "10.96.9.9": field is immutable',
    });
    // ClusterIP again: the node port, the class and the traffic policy go with the type
    const cip = await core.patchNamespacedService(
      { name: 'cls', namespace, body: { spec: { type: 'ClusterIP' } } },
      mergePatch,
    );
    expect(cip.spec?.ports?.[0]?.nodePort).toBeUndefined();
    expect(cip.spec?.loadBalancerClass).toBeUndefined();
    expect(cip.spec?.externalTrafficPolicy).toBeUndefined();
    expect(cip.spec?.clusterIP).toBe(s.spec?.clusterIP);
    await core.deleteNamespacedService({ name: 'cls', namespace });
  });

  it('lists and watches with label and field selectors', async () => {
    const events: string[] = [];
    const req = await new Watch(kc).watch(
      `/api/v1/namespaces/${namespace}/services`,
      { labelSelector: 'tier=front' },
      (type, obj) => events.push(`${type} ${obj.metadata?.name} ${obj.spec?.type}`),
      () => {},
    );
    await core.createNamespacedService({
      namespace,
      body: svc('f1', { type: 'LoadBalancer', ports: [{ port: 80 }] }, { tier: 'front' }),
    });
    await core.createNamespacedService({
      namespace,
      body: svc('b1', { ports: [{ port: 80 }] }, { tier: 'back' }),
    });
    await core.patchNamespacedService(
      { name: 'f1', namespace, body: { spec: { type: 'NodePort' } } },
      mergePatch,
    );
    await core.deleteNamespacedService({ name: 'f1', namespace });
    await waitFor(events, 3);
    req.abort();
    expect(events).toEqual(['ADDED f1 LoadBalancer', 'MODIFIED f1 NodePort', 'DELETED f1 NodePort']);
    const byType = await core.listServiceForAllNamespaces({ fieldSelector: 'spec.type=ClusterIP' });
    expect(byType.items.map((i) => i.metadata?.name)).toEqual(['b1']);
    const byLabel = await core.listNamespacedService({ namespace, labelSelector: 'tier=back' });
    expect(byLabel.items.map((i) => i.metadata?.name)).toEqual(['b1']);
    await core.deleteNamespacedService({ name: 'b1', namespace });
  });

  it.each<[string, Record<string, unknown>, Cause[]]>([
    [
      'an unsupported type',
      { type: 'Balanced', ports: [{ port: 80 }] },
      [
        {
          field: 'spec.type',
          reason: 'FieldValueNotSupported',
          message:
            'Unsupported value: "Balanced": supported values: "ClusterIP", "ExternalName", "LoadBalancer", "NodePort"',
        },
      ],
    ],
    [
      'no ports',
      { ports: [] },
      [{ field: 'spec.ports', reason: 'FieldValueRequired', message: 'Required value' }],
    ],
    [
      'duplicate port names',
      {
        ports: [
          { name: 'http', port: 80 },
          { name: 'http', port: 81 },
        ],
      },
      [{ field: 'spec.ports[1].name', reason: 'FieldValueDuplicate', message: 'Duplicate value: "http"' }],
    ],
    [
      'an unnamed port among several',
      { ports: [{ name: 'http', port: 80 }, { port: 81 }] },
      [{ field: 'spec.ports[1].name', reason: 'FieldValueRequired', message: 'Required value' }],
    ],
    [
      'port 0 and an unsupported protocol',
      { ports: [{ port: 0, targetPort: 8080, protocol: 'HTTP' }] },
      [
        {
          field: 'spec.ports[0].protocol',
          reason: 'FieldValueNotSupported',
          message: 'Unsupported value: "HTTP": supported values: "SCTP", "TCP", "UDP"',
        },
        {
          field: 'spec.ports[0].port',
          reason: 'FieldValueInvalid',
          message: 'Invalid value: 0: must be between 1 and 65535, inclusive',
        },
      ],
    ],
    [
      'a targetPort out of range',
      { ports: [{ port: 80, targetPort: 70000 }] },
      [
        {
          field: 'spec.ports[0].targetPort',
          reason: 'FieldValueInvalid',
          message: 'Invalid value: 70000: must be between 1 and 65535, inclusive',
        },
      ],
    ],
    [
      'a nodePort on a ClusterIP Service',
      { ports: [{ port: 80, nodePort: 30001 }] },
      [
        {
          field: 'spec.ports[0].nodePort',
          reason: 'FieldValueForbidden',
          message: "Forbidden: may not be used when `type` is 'ClusterIP'",
        },
      ],
    ],
    [
      'a nodePort outside the range',
      { type: 'NodePort', ports: [{ port: 80, nodePort: 31000 }] },
      [
        {
          field: 'spec.ports[0].nodePort',
          reason: 'FieldValueInvalid',
          message:
            'Invalid value: 31000: provided port is not in the valid range. The range of valid ports is 30000-30009',
        },
      ],
    ],
    [
      'clusterIPs not starting with clusterIP',
      { clusterIP: '10.96.0.50', clusterIPs: ['10.96.0.51'], ports: [{ port: 80 }] },
      [
        {
          field: 'spec.clusterIPs',
          reason: 'FieldValueInvalid',
          message: 'Invalid value: ["10.96.0.51"]: first value must match `clusterIP`',
        },
      ],
    ],
    [
      'two cluster IPs of one family',
      {
        clusterIP: '10.96.0.50',
        clusterIPs: ['10.96.0.50', '10.96.0.51'],
        ipFamilyPolicy: 'RequireDualStack',
        ports: [{ port: 80 }],
      },
      [
        {
          field: 'spec.clusterIPs',
          reason: 'FieldValueInvalid',
          message:
            'Invalid value: ["10.96.0.50","10.96.0.51"]: may specify no more than one IP for each IP family',
        },
      ],
    ],
    [
      'SingleStack with two families',
      { ipFamilyPolicy: 'SingleStack', ipFamilies: ['IPv4', 'IPv6'], ports: [{ port: 80 }] },
      [
        {
          field: 'spec.ipFamilyPolicy',
          reason: 'FieldValueInvalid',
          message:
            "Invalid value: \"SingleStack\": must be 'RequireDualStack' or 'PreferDualStack' when multiple IP families are specified",
        },
      ],
    ],
    [
      'an IPv4 cluster IP under ipFamilies IPv6',
      { clusterIP: '10.96.0.52', ipFamilies: ['IPv6'], ports: [{ port: 80 }] },
      [
        {
          field: 'spec.clusterIPs[0]',
          reason: 'FieldValueInvalid',
          message: 'Invalid value: "10.96.0.52": expected an IPv6 value as indicated by `ipFamilies[0]`',
        },
      ],
    ],
    [
      'an unsupported IP family',
      { ipFamilies: ['IPv5'], ports: [{ port: 80 }] },
      [
        {
          field: 'spec.ipFamilies[0]',
          reason: 'FieldValueNotSupported',
          message: 'Unsupported value: "IPv5": supported values: "IPv4", "IPv6"',
        },
      ],
    ],
    [
      'loadBalancerClass on a ClusterIP Service',
      { loadBalancerClass: 'podnet.io/lb', ports: [{ port: 80 }] },
      [
        {
          field: 'spec.loadBalancerClass',
          reason: 'FieldValueForbidden',
          message: "Forbidden: may only be used when `type` is 'LoadBalancer'",
        },
      ],
    ],
    [
      'externalTrafficPolicy on a ClusterIP Service',
      { externalTrafficPolicy: 'Local', ports: [{ port: 80 }] },
      [
        {
          field: 'spec.externalTrafficPolicy',
          reason: 'FieldValueInvalid',
          message: "Invalid value: \"Local\": may only be set when `type` is 'NodePort' or 'LoadBalancer'",
        },
      ],
    ],
    [
      'an unsupported externalTrafficPolicy',
      { type: 'LoadBalancer', externalTrafficPolicy: 'Nearest', ports: [{ port: 80 }] },
      [
        {
          field: 'spec.externalTrafficPolicy',
          reason: 'FieldValueNotSupported',
          message: 'Unsupported value: "Nearest": supported values: "Cluster", "Local"',
        },
      ],
    ],
    [
      'a loadBalancerIP that is no address',
      { type: 'LoadBalancer', loadBalancerIP: '198.51.100', ports: [{ port: 80 }] },
      [
        {
          field: 'spec.loadBalancerIP',
          reason: 'FieldValueInvalid',
          message:
            'Invalid value: "198.51.100": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)',
        },
      ],
    ],
    [
      'a loopback external IP',
      { externalIPs: ['127.0.0.2'], ports: [{ port: 80 }] },
      [
        {
          field: 'spec.externalIPs[0]',
          reason: 'FieldValueInvalid',
          message: 'Invalid value: "127.0.0.2": may not be in the loopback range (127.0.0.0/8, ::1/128)',
        },
      ],
    ],
  ])('refuses %s', async (_what, spec, want) => {
    expect(await invalid(core.createNamespacedService({ namespace, body: svc('bad', spec) }))).toEqual(want);
  });
});

const slice = (name: string, body: Record<string, unknown>): V1EndpointSlice =>
  ({
    metadata: { name, labels: { 'kubernetes.io/service-name': 'web' } },
    ...body,
  }) as unknown as V1EndpointSlice;

describe('EndpointSlice', () => {
  it('creates with defaults, lists by the service-name label, watches and replaces', async () => {
    const events: string[] = [];
    const req = await new Watch(kc).watch(
      `/apis/discovery.k8s.io/v1/namespaces/${namespace}/endpointslices`,
      { labelSelector: 'kubernetes.io/service-name=web' },
      (type, obj) => events.push(`${type} ${obj.metadata?.name} ${obj.endpoints?.length}`),
      () => {},
    );
    const created = await disc.createNamespacedEndpointSlice({
      namespace,
      body: slice('web-abc', {
        addressType: 'IPv4',
        endpoints: [{ addresses: ['10.244.1.5'], conditions: { ready: true }, nodeName: 'node-a' }],
        ports: [{ port: 8080 }],
      }),
    });
    expect(created.ports).toEqual([{ name: '', port: 8080, protocol: 'TCP' }]);
    const list = await disc.listNamespacedEndpointSlice({
      namespace,
      labelSelector: 'kubernetes.io/service-name=web',
    });
    expect(list.items.map((i) => i.metadata?.name)).toEqual(['web-abc']);
    await disc.replaceNamespacedEndpointSlice({
      name: 'web-abc',
      namespace,
      body: {
        ...created,
        endpoints: [
          { addresses: ['10.244.1.5'], conditions: { ready: true }, nodeName: 'node-a' },
          { addresses: ['10.244.2.9'], conditions: { ready: false, terminating: true }, nodeName: 'node-b' },
        ],
      },
    });
    await disc.deleteNamespacedEndpointSlice({ name: 'web-abc', namespace });
    await waitFor(events, 3);
    req.abort();
    expect(events).toEqual(['ADDED web-abc 1', 'MODIFIED web-abc 2', 'DELETED web-abc 2']);
  });

  it('keeps addressType immutable', async () => {
    const s = await disc.createNamespacedEndpointSlice({
      namespace,
      body: slice('imm', { addressType: 'IPv6', endpoints: [{ addresses: ['fd00::5'] }] }),
    });
    expect(
      await invalid(
        disc.replaceNamespacedEndpointSlice({
          name: 'imm',
          namespace,
          body: { ...s, addressType: 'IPv4', endpoints: [] },
        }),
      ),
    ).toEqual([
      {
        field: 'addressType',
        reason: 'FieldValueInvalid',
        message: 'Invalid value: "IPv4": field is immutable',
      },
    ]);
    await disc.deleteNamespacedEndpointSlice({ name: 'imm', namespace });
  });

  it.each<[string, Record<string, unknown>, Cause[]]>([
    [
      'an unsupported addressType',
      { addressType: 'IPv5', endpoints: [] },
      [
        {
          field: 'addressType',
          reason: 'FieldValueNotSupported',
          message: 'Unsupported value: "IPv5": supported values: "FQDN", "IPv4", "IPv6"',
        },
      ],
    ],
    [
      'an IPv6 address in an IPv4 slice',
      { addressType: 'IPv4', endpoints: [{ addresses: ['fd00::1'] }] },
      [
        {
          field: 'endpoints[0].addresses[0]',
          reason: 'FieldValueInvalid',
          message: 'Invalid value: "fd00::1": must be a valid IPv4 address',
        },
      ],
    ],
    [
      'an endpoint without addresses',
      { addressType: 'IPv4', endpoints: [{ addresses: [] }] },
      [
        {
          field: 'endpoints[0].addresses',
          reason: 'FieldValueRequired',
          message: 'Required value: must contain at least 1 address',
        },
      ],
    ],
    [
      'an endpoint with 101 addresses',
      {
        addressType: 'IPv4',
        endpoints: [{ addresses: Array.from({ length: 101 }, (_, i) => `10.0.0.${i + 1}`) }],
      },
      [
        {
          field: 'endpoints[0].addresses',
          reason: 'FieldValueTooMany',
          message: 'Too many: 101: must have at most 100 items',
        },
      ],
    ],
    [
      'a nodeName that is no name',
      { addressType: 'IPv4', endpoints: [{ addresses: ['10.0.0.1'], nodeName: 'Node_A' }] },
      [
        {
          field: 'endpoints[0].nodeName',
          reason: 'FieldValueInvalid',
          message:
            "Invalid value: \"Node_A\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character",
        },
      ],
    ],
    [
      'duplicate port names and an unsupported protocol',
      {
        addressType: 'IPv4',
        endpoints: [],
        ports: [
          { name: 'http', port: 80 },
          { name: 'http', port: 81, protocol: 'ICMP' },
        ],
      },
      [
        { field: 'ports[1].name', reason: 'FieldValueDuplicate', message: 'Duplicate value: "http"' },
        {
          field: 'ports[1].protocol',
          reason: 'FieldValueNotSupported',
          message: 'Unsupported value: "ICMP": supported values: "SCTP", "TCP", "UDP"',
        },
      ],
    ],
  ])('refuses %s', async (_what, body, want) => {
    expect(
      await invalid(disc.createNamespacedEndpointSlice({ namespace, body: slice('bad', body) })),
    ).toEqual(want);
  });

  it('refuses a ready condition that is not a boolean', async () => {
    const f = await fetchRaw('POST', `/apis/discovery.k8s.io/v1/namespaces/${namespace}/endpointslices`, {
      metadata: { name: 'cond' },
      addressType: 'IPv4',
      endpoints: [{ addresses: ['10.0.0.1'], conditions: { ready: 'yes' } }],
    });
    expect(f.code).toBe(422);
    expect((f.details as { causes: Cause[] }).causes).toEqual([
      {
        field: 'endpoints[0].conditions.ready',
        reason: 'FieldValueTypeInvalid',
        message: 'Invalid value: "yes": endpoints[0].conditions.ready in body must be of type boolean',
      },
    ]);
  });
});

async function fetchRaw(method: string, path: string, body: unknown): Promise<Record<string, unknown>> {
  const ca = kc.getCurrentCluster()!.caData!;
  const { request } = await import('node:https');
  return new Promise((resolve, reject) => {
    const req = request(
      `${server.url}${path}`,
      {
        method,
        ca: Buffer.from(ca, 'base64'),
        headers: { authorization: `Bearer ${server.token}`, 'content-type': 'application/json' },
      },
      (res) => {
        let text = '';
        res.on('data', (c) => {
          text += c;
        });
        res.on('end', () => resolve(JSON.parse(text)));
      },
    );
    req.on('error', reject);
    req.end(JSON.stringify(body));
  });
}
