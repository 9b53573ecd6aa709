// A rehearsal of ADD and DEL, in memory, run while the startup snapshot is built (snapshot.ts).
// V8 compiles a function the first time it runs and keeps that bytecode in the snapshot, so code
// the rehearsal ran is not compiled again in every plugin process: measured on one IPAMBlock, its
// first parse in a process fell from ~6 ms to ~1 ms. The rehearsal goes through the code an ADD
// runs — config and environment parsing, IPAM over the HTTP object store (zod on every object in
// and out), the pod annotation, the attachment plan, the result, the rtnetlink codec — against a
// fake API server and without sockets. It leaves nothing behind: every object lives in this
// function's own fake.
import {
  decodeDatagram,
  encodeAddr,
  encodeLinkGet,
  encodeLinkSet,
  encodeRoute,
  encodeVeth,
  Writer,
} from '@podnet/rtnetlink';
import { parseConfig } from './config.js';
import { parseEnv } from './env.js';
import { KubeHttpError, type MiniKube } from './kube.js';
import { KubeDatastore } from './kube-datastore.js';
import { planAttachment, planLink, planResult } from './plan.js';
import type { Log } from './plugin.js';
import { convertResult } from './result.js';

const quiet: Log = { debug() {}, info() {}, warn() {}, error() {}, child: () => quiet };

/** Just enough of an API server for IPAM: objects by path, resourceVersion checks, label selectors. */
class RehearsalApi {
  readonly stats = { requests: 0, ms: 0, calls: [] as string[] };
  readonly objects = new Map<string, Record<string, unknown>>();
  private rv = 1;

  constructor(node: string) {
    this.objects.set(`/api/v1/nodes/${node}`, { metadata: { name: node, labels: {} } });
    this.put('/apis/podnet.io/v1alpha1/ippools', {
      apiVersion: 'podnet.io/v1alpha1',
      kind: 'IPPool',
      metadata: { name: 'rehearsal' },
      spec: { cidr: '10.255.0.0/24', blockSize: 28 },
    });
  }

  private put(collection: string, obj: Record<string, unknown>): Record<string, unknown> {
    const meta = obj.metadata as { name: string };
    const stored = {
      ...obj,
      metadata: { ...meta, resourceVersion: String(++this.rv), uid: `uid-${this.rv}`, generation: 1 },
    };
    this.objects.set(`${collection}/${meta.name}`, stored);
    return structuredClone(stored);
  }

  async request<T>(method: string, path: string, body?: unknown): Promise<T> {
    this.stats.requests += 1;
    const [pathname = '', query = ''] = path.split('?');
    const selector = new URLSearchParams(query).get('labelSelector');
    const obj = (body ?? {}) as Record<string, unknown>;
    const existing = this.objects.get(pathname);
    switch (method) {
      case 'GET': {
        if (existing) return structuredClone(existing) as T;
        const items = [...this.objects.entries()]
          .filter(([p]) => p.startsWith(`${pathname}/`) && !p.slice(pathname.length + 1).includes('/'))
          .map(([, o]) => o)
          .filter((o) => {
            if (!selector) return true;
            const [k, v] = selector.split('=');
            return (o.metadata as { labels?: Record<string, string> }).labels?.[k ?? ''] === v;
          });
        if (pathname.split('/').length % 2 === 1 || items.length > 0)
          return { items: structuredClone(items) } as T;
        throw new KubeHttpError(404, 'NotFound', `${path} not found`);
      }
      case 'POST': {
        const name = (obj.metadata as { name: string }).name;
        if (this.objects.has(`${pathname}/${name}`))
          throw new KubeHttpError(409, 'AlreadyExists', `${name} exists`);
        return this.put(pathname, obj) as T;
      }
      case 'PUT': {
        const rv = (obj.metadata as { resourceVersion?: string }).resourceVersion;
        if (!existing) throw new KubeHttpError(404, 'NotFound', `${path} not found`);
        if (rv !== (existing.metadata as { resourceVersion: string }).resourceVersion)
          throw new KubeHttpError(409, 'Conflict', `${path} was modified`);
        return this.put(pathname.slice(0, pathname.lastIndexOf('/')), obj) as T;
      }
      case 'PATCH':
        return {} as T;
      case 'DELETE':
        if (!existing) throw new KubeHttpError(404, 'NotFound', `${path} not found`);
        this.objects.delete(pathname);
        return {} as T;
      default:
        throw new KubeHttpError(405, 'MethodNotAllowed', method);
    }
  }

