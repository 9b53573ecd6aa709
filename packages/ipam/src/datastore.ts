// The narrow view of the datastore that IPAM needs. KubeClient's resource clients satisfy it over
// HTTP; memory.ts is an in-process fake with the same compare-and-swap semantics for property tests.
import {
  BLOCKAFFINITY,
  type BlockAffinity,
  type BlockAffinityInput,
  IPAMBLOCK,
  type IPAMBlock,
  type IPAMBlockInput,
  IPAMHANDLE,
  type IPAMHandle,
  type IPAMHandleInput,
  IPPOOL,
  type IPPool,
  type IPPoolInput,
  K8S_ERR,
  type KubeClient,
  POD_ANNOTATIONS,
  type SchemaError,
} from '@podnet/k8s';

export interface ObjectStore<T, I> {
  get(name: string): Promise<T>;
  list(opts?: {
    labelSelector?: string;
  }): Promise<{ items: T[]; invalid: { name: string; error: SchemaError }[] }>;
  create(obj: I): Promise<T>;
  /** Compare-and-swap on metadata.resourceVersion: K8S_ERR_CONFLICT when stale. */
  replace(obj: I): Promise<T>;
  delete(name: string, opts?: { resourceVersion?: string }): Promise<void>;
}

export interface IpamDatastore {
  pools: ObjectStore<IPPool, IPPoolInput>;
  blocks: ObjectStore<IPAMBlock, IPAMBlockInput>;
  affinities: ObjectStore<BlockAffinity, BlockAffinityInput>;
  handles: ObjectStore<IPAMHandle, IPAMHandleInput>;
  /** The node's labels; undefined when there is no such Node object. */
  nodeLabels(node: string): Promise<Record<string, string> | undefined>;
  /** Whether a pod exists (GC of leaked addresses). */
  podExists(namespace: string, name: string): Promise<boolean>;
  /**
   * Optional, preferred by GC: the addresses recorded on the pod (annotations and status), [] when
   * it records none, undefined when there is no such pod. Lets GC see that a pod re-created under
   * the same name (a StatefulSet) no longer uses an old address.
   */
  podAddresses?(namespace: string, name: string): Promise<string[] | undefined>;
  /**
   * Optional, preferred by GC (one list per node instead of one read per pod): the pods on `node`
   * (every pod when node is undefined), keyed `namespace/name`, with the addresses each records.
   */
  listPodAddresses?(node?: string): Promise<Map<string, string[]>>;
}

type V1Pod = NonNullable<Awaited<ReturnType<KubeClient['findPod']>>>;

/** The addresses a pod records: podnet's annotations and its status. */
export function recordedAddresses(pod: V1Pod): string[] {
  const out = new Set<string>();
  const a = pod.metadata?.annotations ?? {};
  for (const ip of (a[POD_ANNOTATIONS.podIPs] ?? '').split(',')) if (ip.trim()) out.add(ip.trim());
  if (a[POD_ANNOTATIONS.podIP]) out.add(a[POD_ANNOTATIONS.podIP]!);
  for (const ip of pod.status?.podIPs ?? []) if (ip.ip) out.add(ip.ip);
  if (pod.status?.podIP) out.add(pod.status.podIP);
  return [...out];
}

/** The datastore over the Kubernetes API. */
export function kubeDatastore(client: KubeClient): IpamDatastore {
  return {
    pools: client.resource(IPPOOL),
    blocks: client.resource(IPAMBLOCK),
    affinities: client.resource(BLOCKAFFINITY),
    handles: client.resource(IPAMHANDLE),
    async nodeLabels(node) {
      try {
        const n = await client.getNode(node);
        return (n.metadata?.labels as Record<string, string> | undefined) ?? {};
      } catch (err) {
        if ((err as { code?: string }).code === K8S_ERR.NOT_FOUND) return undefined;
        throw err;
      }
    },
    async podExists(namespace, name) {
      return (await client.findPod(namespace, name)) !== undefined;
    },
    async podAddresses(namespace, name) {
      const pod = await client.findPod(namespace, name);
      return pod ? recordedAddresses(pod) : undefined;
    },
    async listPodAddresses(node) {
      const pods = await client.listPods(node ? { fieldSelector: `spec.nodeName=${node}` } : {});
      return new Map(
        pods.map((p) => [
          `${p.metadata?.namespace ?? 'default'}/${p.metadata?.name ?? ''}`,
          recordedAddresses(p),
        ]),
      );
    },
  };
}
