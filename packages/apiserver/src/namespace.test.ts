// core/v1 Namespaces as kube-apiserver serves them to NetworkPolicy's namespaceSelector: the label
// kubernetes.io/metadata.name is always the namespace's name (set on create, generateName included,
// restored on every update and patch whatever the request says), and label selectors and watches see it.
import {
  CoreV1Api,
  KubeConfig,
  PatchStrategy,
  setHeaderOptions,
  type V1Namespace,
  Watch,
} from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mergePatch } from './__fixtures__/client.js';
import { type ApiServer, startApiServer } from './index.js';

let server: ApiServer;
let core: CoreV1Api;
let kc: KubeConfig;

beforeAll(async () => {
  server = await startApiServer({});
  kc = new KubeConfig();
  kc.loadFromString(server.kubeconfig);
  core = kc.makeApiClient(CoreV1Api);
});
afterAll(() => server.close());

const jsonPatch = setHeaderOptions('Content-Type', PatchStrategy.JsonPatch);
const NAME_LABEL = 'kubernetes.io/metadata.name';

describe('Namespace labels', () => {
  it('sets kubernetes.io/metadata.name to the generated name of a generateName namespace', async () => {
    const ns = await core.createNamespace({ body: { metadata: { generateName: 'gen-' } } });
    expect(ns.metadata?.name).toMatch(/^gen-[a-z0-9]{5}$/);
    expect(ns.metadata?.labels?.[NAME_LABEL]).toBe(ns.metadata?.name);
  });

  it('overrides a kubernetes.io/metadata.name the request sets on create', async () => {
    const ns = await core.createNamespace({
      body: { metadata: { name: 'lbl-a', labels: { [NAME_LABEL]: 'other' } } },
    });
    expect(ns.metadata?.labels).toEqual({ [NAME_LABEL]: 'lbl-a' });
  });

  it('keeps kubernetes.io/metadata.name whatever an update, merge patch or JSON patch asks', async () => {
    await core.createNamespace({ body: { metadata: { name: 'lbl-b', labels: { team: 'x' } } } });
    const got = await core.readNamespace({ name: 'lbl-b' });
    const replaced = await core.replaceNamespace({
      name: 'lbl-b',
      body: { ...got, metadata: { ...got.metadata, labels: { team: 'y' } } } as V1Namespace,
    });
    expect(replaced.metadata?.labels).toEqual({ team: 'y', [NAME_LABEL]: 'lbl-b' });
    const merged = await core.patchNamespace(
      { name: 'lbl-b', body: { metadata: { labels: { [NAME_LABEL]: null, team: 'z' } } } },
      mergePatch,
    );
    expect(merged.metadata?.labels).toEqual({ team: 'z', [NAME_LABEL]: 'lbl-b' });
    const patched = await core.patchNamespace(
      { name: 'lbl-b', body: [{ op: 'replace', path: '/metadata/labels', value: { env: 'prod' } }] },
      jsonPatch,
    );
    expect(patched.metadata?.labels).toEqual({ env: 'prod', [NAME_LABEL]: 'lbl-b' });
    expect((await core.readNamespace({ name: 'lbl-b' })).metadata?.labels?.[NAME_LABEL]).toBe('lbl-b');
  });

  it('rejects an invalid label value naming the field and the value', async () => {
    const err = await core
      .createNamespace({ body: { metadata: { name: 'lbl-c', labels: { team: 'not valid!' } } } })
      .then(
        () => undefined,
        (e: { code?: number; body?: string }) => e,
      );
    expect(err?.code).toBe(422);
    expect(String(err?.body)).toContain('metadata.labels');
    expect(String(err?.body)).toContain('not valid!');
  });

  it('selects by kubernetes.io/metadata.name and streams label changes to a label-selected watch', async () => {
    await core.createNamespace({ body: { metadata: { name: 'lbl-d' } } });
    const sel = await core.listNamespace({ labelSelector: `${NAME_LABEL} in (lbl-d,lbl-nope)` });
    expect(sel.items.map((n) => n.metadata?.name)).toEqual(['lbl-d']);
    const seen: { type: string; labels: Record<string, string> }[] = [];
    const req = await new Watch(kc).watch(
      '/api/v1/namespaces',
      { labelSelector: 'tier=web' },
      (type, obj: V1Namespace) => seen.push({ type, labels: obj.metadata?.labels ?? {} }),
      () => {},
    );
    try {
      await core.patchNamespace(
        { name: 'lbl-d', body: { metadata: { labels: { tier: 'web' } } } },
        mergePatch,
      );
      for (let i = 0; i < 200 && seen.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
      expect(seen[0]).toEqual({ type: 'ADDED', labels: { tier: 'web', [NAME_LABEL]: 'lbl-d' } });
    } finally {
      req.abort();
    }
  });
});
