// networking.k8s.io/v1 NetworkPolicies and labelled Namespaces, through @kubernetes/client-node
// over real HTTPS: the verbs, kube-apiserver's defaults, and its validation (422 Invalid with
// causes naming the field path and the value).
import {
  CoreV1Api,
  KubeConfig,
  NetworkingV1Api,
  PatchStrategy,
  setHeaderOptions,
  type V1NetworkPolicy,
  Watch,
} from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { failure, getJson, mergePatch } from './__fixtures__/client.js';
import { type ApiServer, startApiServer } from './index.js';

let server: ApiServer;
let net: NetworkingV1Api;
let core: CoreV1Api;
let kc: KubeConfig;

beforeAll(async () => {
  server = await startApiServer({});
  kc = new KubeConfig();
  kc.loadFromString(server.kubeconfig);
  net = kc.makeApiClient(NetworkingV1Api);
  core = kc.makeApiClient(CoreV1Api);
});
afterAll(() => server.close());

const fetchJson = (path: string) => getJson(server, kc.getCurrentCluster()!.caData!, path);

/** client-node's model names the `from` field `_from` (a reserved word); its serializer writes `from`. */
const clientShape = (v: unknown): unknown =>
  Array.isArray(v)
    ? v.map(clientShape)
    : v && typeof v === 'object'
      ? Object.fromEntries(Object.entries(v).map(([k, x]) => [k === 'from' ? '_from' : k, clientShape(x)]))
      : v;
const np = (name: string, spec: Record<string, unknown>): V1NetworkPolicy =>
  ({ metadata: { name }, spec: clientShape(spec) }) as V1NetworkPolicy;

