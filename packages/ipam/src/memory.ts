// An in-memory datastore with the API server's semantics that matter to IPAM: validation through
// the zod schemas, monotonically increasing resourceVersion, ALREADY_EXISTS on create, CONFLICT on a
// stale replace or delete. For unit and property tests; the API suites use the real server.
import {
  BLOCKAFFINITY,
  IPAMBLOCK,
  IPAMHANDLE,
  IPPOOL,
  K8S_ERR,
  K8sError,
  matchesSelector,
  parseSelector,
  type ResourceDef,
  validate,
} from '@podnet/k8s';
import type { z } from 'zod';
import type { IpamDatastore, ObjectStore } from './datastore.js';

interface Obj {
  metadata: { name: string; resourceVersion?: string; labels?: Record<string, string> };
}

export class MemoryStore<S extends z.ZodType> implements ObjectStore<z.infer<S>, z.input<S>> {
  readonly objects = new Map<string, Obj>();
  writes = 0;
  constructor(
    private readonly def: ResourceDef<S>,
    private readonly rev: { n: number },
    /** Called before every operation: lets a test interleave concurrent operations. */
    private readonly yieldPoint: () => Promise<void>,
  ) {}

  private copy(o: Obj): z.infer<S> {
    return structuredClone(o) as z.infer<S>;
  }

  async get(name: string) {
    await this.yieldPoint();
    const o = this.objects.get(name);
    if (!o) throw new K8sError(K8S_ERR.NOT_FOUND, `${this.def.kind} ${name} not found`, 404);
    return this.copy(o);
  }

  async list(opts: { labelSelector?: string } = {}) {
    await this.yieldPoint();
    const sel = parseSelector(opts.labelSelector ?? '');
    const items = [...this.objects.values()].filter((o) => matchesSelector(sel, o.metadata.labels));
    return { items: items.map((o) => this.copy(o)), invalid: [] };
  }

  async create(input: z.input<S>) {
    await this.yieldPoint();
    const v = validate(this.def, input) as Obj;
    const name = v.metadata.name;
    this.writes++;
    if (this.objects.has(name))
      throw new K8sError(K8S_ERR.ALREADY_EXISTS, `${this.def.kind} ${name} exists`, 409);
    // Like the API server, stamp the creation time (seconds); a test may give its own to order objects.
    const creationTimestamp =
      (v.metadata as { creationTimestamp?: string }).creationTimestamp ??
      new Date().toISOString().replace(/\.\d+Z$/, 'Z');
    const stored = {
      ...v,
      metadata: { ...v.metadata, creationTimestamp, resourceVersion: String(++this.rev.n) },
    };
    this.objects.set(name, stored);
    return this.copy(stored);
  }

  async replace(input: z.input<S>) {
    await this.yieldPoint();
    const v = validate(this.def, input) as Obj;
    const name = v.metadata.name;
    this.writes++;
    const cur = this.objects.get(name);
    if (!cur) throw new K8sError(K8S_ERR.NOT_FOUND, `${this.def.kind} ${name} not found`, 404);
    if (v.metadata.resourceVersion && v.metadata.resourceVersion !== cur.metadata.resourceVersion)
      throw new K8sError(K8S_ERR.CONFLICT, `${this.def.kind} ${name} was modified`, 409);
    const stored = { ...v, metadata: { ...v.metadata, resourceVersion: String(++this.rev.n) } };
    this.objects.set(name, stored);
    return this.copy(stored);
  }

  async delete(name: string, opts: { resourceVersion?: string } = {}) {
    await this.yieldPoint();
    this.writes++;
    const cur = this.objects.get(name);
    if (!cur) throw new K8sError(K8S_ERR.NOT_FOUND, `${this.def.kind} ${name} not found`, 404);
    if (opts.resourceVersion && opts.resourceVersion !== cur.metadata.resourceVersion)
      throw new K8sError(K8S_ERR.CONFLICT, `${this.def.kind} ${name} was modified`, 409);
    this.objects.delete(name);
  }
}

export interface MemoryDatastore extends IpamDatastore {
  pools: MemoryStore<typeof IPPOOL.schema>;
  blocks: MemoryStore<typeof IPAMBLOCK.schema>;
  affinities: MemoryStore<typeof BLOCKAFFINITY.schema>;
  handles: MemoryStore<typeof IPAMHANDLE.schema>;
  nodes: Map<string, Record<string, string>>;
  pods: Set<string>;
  /** Addresses recorded on pods, by namespace/name (pods without an entry record none). */
  podIPs: Map<string, string[]>;
  /** The node of a pod, by namespace/name (a pod without an entry is listed for every node). */
  podNodes: Map<string, string>;
  /** Pod reads and lists GC made (to check it lists in bulk). */
  podReads: number;
}

export function memoryDatastore(yieldPoint: () => Promise<void> = async () => {}): MemoryDatastore {
  const rev = { n: 0 };
  const nodes = new Map<string, Record<string, string>>();
  const pods = new Set<string>();
  const podIPs = new Map<string, string[]>();
  const podNodes = new Map<string, string>();
  const ds: MemoryDatastore = {
    pools: new MemoryStore(IPPOOL, rev, yieldPoint),
    blocks: new MemoryStore(IPAMBLOCK, rev, yieldPoint),
    affinities: new MemoryStore(BLOCKAFFINITY, rev, yieldPoint),
    handles: new MemoryStore(IPAMHANDLE, rev, yieldPoint),
    nodes,
    pods,
    podIPs,
    podNodes,
    podReads: 0,
    async nodeLabels(node) {
      await yieldPoint();
      return nodes.get(node);
    },
    async podExists(namespace, name) {
      await yieldPoint();
      ds.podReads++;
      return pods.has(`${namespace}/${name}`);
    },
    async podAddresses(namespace, name) {
      await yieldPoint();
      ds.podReads++;
      const key = `${namespace}/${name}`;
      return pods.has(key) ? (podIPs.get(key) ?? []) : undefined;
    },
    async listPodAddresses(node) {
      await yieldPoint();
      ds.podReads++;
      const out = new Map<string, string[]>();
      for (const key of pods) {
        const on = podNodes.get(key);
        if (node === undefined || on === undefined || on === node) out.set(key, podIPs.get(key) ?? []);
      }
      return out;
    },
  };
  return ds;
}