  close(): void {}
}

/** Runs the rehearsal; returns what it did (for its test). */
export async function rehearse(): Promise<{ allocated: string[]; requests: number; left: number }> {
  const node = 'rehearsal-node';
  const api = new RehearsalApi(node);
  const ds = new KubeDatastore(api as unknown as MiniKube, quiet);
  const allocated: string[] = [];
  for (let i = 0; i < 3; i++) {
    const containerId = `rehearsal${i}`;
    const stdin = JSON.stringify({
      cniVersion: '1.0.0',
      name: 'podnet',
      type: 'podnet',
      kubeconfig: '/nonexistent/kubeconfig',
      nodeName: node,
      mtu: 1500,
      ipam: { assign_ipv4: true },
    });
    const env = {
      CNI_COMMAND: 'ADD',
      CNI_CONTAINERID: containerId,
      CNI_NETNS: `/var/run/netns/${containerId}`,
      CNI_IFNAME: 'eth0',
      CNI_ARGS: `IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=pod-${i}`,
    };
    const req = parseEnv(env);
    const cfg = parseConfig(stdin, env);
    if (req.type !== 'ADD') throw new Error('rehearsal: not an ADD');
    const alloc = await ds.allocate({
      handle: `podnet.${containerId}.eth0`,
      node,
      ipv4: true,
      ipv6: false,
      ipv4Pools: [],
      ipv6Pools: [],
      attrs: { node, containerID: containerId, ifname: 'eth0', namespace: 'default', pod: `pod-${i}` },
    });
    if (!alloc.ipv4) throw new Error('rehearsal: no address');
    allocated.push(alloc.ipv4);
    await ds.annotatePod({ namespace: 'default', name: `pod-${i}` }, [alloc.ipv4]);
    const input = {
      netns: req.netns,
      hostIf: `pn0rehearsal${i}`,
      podIf: 'eth0',
      mtu: 1500,
      arpMode: cfg.arpMode,
    };
    planLink({ ...input, ipv6: false });
    const plan = planAttachment({ ...input, ipv4: alloc.ipv4 });
    JSON.stringify(convertResult(planResult(plan, '02:00:00:00:00:01', cfg.cniVersion), cfg.cniVersion));
    rehearseNetlink(plan.hostRoutes[0] ?? '10.255.0.1/32');
  }
  for (let i = 0; i < 3; i++) await ds.releaseByHandle(`podnet.rehearsal${i}.eth0`);
  const left = [...api.objects.keys()].filter((p) => p.includes('/ipamhandles/')).length;
  return { allocated, requests: api.stats.requests, left };
}

/** Encodes the requests an ADD sends and decodes them back, without a socket. */
function rehearseNetlink(dst: string): void {
  const w = new Writer();
  encodeVeth(w, { name: 'pn0rehearsal', peerName: 'eth0', mtu: 1500, mac: 'ee:ee:ee:ee:ee:ee' }, 1);
  encodeLinkGet(w, { name: 'pn0rehearsal' }, 2);
  encodeLinkSet(w, 7, { up: true }, 3);
  encodeAddr(w, 'add', { index: 7, address: dst, replace: true }, 4);
  encodeRoute(w, 'replace', { dst, oif: 7, scope: 253 }, 5, true);
  decodeDatagram(Buffer.from(w.view()));
}