describe('NetworkPolicy', () => {
  it('is discovered under networking.k8s.io/v1 as a namespaced resource', async () => {
    const res = await fetchJson('/apis/networking.k8s.io/v1');
    const r = (res.resources as { name: string; namespaced: boolean; kind: string }[]).find(
      (x) => x.name === 'networkpolicies',
    );
    expect(r).toMatchObject({ namespaced: true, kind: 'NetworkPolicy' });
  });

  it('creates with the defaults kube-apiserver applies, then get, list, patch, replace and delete', async () => {
    const created = await net.createNamespacedNetworkPolicy({
      namespace: 'default',
      body: np('web', {
        podSelector: { matchLabels: { app: 'web' } },
        ingress: [{ ports: [{ port: 80 }, { port: 'http', protocol: 'UDP' }] }],
        egress: [{ to: [{ ipBlock: { cidr: '10.0.0.0/8', except: ['10.1.0.0/16'] } }] }],
      }),
    });
    expect(created.spec?.policyTypes).toEqual(['Ingress', 'Egress']);
    expect(created.spec?.ingress?.[0]?.ports).toEqual([
      { port: 80, protocol: 'TCP' },
      { port: 'http', protocol: 'UDP' },
    ]);
    const ingressOnly = await net.createNamespacedNetworkPolicy({
      namespace: 'default',
      body: np('deny', { podSelector: {}, egress: [] }),
    });
    expect(ingressOnly.spec?.policyTypes).toEqual(['Ingress']);

    const got = await net.readNamespacedNetworkPolicy({ name: 'web', namespace: 'default' });
    expect(got.metadata?.uid).toBe(created.metadata?.uid);
    const list = await net.listNamespacedNetworkPolicy({ namespace: 'default' });
    expect(list.items.map((i) => i.metadata?.name).sort()).toEqual(['deny', 'web']);
    const all = await net.listNetworkPolicyForAllNamespaces();
    expect(all.items).toHaveLength(2);

    const patched = await net.patchNamespacedNetworkPolicy(
      { name: 'web', namespace: 'default', body: { spec: { policyTypes: ['Egress'] } } },
      mergePatch,
    );
    expect(patched.spec?.policyTypes).toEqual(['Egress']);
    expect(patched.metadata?.generation).toBe(2);
    const replaced = await net.replaceNamespacedNetworkPolicy({
      name: 'web',
      namespace: 'default',
      body: { ...patched, spec: { ...patched.spec!, podSelector: {} } },
    });
    expect(replaced.spec?.podSelector).toEqual({});
    await net.deleteNamespacedNetworkPolicy({ name: 'web', namespace: 'default' });
    await net.deleteNamespacedNetworkPolicy({ name: 'deny', namespace: 'default' });
    expect((await failure(net.readNamespacedNetworkPolicy({ name: 'web', namespace: 'default' }))).code).toBe(
      404,
    );
  });

  it('is watched: ADDED, MODIFIED and DELETED', async () => {
    const events: string[] = [];
    const req = await new Watch(kc).watch(
      '/apis/networking.k8s.io/v1/namespaces/default/networkpolicies',
      {},
      (type, obj) => events.push(`${type} ${obj.metadata?.name} ${JSON.stringify(obj.spec?.policyTypes)}`),
      () => {},
    );
    await net.createNamespacedNetworkPolicy({ namespace: 'default', body: np('w', { podSelector: {} }) });
    await net.patchNamespacedNetworkPolicy(
      { name: 'w', namespace: 'default', body: { spec: { policyTypes: ['Ingress', 'Egress'] } } },
      mergePatch,
    );
    await net.deleteNamespacedNetworkPolicy({ name: 'w', namespace: 'default' });
    const deadline = Date.now() + 10_000;
    while (events.length < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    req.abort();
    expect(events).toEqual([
      'ADDED w ["Ingress"]',
      'MODIFIED w ["Ingress","Egress"]',
      'DELETED w ["Ingress","Egress"]',
    ]);
  });

  it.each<[string, Record<string, unknown>, { field: string; reason: string; message: string }[]]>([
    [
      'a port out of range',
      { ingress: [{ ports: [{ port: 70000 }] }] },
      [
        {
          field: 'spec.ingress[0].ports[0].port',
          reason: 'FieldValueInvalid',
          message: 'Invalid value: 70000: must be between 1 and 65535, inclusive',
        },
      ],
    ],
    [
      'port 0',
      { egress: [{ ports: [{ port: 0 }] }] },
      [
        {
          field: 'spec.egress[0].ports[0].port',
          reason: 'FieldValueInvalid',
          message: 'Invalid value: 0: must be between 1 and 65535, inclusive',
        },
      ],
    ],
    [
      'an unsupported protocol',
      { ingress: [{ ports: [{ protocol: 'ICMP', port: 1 }] }] },
      [
        {
          field: 'spec.ingress[0].ports[0].protocol',
          reason: 'FieldValueNotSupported',
          message: 'Unsupported value: "ICMP": supported values: "TCP", "UDP", "SCTP"',
        },
      ],
    ],
    [
      'endPort below port',
      { ingress: [{ ports: [{ port: 90, endPort: 80 }] }] },
      [
        {
          field: 'spec.ingress[0].ports[0].endPort',
          reason: 'FieldValueInvalid',
          message: 'Invalid value: 80: must be greater than or equal to `port`',
        },
      ],
    ],
    [
      'endPort with a named port',
      { ingress: [{ ports: [{ port: 'http', endPort: 90 }] }] },
      [
        {
          field: 'spec.ingress[0].ports[0].endPort',
          reason: 'FieldValueForbidden',
          message: 'Forbidden: may not be specified when `port` is non-numeric',
        },
      ],
    ],
    [
      'endPort without port',
      { ingress: [{ ports: [{ endPort: 90 }] }] },
      [
        {
          field: 'spec.ingress[0].ports[0].port',
          reason: 'FieldValueRequired',
          message: 'Required value: must be specified when `endPort` is specified',
        },
      ],
    ],
    [
      'a port name that is not an IANA service name',
      { ingress: [{ ports: [{ port: 'HTTP' }] }] },
      [
        {
          field: 'spec.ingress[0].ports[0].port',
          reason: 'FieldValueInvalid',
          message:
            'Invalid value: "HTTP": must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)',
        },
      ],
    ],
    [
      'a peer with nothing',
      { ingress: [{ from: [{}] }] },
      [
        {
          field: 'spec.ingress[0].from[0]',
          reason: 'FieldValueRequired',
          message: 'Required value: must specify a peer',
        },
      ],
    ],
    [
      'ipBlock with a selector',
      { egress: [{ to: [{ ipBlock: { cidr: '10.0.0.0/8' }, namespaceSelector: {} }] }] },
      [
        {
          field: 'spec.egress[0].to[0]',
          reason: 'FieldValueForbidden',
          message: 'Forbidden: may not specify both ipBlock and another peer',
        },
      ],
    ],
    [
      'an invalid cidr',
      { ingress: [{ from: [{ ipBlock: { cidr: '10.0.0.0/33' } }] }] },
      [
        {
          field: 'spec.ingress[0].from[0].ipBlock.cidr',
          reason: 'FieldValueInvalid',
          message: 'Invalid value: "10.0.0.0/33"',
        },
      ],
    ],
    [
      'an except outside the cidr and one as large as it',
      { ingress: [{ from: [{ ipBlock: { cidr: '10.0.0.0/16', except: ['10.1.0.0/24', '10.0.0.0/16'] } }] }] },
      [
        {
          field: 'spec.ingress[0].from[0].ipBlock.except[0]',
          reason: 'FieldValueInvalid',
          message: 'Invalid value: "10.1.0.0/24": must be a strict subset of `cidr`',
        },
        {
          field: 'spec.ingress[0].from[0].ipBlock.except[1]',
          reason: 'FieldValueInvalid',
          message: 'Invalid value: "10.0.0.0/16": must be a strict subset of `cidr`',
        },
      ],
    ],
    [
      'an IPv6 except in an IPv4 block',
      { ingress: [{ from: [{ ipBlock: { cidr: '10.0.0.0/16', except: ['fd00::/64'] } }] }] },
      [
        {
          field: 'spec.ingress[0].from[0].ipBlock.except[0]',
          reason: 'FieldValueInvalid',
          message: 'Invalid value: "fd00::/64": must be a strict subset of `cidr`',
        },
      ],
    ],
    [
      'In without values and Exists with values',
      {
        podSelector: {
          matchExpressions: [
            { key: 'a', operator: 'In', values: [] },
            { key: 'b', operator: 'Exists', values: ['x'] },
          ],
        },
      },
      [
        {
          field: 'spec.podSelector.matchExpressions[0].values',
          reason: 'FieldValueRequired',
          message: "Required value: must be specified when `operator` is 'In' or 'NotIn'",
        },
        {
          field: 'spec.podSelector.matchExpressions[1].values',
          reason: 'FieldValueForbidden',
          message: "Forbidden: may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
        },
      ],
    ],
    [
      'an unknown selector operator',
      {
        ingress: [
          {
            from: [
              { namespaceSelector: { matchExpressions: [{ key: 'a', operator: 'Equals', values: ['b'] }] } },
            ],
          },
        ],
      },
      [
        {
          field: 'spec.ingress[0].from[0].namespaceSelector.matchExpressions[0].operator',
          reason: 'FieldValueInvalid',
          message: 'Invalid value: "Equals": not a valid selector operator',
        },
      ],
    ],
    [
      'a label value that is not one',
      { podSelector: { matchLabels: { app: 'no spaces' } } },
      [
        {
          field: 'spec.podSelector.matchLabels',
          reason: 'FieldValueInvalid',
          message: 'Invalid value: "no spaces": a valid label must be',
        },
      ],
    ],
    [
      'an unknown policyType',
      { policyTypes: ['Ingress', 'Sideways'] },
      [
        {
          field: 'spec.policyTypes[1]',
          reason: 'FieldValueNotSupported',
          message: 'Unsupported value: "Sideways": supported values: "Ingress", "Egress"',
        },
      ],
    ],
    [
      'three policyTypes',
      { policyTypes: ['Ingress', 'Egress', 'Ingress'] },
      [
        {
          field: 'spec.policyTypes',
          reason: 'FieldValueInvalid',
          message: 'may not specify more than two policyTypes',
        },
      ],
    ],
  ])('refuses %s with 422 Invalid naming the field and the value', async (_what, spec, want) => {
    const f = await failure(
      net.createNamespacedNetworkPolicy({
        namespace: 'default',
        body: np('bad', { podSelector: {}, ...spec }),
      }),
    );
    expect(f.code).toBe(422);
    expect(f.body).toMatchObject({
      reason: 'Invalid',
      details: { kind: 'NetworkPolicy', name: 'bad', group: 'networking.k8s.io' },
    });
    const got = (f.body.details as { causes: { field: string; reason: string; message: string }[] }).causes;
    expect(got).toHaveLength(want.length);
    want.forEach((w, i) => {
      expect(got[i]!.field).toBe(w.field);
      expect(got[i]!.reason).toBe(w.reason);
      expect(got[i]!.message).toContain(w.message);
    });
    // Nothing was stored.
    expect((await failure(net.readNamespacedNetworkPolicy({ name: 'bad', namespace: 'default' }))).code).toBe(
      404,
    );
  });

  it('takes a strategic merge patch (kubectl apply) that replaces a rule list whole', async () => {
    await net.createNamespacedNetworkPolicy({
      namespace: 'default',
      body: np('smp', { podSelector: {}, ingress: [{ ports: [{ port: 80 }] }, { ports: [{ port: 81 }] }] }),
    });
    const patched = await net.patchNamespacedNetworkPolicy(
      { name: 'smp', namespace: 'default', body: { spec: { ingress: [{ ports: [{ port: 82 }] }] } } },
      setHeaderOptions('Content-Type', PatchStrategy.StrategicMergePatch),
    );
    expect(patched.spec?.ingress).toEqual([{ ports: [{ port: 82, protocol: 'TCP' }] }]);
    await net.deleteNamespacedNetworkPolicy({ name: 'smp', namespace: 'default' });
  });

  it('refuses an invalid update and keeps the stored object', async () => {
    await net.createNamespacedNetworkPolicy({ namespace: 'default', body: np('keep', { podSelector: {} }) });
    const f = await failure(
      net.patchNamespacedNetworkPolicy(
        { name: 'keep', namespace: 'default', body: { spec: { ingress: [{ ports: [{ port: 99999 }] }] } } },
        mergePatch,
      ),
    );
    expect(f.code).toBe(422);
    const kept = await net.readNamespacedNetworkPolicy({ name: 'keep', namespace: 'default' });
    expect(kept.spec?.ingress).toBeUndefined();
    await net.deleteNamespacedNetworkPolicy({ name: 'keep', namespace: 'default' });
  });
});

describe('Namespace labels (what namespaceSelector reads)', () => {
  it('stores, patches and selects namespaces by label, with kubernetes.io/metadata.name always set', async () => {
    await core.createNamespace({ body: { metadata: { name: 'team-x', labels: { team: 'x' } } } });
    const patched = await core.patchNamespace(
      { name: 'team-x', body: { metadata: { labels: { team: 'y', env: 'prod' } } } },
      mergePatch,
    );
    expect(patched.metadata?.labels).toEqual({
      team: 'y',
      env: 'prod',
      'kubernetes.io/metadata.name': 'team-x',
    });
    const sel = await core.listNamespace({ labelSelector: 'team in (y),env=prod' });
    expect(sel.items.map((n) => n.metadata?.name)).toEqual(['team-x']);
  });
});
