// The embedded API server, exercised only through @kubernetes/client-node over real HTTPS/HTTP.
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  ApiextensionsV1Api,
  ApisApi,
  CoreV1Api,
  CustomObjectsApi,
  KubeConfig,
  KubernetesObjectApi,
  makeInformer,
  PatchStrategy,
  setHeaderOptions,
  type V1CustomResourceDefinition,
  type V1Pod,
  VersionApi,
  Watch,
} from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { failure, mergePatch } from './__fixtures__/client.js';
import { type ApiServerOptions, startApiServer } from './index.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'podnet-apiserver-test-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function clientsFor(kubeconfig: string) {
  const kc = new KubeConfig();
  kc.loadFromString(kubeconfig);
  return {
    kc,
    core: kc.makeApiClient(CoreV1Api),
    custom: kc.makeApiClient(CustomObjectsApi),
    ext: kc.makeApiClient(ApiextensionsV1Api),
  };
}

async function start(opts: ApiServerOptions = {}) {
  const server = await startApiServer(opts);
  return { server, ...clientsFor(server.kubeconfig) };
}

async function until<T>(what: string, check: () => T | undefined | false, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = check();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const pod = (name: string, extra: Partial<V1Pod> = {}): V1Pod => ({
  metadata: { name, ...extra.metadata },
  spec: { containers: [{ name: 'app', image: 'busybox' }], ...extra.spec },
});

interface WatchEvent {
  type: string;
  obj: {
    metadata?: { name?: string; resourceVersion?: string; annotations?: Record<string, string> };
    code?: number;
    reason?: string;
  };
}

async function openWatch(
  kc: KubeConfig,
  path: string,
  query: Record<string, string | number | boolean | undefined>,
) {
  const events: WatchEvent[] = [];
  let ended: unknown = null;
  let done = false;
  const req = await new Watch(kc).watch(
    path,
    query,
    (type, obj) => events.push({ type, obj }),
    (err) => {
      ended = err;
      done = true;
    },
  );
  return {
    events,
    isDone: () => done,
    error: () => ended,
    stop: () => req.abort(),
  };
}

describe('core resources over HTTPS with the generated kubeconfig', () => {
  let s: Awaited<ReturnType<typeof start>>;
  beforeAll(async () => {
    s = await start({ kubeconfigPath: join(dir, 'core', 'kubeconfig') });
  });
  afterAll(async () => {
    await s.server.close();
  });

  it('writes a kubeconfig with an https server, the CA and the token', async () => {
    expect(s.server.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    const text = await readFile(join(dir, 'core', 'kubeconfig'), 'utf8');
    const kc = new KubeConfig();
    kc.loadFromString(text);
    expect(kc.getCurrentCluster()?.server).toBe(s.server.url);
    expect(kc.getCurrentCluster()?.caData).toBeTruthy();
    expect(kc.getCurrentUser()?.token).toBe(s.server.token);
  });

  it('has the default and kube-system namespaces', async () => {
    const list = await s.core.listNamespace();
    const names = list.items.map((n) => n.metadata?.name);
    expect(names).toEqual(expect.arrayContaining(['default', 'kube-system']));
    expect(Number(list.metadata?.resourceVersion)).toBeGreaterThan(0);
  });

  it('creates, gets, lists, patches, updates and deletes a pod with increasing resourceVersions', async () => {
    const created = await s.core.createNamespacedPod({
      namespace: 'default',
      body: pod('crud', { metadata: { labels: { app: 'a' } } }),
    });
    expect(created.metadata?.uid).toMatch(/^[0-9a-f-]{36}$/);
    expect(created.metadata?.creationTimestamp).toBeInstanceOf(Date);
    expect(created.metadata?.generation).toBe(1);
    expect(created.status?.phase).toBe('Pending');
    const rv1 = Number(created.metadata?.resourceVersion);

    const got = await s.core.readNamespacedPod({ name: 'crud', namespace: 'default' });
    expect(got.metadata?.uid).toBe(created.metadata?.uid);

    const merged = await s.core.patchNamespacedPod(
      { name: 'crud', namespace: 'default', body: { metadata: { labels: { tier: 'web', app: null } } } },
      mergePatch,
    );
    expect(merged.metadata?.labels).toEqual({ tier: 'web' });
    const rv2 = Number(merged.metadata?.resourceVersion);
    expect(rv2).toBeGreaterThan(rv1);

    // client-node's default patch type is RFC 6902 JSON Patch
    const jsonPatched = await s.core.patchNamespacedPod({
      name: 'crud',
      namespace: 'default',
      body: [{ op: 'add', path: '/metadata/annotations', value: { note: 'x' } }],
    });
    expect(jsonPatched.metadata?.annotations).toEqual({ note: 'x' });

    const toUpdate = structuredClone(jsonPatched);
    toUpdate.spec!.containers[0]!.image = 'busybox:1.36';
    const updated = await s.core.replaceNamespacedPod({ name: 'crud', namespace: 'default', body: toUpdate });
    expect(updated.spec?.containers[0]?.image).toBe('busybox:1.36');
    expect(updated.metadata?.generation).toBe(2);
    expect(Number(updated.metadata?.resourceVersion)).toBeGreaterThan(
      Number(jsonPatched.metadata?.resourceVersion),
    );

    const list = await s.core.listNamespacedPod({ namespace: 'default' });
    expect(list.items.map((p) => p.metadata?.name)).toContain('crud');
    expect(Number(list.metadata?.resourceVersion)).toBeGreaterThanOrEqual(
      Number(updated.metadata?.resourceVersion),
    );

    await s.core.deleteNamespacedPod({ name: 'crud', namespace: 'default' });
    const gone = await failure(s.core.readNamespacedPod({ name: 'crud', namespace: 'default' }));
    expect(gone.code).toBe(404);
  });

  it('does not bump the resourceVersion for an update that changes nothing', async () => {
    const p = await s.core.createNamespacedPod({ namespace: 'default', body: pod('noop') });
    const same = await s.core.replaceNamespacedPod({ name: 'noop', namespace: 'default', body: p });
    expect(same.metadata?.resourceVersion).toBe(p.metadata?.resourceVersion);
  });

  it('answers a stale update with 409 Conflict as a Status', async () => {
    const p = await s.core.createNamespacedPod({ namespace: 'default', body: pod('stale') });
    await s.core.patchNamespacedPod(
      { name: 'stale', namespace: 'default', body: { metadata: { labels: { v: '2' } } } },
      mergePatch,
    );
    const r = await failure(
      s.core.replaceNamespacedPod({
        name: 'stale',
        namespace: 'default',
        body: { ...p, metadata: { ...p.metadata, labels: { v: '3' } } },
      }),
    );
    expect(r.code).toBe(409);
    expect(r.body).toMatchObject({
      kind: 'Status',
      apiVersion: 'v1',
      status: 'Failure',
      reason: 'Conflict',
      code: 409,
      details: { name: 'stale', kind: 'pods' },
    });
    expect(String(r.body.message)).toContain('the object has been modified');
    const patchWithOldRv = await failure(
      s.core.patchNamespacedPod(
        {
          name: 'stale',
          namespace: 'default',
          body: { metadata: { resourceVersion: p.metadata?.resourceVersion, labels: { v: '4' } } },
        },
        mergePatch,
      ),
    );
    expect(patchWithOldRv.code).toBe(409);
  });

  it.each([
    {
      what: '404 NotFound for a missing pod',
      call: (c: CoreV1Api) => c.readNamespacedPod({ name: 'nope', namespace: 'default' }),
      code: 404,
      body: { reason: 'NotFound', message: 'pods "nope" not found', details: { name: 'nope', kind: 'pods' } },
    },
    {
      what: '404 NotFound for a pod in a missing namespace',
      call: (c: CoreV1Api) => c.createNamespacedPod({ namespace: 'missing-ns', body: pod('x') }),
      code: 404,
      body: { reason: 'NotFound', message: 'namespaces "missing-ns" not found' },
    },
    {
      what: '409 AlreadyExists for a second default namespace',
      call: (c: CoreV1Api) => c.createNamespace({ body: { metadata: { name: 'default' } } }),
      code: 409,
      body: {
        reason: 'AlreadyExists',
        message: 'namespaces "default" already exists',
        details: { name: 'default', kind: 'namespaces' },
      },
    },
    {
      what: '422 Invalid for a pod without containers',
      call: (c: CoreV1Api) =>
        c.createNamespacedPod({
          namespace: 'default',
          body: { metadata: { name: 'empty' }, spec: { containers: [] } },
        }),
      code: 422,
      body: {
        reason: 'Invalid',
        details: {
          name: 'empty',
          kind: 'Pod',
          causes: [{ reason: 'FieldValueRequired', field: 'spec.containers' }],
        },
      },
    },
    {
      what: '422 Invalid for an upper-case name',
      call: (c: CoreV1Api) => c.createNamespacedPod({ namespace: 'default', body: pod('Bad_Name') }),
      code: 422,
      body: { reason: 'Invalid', details: { causes: [{ field: 'metadata.name' }] } },
    },
    {
      what: '422 Invalid for a missing name',
      call: (c: CoreV1Api) =>
        c.createNamespacedPod({
          namespace: 'default',
          body: { spec: { containers: [{ name: 'a', image: 'b' }] } },
        }),
      code: 422,
      body: {
        reason: 'Invalid',
        details: { causes: [{ field: 'metadata.name', reason: 'FieldValueRequired' }] },
      },
    },
    {
      what: '400 BadRequest for an unsupported field selector',
      call: (c: CoreV1Api) => c.listNamespacedPod({ namespace: 'default', fieldSelector: 'spec.hostname=x' }),
      code: 400,
      body: { reason: 'BadRequest', message: 'field label not supported: spec.hostname' },
    },
    {
      what: '400 BadRequest for a malformed label selector',
      call: (c: CoreV1Api) => c.listNamespacedPod({ namespace: 'default', labelSelector: 'a in (b' }),
      code: 400,
      body: { reason: 'BadRequest' },
    },
    {
      what: '403 Forbidden for deleting the default namespace',
      call: (c: CoreV1Api) => c.deleteNamespace({ name: 'default' }),
      code: 403,
      body: { reason: 'Forbidden' },
    },
  ])('answers $what', async ({ call, code, body }) => {
    const r = await failure(call(s.core));
    expect(r.code).toBe(code);
    expect(r.body).toMatchObject({ kind: 'Status', apiVersion: 'v1', status: 'Failure', code, ...body });
  });

  it('holds a deletion until the last finalizer is removed', async () => {
    await s.core.createNamespacedSecret({
      namespace: 'default',
      body: { metadata: { name: 'held', finalizers: ['podnet.io/a', 'podnet.io/b'] } },
    });
    await s.core.deleteNamespacedSecret({ name: 'held', namespace: 'default' });
    const marked = await s.core.readNamespacedSecret({ name: 'held', namespace: 'default' });
    expect(marked.metadata?.deletionTimestamp).toBeInstanceOf(Date);
    const adding = await failure(
      s.core.patchNamespacedSecret(
        {
          name: 'held',
          namespace: 'default',
          body: { metadata: { finalizers: ['podnet.io/a', 'podnet.io/b', 'podnet.io/c'] } },
        },
        mergePatch,
      ),
    );
    expect(adding.code).toBe(422);
    await s.core.patchNamespacedSecret(
      { name: 'held', namespace: 'default', body: { metadata: { finalizers: ['podnet.io/b'] } } },
      mergePatch,
    );
    expect(
      (await s.core.readNamespacedSecret({ name: 'held', namespace: 'default' })).metadata?.finalizers,
    ).toEqual(['podnet.io/b']);
    await s.core.patchNamespacedSecret(
      { name: 'held', namespace: 'default', body: { metadata: { finalizers: null } } },
      mergePatch,
    );
    expect((await failure(s.core.readNamespacedSecret({ name: 'held', namespace: 'default' }))).code).toBe(
      404,
    );
  });

  it('ignores the status given on pod create', async () => {
    const p = await s.core.createNamespacedPod({
      namespace: 'default',
      body: { ...pod('fresh'), status: { phase: 'Running', podIP: '10.1.1.1' } },
    });
    expect(p.status?.phase).toBe('Pending');
    expect(p.status?.podIP).toBeUndefined();
  });

  it('keeps a pod spec immutable except for images, and places a pod on a node through pods/binding', async () => {
    const p = await s.core.createNamespacedPod({ namespace: 'default', body: pod('placed') });
    expect(p.spec).toMatchObject({
      restartPolicy: 'Always',
      dnsPolicy: 'ClusterFirst',
      schedulerName: 'default-scheduler',
    });
    const moved = await failure(
      s.core.patchNamespacedPod(
        { name: 'placed', namespace: 'default', body: { spec: { nodeName: 'node-9' } } },
        mergePatch,
      ),
    );
    expect(moved.code).toBe(422);
    expect(moved.body).toMatchObject({
      reason: 'Invalid',
      details: { causes: [{ field: 'spec', reason: 'FieldValueForbidden' }] },
    });
    await s.core.createNamespacedPodBinding({
      name: 'placed',
      namespace: 'default',
      body: { metadata: { name: 'placed' }, target: { kind: 'Node', name: 'node-9' } },
    });
    expect((await s.core.readNamespacedPod({ name: 'placed', namespace: 'default' })).spec?.nodeName).toBe(
      'node-9',
    );
    const again = await failure(
      s.core.createNamespacedPodBinding({
        name: 'placed',
        namespace: 'default',
        body: { metadata: { name: 'placed' }, target: { kind: 'Node', name: 'node-8' } },
      }),
    );
    expect(again.code).toBe(409);
  });

  it('serves configmaps and events', async () => {
    await s.core.createNamespacedConfigMap({
      namespace: 'kube-system',
      body: { metadata: { name: 'podnet-config' }, data: { asNumber: '64512' } },
    });
    expect(
      (await s.core.readNamespacedConfigMap({ name: 'podnet-config', namespace: 'kube-system' })).data,
    ).toEqual({ asNumber: '64512' });
    await s.core.createNamespacedEvent({
      namespace: 'default',
      body: {
        metadata: { generateName: 'podnet-' },
        involvedObject: { kind: 'Node', name: 'node-1' },
        reason: 'BGPPeerUp',
        message: 'peer 10.0.0.1 established',
      },
    });
    expect((await s.core.listNamespacedEvent({ namespace: 'default' })).items.map((e) => e.reason)).toContain(
      'BGPPeerUp',
    );
  });

  it("refuses an event whose namespace is not its object's (a cluster-scoped object's go to default)", async () => {
    const bad = await failure(
      s.core.createNamespacedEvent({
        namespace: 'kube-system',
        body: {
          metadata: { name: 'node-ev' },
          involvedObject: { kind: 'Node', name: 'node-1' },
          reason: 'X',
          message: 'y',
        },
      }),
    );
    expect(bad.code).toBe(422);
    expect(JSON.stringify(bad.body)).toContain('involvedObject.namespace');
    const pod = await failure(
      s.core.createNamespacedEvent({
        namespace: 'default',
        body: {
          metadata: { name: 'pod-ev' },
          involvedObject: { kind: 'Pod', name: 'p', namespace: 'kube-system' },
          reason: 'X',
        },
      }),
    );
    expect(pod.code).toBe(422);
  });

  it('serves coordination.k8s.io/v1 Leases with compare-and-swap and validates their spec', async () => {
    const g = { group: 'coordination.k8s.io', version: 'v1', namespace: 'kube-system', plural: 'leases' };
    const groups = (await s.kc.makeApiClient(ApisApi).getAPIVersions()).groups.map((x) => x.name);
    expect(groups).toContain('coordination.k8s.io');
    const created = (await s.custom.createNamespacedCustomObject({
      ...g,
      body: {
        apiVersion: 'coordination.k8s.io/v1',
        kind: 'Lease',
        metadata: { name: 'writer' },
        spec: {
          holderIdentity: 'node-a',
          leaseDurationSeconds: 15,
          acquireTime: '2026-01-01T00:00:00.000000Z',
          renewTime: '2026-01-01T00:00:00.000000Z',
          leaseTransitions: 0,
        },
      },
    })) as { metadata: { resourceVersion: string }; spec: Record<string, unknown> };
    const next = { ...created, spec: { ...created.spec, holderIdentity: 'node-b', leaseTransitions: 1 } };
    await s.custom.replaceNamespacedCustomObject({ ...g, name: 'writer', body: next });
    // The same stale resourceVersion again: the second writer loses.
    expect(
      (await failure(s.custom.replaceNamespacedCustomObject({ ...g, name: 'writer', body: next }))).code,
    ).toBe(409);
    for (const [field, value] of [
      ['leaseDurationSeconds', 0],
      ['leaseTransitions', -1],
      ['renewTime', '2026-01-01T00:00:00.000Z'],
    ] as const) {
      const r = await failure(
        s.custom.createNamespacedCustomObject({
          ...g,
          body: {
            apiVersion: 'coordination.k8s.io/v1',
            kind: 'Lease',
            metadata: { name: `bad-${field.toLowerCase()}` },
            spec: { [field]: value },
          },
        }),
      );
      expect(r.code).toBe(422);
      expect(JSON.stringify(r.body)).toContain(`spec.${field}`);
    }
  });

  it('stores nothing on dryRun=All', async () => {
    const p = await s.core.createNamespacedPod({ namespace: 'default', body: pod('dry'), dryRun: 'All' });
    expect(p.metadata?.name).toBe('dry');
    expect((await failure(s.core.readNamespacedPod({ name: 'dry', namespace: 'default' }))).code).toBe(404);
  });

  it('deletes with preconditions and by collection with a selector', async () => {
    await s.core.createNamespace({ body: { metadata: { name: 'coll' } } });
    const a = await s.core.createNamespacedPod({
      namespace: 'coll',
      body: pod('a', { metadata: { labels: { batch: 'x' } } }),
    });
    await s.core.createNamespacedPod({
      namespace: 'coll',
      body: pod('b', { metadata: { labels: { batch: 'x' } } }),
    });
    await s.core.createNamespacedPod({ namespace: 'coll', body: pod('c') });
    const stale = await failure(
      s.core.deleteNamespacedPod({
        name: 'a',
        namespace: 'coll',
        body: { preconditions: { resourceVersion: '1' } },
      }),
    );
    expect(stale.code).toBe(409);
    await s.core.deleteNamespacedPod({
      name: 'a',
      namespace: 'coll',
      body: { preconditions: { uid: a.metadata!.uid! } },
    });
    await s.core.deleteCollectionNamespacedPod({ namespace: 'coll', labelSelector: 'batch=x' });
    expect(
      (await s.core.listNamespacedPod({ namespace: 'coll' })).items.map((p) => p.metadata?.name),
    ).toEqual(['c']);
  });

  it('applies a strategic merge patch to pod status conditions by type', async () => {
    await s.core.createNamespacedPod({ namespace: 'default', body: pod('smp') });
    const smp = setHeaderOptions('Content-Type', PatchStrategy.StrategicMergePatch);
    const conditions = [
      { type: 'Ready', status: 'False' },
      { type: 'PodScheduled', status: 'True' },
    ];
    await s.core.patchNamespacedPodStatus(
      { name: 'smp', namespace: 'default', body: { status: { conditions } } },
      smp,
    );
    const p = await s.core.patchNamespacedPodStatus(
      {
        name: 'smp',
        namespace: 'default',
        body: { status: { conditions: [{ type: 'Ready', status: 'True' }] } },
      },
      smp,
    );
    expect(p.status?.conditions?.map((c) => `${c.type}=${c.status}`)).toEqual([
      'Ready=True',
      'PodScheduled=True',
    ]);
  });

  it('names an object from generateName', async () => {
    const p = await s.core.createNamespacedPod({
      namespace: 'default',
      body: { metadata: { generateName: 'gen-' }, spec: pod('x').spec },
    });
    expect(p.metadata?.name).toMatch(/^gen-[a-z0-9]{5}$/);
    expect(p.metadata?.generateName).toBe('gen-');
  });

  it('filters lists by label selectors with every operator', async () => {
    await s.core.createNamespace({ body: { metadata: { name: 'labels' } } });
    const labelSets: Record<string, Record<string, string>> = {
      p1: { app: 'web', tier: 'front' },
      p2: { app: 'web', tier: 'back' },
      p3: { app: 'db' },
      p4: {},
    };
    for (const [name, labels] of Object.entries(labelSets))
      await s.core.createNamespacedPod({ namespace: 'labels', body: pod(name, { metadata: { labels } }) });
    const cases: [string, string[]][] = [
      ['app=web', ['p1', 'p2']],
      ['app==web', ['p1', 'p2']],
      ['app!=web', ['p3', 'p4']],
      ['app in (web,db)', ['p1', 'p2', 'p3']],
      ['app notin (web)', ['p3', 'p4']],
      ['tier', ['p1', 'p2']],
      ['!tier', ['p3', 'p4']],
      ['app=web,tier=back', ['p2']],
      ['app in (web), tier notin (front)', ['p2']],
      ['', ['p1', 'p2', 'p3', 'p4']],
    ];
    for (const [labelSelector, want] of cases) {
      const list = await s.core.listNamespacedPod({ namespace: 'labels', labelSelector });
      expect(
        list.items.map((p) => p.metadata?.name),
        labelSelector,
      ).toEqual(want);
    }
  });

  it('filters lists by field selectors: metadata.name, metadata.namespace, spec.nodeName, status.phase', async () => {
    await s.core.createNamespace({ body: { metadata: { name: 'fields' } } });
    await s.core.createNamespacedPod({
      namespace: 'fields',
      body: pod('on-a', { spec: { nodeName: 'node-a', containers: [{ name: 'c', image: 'i' }] } }),
    });
    await s.core.createNamespacedPod({
      namespace: 'fields',
      body: pod('on-b', { spec: { nodeName: 'node-b', containers: [{ name: 'c', image: 'i' }] } }),
    });
    await s.core.patchNamespacedPodStatus(
      { name: 'on-b', namespace: 'fields', body: { status: { phase: 'Running' } } },
      mergePatch,
    );
    const names = async (fieldSelector: string) =>
      (await s.core.listPodForAllNamespaces({ fieldSelector })).items.map((p) => p.metadata?.name);
    expect(await names('spec.nodeName=node-a')).toEqual(['on-a']);
    expect(await names('spec.nodeName!=node-a,metadata.namespace=fields')).toEqual(['on-b']);
    expect(await names('status.phase=Running,metadata.namespace==fields')).toEqual(['on-b']);
    expect(await names('metadata.name=on-a')).toEqual(['on-a']);
  });

  it('keeps status out of main-resource writes and spec out of /status writes', async () => {
    const p = await s.core.createNamespacedPod({
      namespace: 'default',
      body: pod('sub', { spec: { nodeName: 'n', containers: [{ name: 'c', image: 'i' }] } }),
    });
    const withStatus = await s.core.replaceNamespacedPodStatus({
      name: 'sub',
      namespace: 'default',
      body: {
        ...p,
        spec: { ...p.spec!, nodeName: 'ignored' },
        status: { phase: 'Running', podIP: '10.0.0.5' },
      },
    });
    expect(withStatus.status?.podIP).toBe('10.0.0.5');
    expect(withStatus.spec?.nodeName).toBe('n');
    const viaMain = await s.core.patchNamespacedPod(
      { name: 'sub', namespace: 'default', body: { status: { podIP: '1.1.1.1' } } },
      mergePatch,
    );
    expect(viaMain.status?.podIP).toBe('10.0.0.5');
  });

  it("turns a secret's stringData into base64 data", async () => {
    const sec = await s.core.createNamespacedSecret({
      namespace: 'kube-system',
      body: { metadata: { name: 'bgp-password' }, stringData: { password: 's3cret' } },
    });
    expect(sec.data).toEqual({ password: Buffer.from('s3cret').toString('base64') });
    expect(sec.type).toBe('Opaque');
    expect((sec as { stringData?: unknown }).stringData).toBeUndefined();
  });

  it('pages a list with limit and continue', async () => {
    await s.core.createNamespace({ body: { metadata: { name: 'paging' } } });
    for (let i = 0; i < 5; i++) await s.core.createNamespacedPod({ namespace: 'paging', body: pod(`p${i}`) });
    const first = await s.core.listNamespacedPod({ namespace: 'paging', limit: 2 });
    expect(first.items.map((p) => p.metadata?.name)).toEqual(['p0', 'p1']);
    expect(first.metadata?.remainingItemCount).toBe(3);
    const second = await s.core.listNamespacedPod({
      namespace: 'paging',
      limit: 2,
      _continue: first.metadata!._continue!,
    });
    expect(second.items.map((p) => p.metadata?.name)).toEqual(['p2', 'p3']);
    const third = await s.core.listNamespacedPod({
      namespace: 'paging',
      limit: 2,
      _continue: second.metadata!._continue!,
    });
    expect(third.items.map((p) => p.metadata?.name)).toEqual(['p4']);
    expect(third.metadata?._continue).toBeUndefined();
  });

  it('deletes a namespace together with the objects in it', async () => {
    await s.core.createNamespace({ body: { metadata: { name: 'doomed' } } });
    await s.core.createNamespacedPod({ namespace: 'doomed', body: pod('p') });
    await s.core.deleteNamespace({ name: 'doomed' });
    expect((await failure(s.core.readNamespacedPod({ name: 'p', namespace: 'doomed' }))).code).toBe(404);
  });

  it('serves nodes, cluster-scoped', async () => {
    const n = await s.core.createNode({
      body: { metadata: { name: 'node-1', annotations: { 'podnet.io/ipv4-address': '10.0.0.1/24' } } },
    });
    expect(n.metadata?.namespace).toBeUndefined();
    const list = await s.core.listNode({ fieldSelector: 'metadata.name=node-1' });
    expect(list.items).toHaveLength(1);
  });

  it('rejects requests without the bearer token with a 401 Status', async () => {
    const kc = new KubeConfig();
    kc.loadFromOptions({
      clusters: [
        { name: 'c', server: s.server.url, caData: s.kc.getCurrentCluster()!.caData!, skipTLSVerify: false },
      ],
      users: [{ name: 'anonymous' }],
      contexts: [{ name: 'c', cluster: 'c', user: 'anonymous' }],
      currentContext: 'c',
    });
    const r = await failure(kc.makeApiClient(CoreV1Api).listNamespace());
    expect(r.code).toBe(401);
    // client-node drops 401 bodies; read the Status with a plain HTTPS request that trusts the CA
    const ca = Buffer.from(s.kc.getCurrentCluster()!.caData!, 'base64').toString();
    const raw = await new Promise<{ code: number; body: string }>((resolve, reject) => {
      const req = httpsRequest(
        `${s.server.url}/api/v1/namespaces`,
        { ca, headers: { Authorization: 'Bearer wrong' } },
        (res) => {
          let body = '';
          res.on('data', (c) => {
            body += c;
          });
          res.on('end', () => resolve({ code: res.statusCode ?? 0, body }));
        },
      );
      req.on('error', reject);
      req.end();
    });
    expect(raw.code).toBe(401);
    expect(JSON.parse(raw.body)).toMatchObject({
      kind: 'Status',
      apiVersion: 'v1',
      status: 'Failure',
      reason: 'Unauthorized',
      code: 401,
    });
  });
});

describe('watch', () => {
  let s: Awaited<ReturnType<typeof start>>;
  beforeAll(async () => {
    s = await start({ historySize: 20, bookmarkIntervalMs: 200 });
    await s.core.createNamespace({ body: { metadata: { name: 'w' } } });
  });
  afterAll(async () => {
    await s.server.close();
  });

  it('streams ADDED, MODIFIED and DELETED after the list resourceVersion, with bookmarks', async () => {
    const list = await s.core.listNamespacedPod({ namespace: 'w' });
    const w = await openWatch(s.kc, '/api/v1/namespaces/w/pods', {
      resourceVersion: list.metadata?.resourceVersion,
      allowWatchBookmarks: true,
    });
    await s.core.createNamespacedPod({ namespace: 'w', body: pod('a') });
    await s.core.patchNamespacedPod(
      { name: 'a', namespace: 'w', body: { metadata: { labels: { x: 'y' } } } },
      mergePatch,
    );
    await s.core.deleteNamespacedPod({ name: 'a', namespace: 'w' });
    await until(
      'DELETED and a BOOKMARK',
      () => w.events.some((e) => e.type === 'DELETED') && w.events.some((e) => e.type === 'BOOKMARK'),
    );
    w.stop();
    expect(
      w.events.filter((e) => e.type !== 'BOOKMARK').map((e) => `${e.type} ${e.obj.metadata?.name}`),
    ).toEqual(['ADDED a', 'MODIFIED a', 'DELETED a']);
    const rvs = w.events
      .filter((e) => e.type !== 'BOOKMARK')
      .map((e) => Number(e.obj.metadata?.resourceVersion));
    expect(rvs).toEqual([...rvs].sort((x, y) => x - y));
    const bm = w.events.find((e) => e.type === 'BOOKMARK')!;
    expect(Number(bm.obj.metadata?.resourceVersion)).toBeGreaterThanOrEqual(rvs[0]!);
  });

  it('resumes from a resourceVersion with the events missed in between', async () => {
    const p = await s.core.createNamespacedPod({ namespace: 'w', body: pod('resume') });
    await s.core.patchNamespacedPod(
      { name: 'resume', namespace: 'w', body: { metadata: { labels: { n: '1' } } } },
      mergePatch,
    );
    await s.core.patchNamespacedPod(
      { name: 'resume', namespace: 'w', body: { metadata: { labels: { n: '2' } } } },
      mergePatch,
    );
    const w = await openWatch(s.kc, '/api/v1/namespaces/w/pods', {
      resourceVersion: p.metadata?.resourceVersion,
    });
    await until('two MODIFIED events', () => w.events.length >= 2);
    w.stop();
    expect(w.events.map((e) => e.type)).toEqual(['MODIFIED', 'MODIFIED']);
  });

  it('sends current objects as ADDED when no resourceVersion is given', async () => {
    await s.core.createNamespace({ body: { metadata: { name: 'initial' } } });
    await s.core.createNamespacedPod({ namespace: 'initial', body: pod('one') });
    const w = await openWatch(s.kc, '/api/v1/namespaces/initial/pods', {});
    await until('ADDED one', () => w.events.length >= 1);
    w.stop();
    expect(w.events.map((e) => `${e.type} ${e.obj.metadata?.name}`)).toEqual(['ADDED one']);
  });

  it('answers a resourceVersion older than the history with an ERROR 410 Gone (Expired) and ends the stream', async () => {
    const first = await s.core.createNamespacedPod({ namespace: 'w', body: pod('old') });
    for (let i = 0; i < 25; i++)
      await s.core.patchNamespacedPod(
        { name: 'old', namespace: 'w', body: { metadata: { labels: { i: String(i) } } } },
        mergePatch,
      );
    const w = await openWatch(s.kc, '/api/v1/namespaces/w/pods', {
      resourceVersion: first.metadata?.resourceVersion,
    });
    await until('the stream to end', () => w.isDone());
    expect(w.events).toHaveLength(1);
    expect(w.events[0]!.type).toBe('ERROR');
    expect(w.events[0]!.obj).toMatchObject({
      kind: 'Status',
      status: 'Failure',
      code: 410,
      reason: 'Expired',
    });
  });

  it('answers resourceVersion 1 with 410 Gone, as a real server whose watch cache starts at boot', async () => {
    const w = await openWatch(s.kc, '/api/v1/namespaces', { resourceVersion: '1' });
    await until('the stream to end', () => w.isDone());
    expect(w.events.map((e) => e.obj.code)).toEqual([410]);
  });

  it('answers lists with resourceVersion=0 and resourceVersionMatch as kube-apiserver does', async () => {
    const s = await start();
    try {
      await s.core.createNamespacedSecret({
        namespace: 'default',
        body: { metadata: { name: 'pw' }, stringData: { k: 'v' } },
      });
      await s.core.createNamespacedSecret({ namespace: 'default', body: { metadata: { name: 'other' } } });
      const zero = await s.core.listNamespacedSecret({
        namespace: 'default',
        resourceVersion: '0',
        fieldSelector: 'metadata.name=pw',
      });
      expect(zero.items.map((i) => i.metadata?.name)).toEqual(['pw']);
      const rv = zero.metadata!.resourceVersion!;
      const notOlder = await s.core.listNamespacedSecret({
        namespace: 'default',
        resourceVersion: rv,
        resourceVersionMatch: 'NotOlderThan',
      });
      expect(notOlder.items.map((i) => i.metadata?.name).sort()).toEqual(['other', 'pw']);
      const bad = await failure(
        s.core.listNamespacedSecret({ namespace: 'default', resourceVersionMatch: 'NotOlderThan' }),
      );
      expect(bad.code).toBe(400);
      expect(String(bad.body.message)).toMatch(/resourceVersionMatch/);
      expect(
        (await failure(s.core.listNamespacedSecret({ namespace: 'default', resourceVersion: 'x' }))).code,
      ).toBe(400);
      await s.core.createNamespacedSecret({ namespace: 'default', body: { metadata: { name: 'third' } } });
      const exactOld = await failure(
        s.core.listNamespacedSecret({
          namespace: 'default',
          resourceVersion: rv,
          resourceVersionMatch: 'Exact',
        }),
      );
      expect(exactOld.code).toBe(410);
    } finally {
      await s.server.close();
    }
  });
  it('turns field-selector transitions into ADDED and DELETED for the filtered watch', async () => {
    const list = await s.core.listPodForAllNamespaces({ fieldSelector: 'spec.nodeName=node-x' });
    const w = await openWatch(s.kc, '/api/v1/pods', {
      resourceVersion: list.metadata?.resourceVersion,
      fieldSelector: 'spec.nodeName=node-x',
    });
    await s.core.createNamespacedPod({
      namespace: 'w',
      body: pod('elsewhere', { spec: { nodeName: 'node-y', containers: [{ name: 'c', image: 'i' }] } }),
    });
    await s.core.createNamespacedPod({
      namespace: 'w',
      body: pod('here', { spec: { nodeName: 'node-x', containers: [{ name: 'c', image: 'i' }] } }),
    });
    await s.core.patchNamespacedPod(
      { name: 'here', namespace: 'w', body: { metadata: { labels: { a: 'b' } } } },
      mergePatch,
    );
    await s.core.deleteNamespacedPod({ name: 'here', namespace: 'w' });
    await until('DELETED here', () => w.events.some((e) => e.type === 'DELETED'));
    w.stop();
    expect(w.events.map((e) => `${e.type} ${e.obj.metadata?.name}`)).toEqual([
      'ADDED here',
      'MODIFIED here',
      'DELETED here',
    ]);
  });

  it('watches one object by name and ends the stream after timeoutSeconds', async () => {
    const a = await s.core.createNamespacedPod({ namespace: 'w', body: pod('single') });
    await s.core.createNamespacedPod({ namespace: 'w', body: pod('other') });
    const w = await openWatch(s.kc, '/api/v1/namespaces/w/pods', {
      fieldSelector: 'metadata.name=single',
      resourceVersion: a.metadata?.resourceVersion,
      timeoutSeconds: 1,
    });
    await s.core.patchNamespacedPod(
      { name: 'other', namespace: 'w', body: { metadata: { labels: { a: 'b' } } } },
      mergePatch,
    );
    await s.core.patchNamespacedPod(
      { name: 'single', namespace: 'w', body: { metadata: { labels: { a: 'b' } } } },
      mergePatch,
    );
    await until('the server to end the watch', () => w.isDone(), 10_000);
    expect(w.events.map((e) => `${e.type} ${e.obj.metadata?.name}`)).toEqual(['MODIFIED single']);
  });

  it('marks the end of the initial events with a bookmark when sendInitialEvents is asked for', async () => {
    await s.core.createNamespace({ body: { metadata: { name: 'streaming' } } });
    await s.core.createNamespacedPod({ namespace: 'streaming', body: pod('x1') });
    await s.core.createNamespacedPod({ namespace: 'streaming', body: pod('x2') });
    const w = await openWatch(s.kc, '/api/v1/namespaces/streaming/pods', {
      sendInitialEvents: true,
      allowWatchBookmarks: true,
      resourceVersionMatch: 'NotOlderThan',
    });
    await until('the initial-events-end bookmark', () =>
      w.events.some((e) => e.obj.metadata?.annotations?.['k8s.io/initial-events-end'] === 'true'),
    );
    w.stop();
    expect(w.events.slice(0, 3).map((e) => `${e.type} ${e.obj.metadata?.name ?? ''}`)).toEqual([
      'ADDED x1',
      'ADDED x2',
      'BOOKMARK ',
    ]);
  });

  it('keeps a client-node informer in sync, including after 410 Gone', async () => {
    await s.core.createNamespace({ body: { metadata: { name: 'inf' } } });
    await s.core.createNamespacedPod({ namespace: 'inf', body: pod('before') });
    const informer = makeInformer(s.kc, '/api/v1/namespaces/inf/pods', () =>
      s.core.listNamespacedPod({ namespace: 'inf' }),
    );
    const added: string[] = [];
    informer.on('add', (p) => added.push(p.metadata!.name!));
    await informer.start();
    try {
      await until('the listed pod', () => informer.get('before', 'inf'));
      await s.core.createNamespacedPod({ namespace: 'inf', body: pod('after') });
      await until('the watched pod', () => informer.get('after', 'inf'));
      expect(added).toEqual(['before', 'after']);
      await s.core.deleteNamespacedPod({ name: 'before', namespace: 'inf' });
      await until('the deletion', () => !informer.get('before', 'inf'));
    } finally {
      await informer.stop();
    }
  });
});

const ippoolCrd: V1CustomResourceDefinition = {
  metadata: { name: 'ippools.podnet.io' },
  spec: {
    group: 'podnet.io',
    scope: 'Cluster',
    names: { plural: 'ippools', singular: 'ippool', kind: 'IPPool', listKind: 'IPPoolList' },
    versions: [
      {
        name: 'v1alpha1',
        served: true,
        storage: true,
        subresources: { status: {} },
        schema: {
          openAPIV3Schema: {
            type: 'object',
            properties: {
              spec: {
                type: 'object',
                required: ['cidr'],
                properties: {
                  cidr: { type: 'string' },
                  blockSize: { type: 'integer', _default: 26, minimum: 20, maximum: 32 },
                  disabled: { type: 'boolean', _default: false },
                },
              },
              status: { type: 'object', properties: { allocated: { type: 'integer' } } },
            },
          },
        },
      },
    ],
  },
};

const blockCrd: V1CustomResourceDefinition = {
  metadata: { name: 'things.example.podnet.io' },
  spec: {
    group: 'example.podnet.io',
    scope: 'Namespaced',
    names: { plural: 'things', singular: 'thing', kind: 'Thing' },
    versions: [
      {
        name: 'v1',
        served: true,
        storage: true,
        schema: {
          openAPIV3Schema: {
            type: 'object',
            properties: { spec: { type: 'object', x_kubernetes_preserve_unknown_fields: true } },
          },
        },
      },
    ],
  },
};

describe('custom resources', () => {
  let s: Awaited<ReturnType<typeof start>>;
  beforeAll(async () => {
    s = await start();
  });
  afterAll(async () => {
    await s.server.close();
  });

  it('serves a cluster-scoped custom resource once its CRD is created, with defaults, pruning and /status', async () => {
    const before = await failure(
      s.custom.listClusterCustomObject({ group: 'podnet.io', version: 'v1alpha1', plural: 'ippools' }),
    );
    expect(before.code).toBe(404);
    const crd = await s.ext.createCustomResourceDefinition({ body: ippoolCrd });
    expect(crd.status?.conditions?.find((c) => c.type === 'Established')?.status).toBe('True');

    const pool = await s.custom.createClusterCustomObject({
      group: 'podnet.io',
      version: 'v1alpha1',
      plural: 'ippools',
      body: {
        apiVersion: 'podnet.io/v1alpha1',
        kind: 'IPPool',
        metadata: { name: 'default-v4' },
        spec: { cidr: '10.244.0.0/16', junk: 1 },
        status: { allocated: 9 },
      },
    });
    expect(pool.spec).toEqual({ cidr: '10.244.0.0/16', blockSize: 26, disabled: false });
    expect(pool.status).toBeUndefined();

    const withStatus = await s.custom.patchClusterCustomObjectStatus(
      {
        group: 'podnet.io',
        version: 'v1alpha1',
        plural: 'ippools',
        name: 'default-v4',
        body: { status: { allocated: 3 }, spec: { cidr: '1.0.0.0/8' } },
      },
      mergePatch,
    );
    expect(withStatus.status).toEqual({ allocated: 3 });
    expect(withStatus.spec.cidr).toBe('10.244.0.0/16');
    expect(withStatus.metadata.generation).toBe(1);

    const specChange = await s.custom.patchClusterCustomObject(
      {
        group: 'podnet.io',
        version: 'v1alpha1',
        plural: 'ippools',
        name: 'default-v4',
        body: { spec: { disabled: true } },
      },
      mergePatch,
    );
    expect(specChange.metadata.generation).toBe(2);

    const list = await s.custom.listClusterCustomObject({
      group: 'podnet.io',
      version: 'v1alpha1',
      plural: 'ippools',
    });
    expect(list.kind).toBe('IPPoolList');
    expect(list.items.map((i: { metadata: { name: string } }) => i.metadata.name)).toEqual(['default-v4']);
  });

  it('refuses a strategic merge patch on a custom resource with 415, as kube-apiserver does', async () => {
    const r = await failure(
      s.custom.patchClusterCustomObject(
        {
          group: 'podnet.io',
          version: 'v1alpha1',
          plural: 'ippools',
          name: 'default-v4',
          body: { spec: { disabled: true } },
        },
        setHeaderOptions('Content-Type', PatchStrategy.StrategicMergePatch),
      ),
    );
    expect(r.code).toBe(415);
    expect(r.body).toMatchObject({ kind: 'Status', reason: 'UnsupportedMediaType' });
  });

  it('rejects a custom resource that breaks its schema with 422 naming the field', async () => {
    const r = await failure(
      s.custom.createClusterCustomObject({
        group: 'podnet.io',
        version: 'v1alpha1',
        plural: 'ippools',
        body: {
          apiVersion: 'podnet.io/v1alpha1',
          kind: 'IPPool',
          metadata: { name: 'bad' },
          spec: { cidr: '10.0.0.0/8', blockSize: 99 },
        },
      }),
    );
    expect(r.code).toBe(422);
    expect(r.body).toMatchObject({
      reason: 'Invalid',
      details: { name: 'bad', group: 'podnet.io', kind: 'IPPool', causes: [{ field: 'spec.blockSize' }] },
    });
    const missing = await failure(
      s.custom.createClusterCustomObject({
        group: 'podnet.io',
        version: 'v1alpha1',
        plural: 'ippools',
        body: { apiVersion: 'podnet.io/v1alpha1', kind: 'IPPool', metadata: { name: 'bad2' }, spec: {} },
      }),
    );
    expect(missing.body).toMatchObject({
      details: { causes: [{ field: 'spec.cidr', reason: 'FieldValueRequired' }] },
    });
  });

  it('requires a resourceVersion to update a custom resource and enforces it', async () => {
    const obj = await s.custom.getClusterCustomObject({
      group: 'podnet.io',
      version: 'v1alpha1',
      plural: 'ippools',
      name: 'default-v4',
    });
    const { resourceVersion: _rv, ...metaNoRv } = obj.metadata;
    const noRv = await failure(
      s.custom.replaceClusterCustomObject({
        group: 'podnet.io',
        version: 'v1alpha1',
        plural: 'ippools',
        name: 'default-v4',
        body: { ...obj, metadata: metaNoRv },
      }),
    );
    expect(noRv.code).toBe(422);
    const ok = await s.custom.replaceClusterCustomObject({
      group: 'podnet.io',
      version: 'v1alpha1',
      plural: 'ippools',
      name: 'default-v4',
      body: { ...obj, spec: { ...obj.spec, blockSize: 28 } },
    });
    expect(ok.spec.blockSize).toBe(28);
    const stale = await failure(
      s.custom.replaceClusterCustomObject({
        group: 'podnet.io',
        version: 'v1alpha1',
        plural: 'ippools',
        name: 'default-v4',
        body: { ...obj, spec: { ...obj.spec, blockSize: 27 } },
      }),
    );
    expect(stale.code).toBe(409);
    expect(stale.body).toMatchObject({
      reason: 'Conflict',
      details: { name: 'default-v4', group: 'podnet.io', kind: 'ippools' },
    });
  });

  it('serves a namespaced custom resource, lists it across namespaces and removes it with its CRD', async () => {
    await s.ext.createCustomResourceDefinition({ body: blockCrd });
    const g = { group: 'example.podnet.io', version: 'v1', plural: 'things' };
    await s.custom.createNamespacedCustomObject({
      ...g,
      namespace: 'default',
      body: {
        apiVersion: 'example.podnet.io/v1',
        kind: 'Thing',
        metadata: { name: 't1', labels: { k: 'v' } },
        spec: { any: { thing: 1 } },
      },
    });
    await s.custom.createNamespacedCustomObject({
      ...g,
      namespace: 'kube-system',
      body: { apiVersion: 'example.podnet.io/v1', kind: 'Thing', metadata: { name: 't2' }, spec: {} },
    });
    const one = await s.custom.getNamespacedCustomObject({ ...g, namespace: 'default', name: 't1' });
    expect(one.spec).toEqual({ any: { thing: 1 } });
    const all = await s.custom.listClusterCustomObject(g);
    expect(all.items.map((i: { metadata: { namespace: string } }) => i.metadata.namespace)).toEqual([
      'default',
      'kube-system',
    ]);
    const selected = await s.custom.listClusterCustomObject({ ...g, labelSelector: 'k=v' });
    expect(selected.items).toHaveLength(1);
    const notFound = await failure(
      s.custom.getNamespacedCustomObject({ ...g, namespace: 'default', name: 'nope' }),
    );
    expect(notFound.body).toMatchObject({
      reason: 'NotFound',
      message: 'things.example.podnet.io "nope" not found',
    });
    await s.ext.deleteCustomResourceDefinition({ name: 'things.example.podnet.io' });
    expect((await failure(s.custom.listClusterCustomObject(g))).code).toBe(404);
  });

  it('answers discovery well enough for client-node to resolve a custom kind', async () => {
    const core = await s.core.getAPIResources();
    expect(core.resources.map((r) => r.name)).toEqual(
      expect.arrayContaining(['pods', 'pods/status', 'nodes', 'namespaces', 'secrets']),
    );
    const groups = await s.kc.makeApiClient(ApisApi).getAPIVersions();
    expect(groups.groups.map((g) => g.name)).toEqual(
      expect.arrayContaining(['apiextensions.k8s.io', 'podnet.io']),
    );
    // KubernetesObjectApi finds the plural of a kind through /apis/<group>/<version>
    const objects = KubernetesObjectApi.makeApiClient(s.kc);
    const pool = await objects.read({
      apiVersion: 'podnet.io/v1alpha1',
      kind: 'IPPool',
      metadata: { name: 'default-v4' },
    });
    expect(pool.metadata?.name).toBe('default-v4');
    const version = await s.kc.makeApiClient(VersionApi).getCode();
    expect(version.major).toBe('1');
  });

  it("keeps a CRD's scope immutable", async () => {
    const crd = await s.ext.readCustomResourceDefinition({ name: 'ippools.podnet.io' });
    const r = await failure(
      s.ext.replaceCustomResourceDefinition({
        name: 'ippools.podnet.io',
        body: { ...crd, spec: { ...crd.spec, scope: 'Namespaced' } },
      }),
    );
    expect(r.code).toBe(422);
    expect(r.body).toMatchObject({ details: { causes: [{ field: 'spec.scope' }] } });
  });

  it('refuses a CRD in a group reserved for Kubernetes, so built-in types cannot be replaced', async () => {
    const r = await failure(
      s.ext.createCustomResourceDefinition({
        body: {
          metadata: { name: 'pods.core.k8s.io' },
          spec: { ...ippoolCrd.spec, group: 'core.k8s.io', names: { plural: 'pods', kind: 'Pod' } },
        },
      }),
    );
    expect(r.code).toBe(422);
    expect(r.body).toMatchObject({ details: { causes: [{ field: 'spec.group' }] } });
  });

  it('rejects a CRD whose name is not plural.group with 422', async () => {
    const r = await failure(
      s.ext.createCustomResourceDefinition({ body: { ...ippoolCrd, metadata: { name: 'wrong.podnet.io' } } }),
    );
    expect(r.code).toBe(422);
    expect(r.body).toMatchObject({ reason: 'Invalid', details: { causes: [{ field: 'metadata.name' }] } });
  });
});

describe('persistence and plain HTTP', () => {
  it('refuses to start on a corrupt data file, naming it', async () => {
    const dataFile = join(dir, 'corrupt.json');
    await writeFile(dataFile, '{"format": "podnet-apiserver/v1", "revision": 3, "objects": [');
    await expect(startApiServer({ dataFile, tls: false })).rejects.toThrow(`${dataFile}: not valid JSON`);
    await writeFile(dataFile, '{"something": "else"}');
    await expect(startApiServer({ dataFile, tls: false })).rejects.toThrow(
      `${dataFile}: not a podnet-apiserver data file`,
    );
  });

  it('keeps objects, the token and an increasing resourceVersion across a restart', async () => {
    const dataFile = join(dir, 'persist', 'data.json');
    const a = await start({ dataFile, tls: false });
    expect(a.server.url).toMatch(/^http:\/\//);
    const p = await a.core.createNamespacedPod({ namespace: 'default', body: pod('kept') });
    await a.ext.createCustomResourceDefinition({ body: ippoolCrd });
    await a.custom.createClusterCustomObject({
      group: 'podnet.io',
      version: 'v1alpha1',
      plural: 'ippools',
      body: {
        apiVersion: 'podnet.io/v1alpha1',
        kind: 'IPPool',
        metadata: { name: 'p' },
        spec: { cidr: '10.0.0.0/16' },
      },
    });
    await a.server.close();

    const b = await start({ dataFile, tls: false });
    try {
      expect(b.server.token).toBe(a.server.token);
      const again = await b.core.readNamespacedPod({ name: 'kept', namespace: 'default' });
      expect(again.metadata?.uid).toBe(p.metadata?.uid);
      const pool = await b.custom.getClusterCustomObject({
        group: 'podnet.io',
        version: 'v1alpha1',
        plural: 'ippools',
        name: 'p',
      });
      expect(pool.spec.blockSize).toBe(26);
      const next = await b.core.createNamespacedPod({ namespace: 'default', body: pod('new') });
      expect(Number(next.metadata?.resourceVersion)).toBeGreaterThan(Number(pool.metadata.resourceVersion));
      // history does not survive the restart: an older resourceVersion is Gone
      const w = await openWatch(b.kc, '/api/v1/namespaces/default/pods', {
        resourceVersion: p.metadata?.resourceVersion,
      });
      await until('the stream to end', () => w.isDone());
      expect(w.events[0]?.obj).toMatchObject({ code: 410, reason: 'Expired' });
    } finally {
      await b.server.close();
    }
  });
});
