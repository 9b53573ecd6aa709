// The registry of podnet's custom resources: where each lives in the API, its schema, and how the
// CRD presents it (short names, printer columns, status subresource).
import type { z } from 'zod';
import { K8S_ERR, K8sError, problemsOf, SchemaError } from './errors.js';
import { loadBalancerAddressSchema, loadBalancerPoolSchema } from './lb.js';
import {
  API_VERSION,
  bgpConfigurationSchema,
  bgpPeerSchema,
  blockAffinitySchema,
  GROUP,
  ipamBlockSchema,
  ipamHandleSchema,
  ipPoolSchema,
  nodeStatusSchema,
  VERSION,
} from './schemas.js';

export interface PrinterColumn {
  name: string;
  type: 'string' | 'integer' | 'boolean' | 'date' | 'number';
  jsonPath: string;
  description?: string;
  priority?: number;
}

// biome-ignore lint/suspicious/noExplicitAny: zod schemas with transforms have differing input types
export interface ResourceDef<S extends z.ZodType<any, any> = z.ZodType<any, any>> {
  group: string;
  version: string;
  kind: string;
  plural: string;
  singular: string;
  shortNames: string[];
  namespaced: boolean;
  schema: S;
  statusSubresource: boolean;
  printerColumns: PrinterColumn[];
  description: string;
}

const AGE: PrinterColumn = { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' };

function def<S extends z.ZodType>(d: Omit<ResourceDef<S>, 'group' | 'version'>): ResourceDef<S> {
  return { group: GROUP, version: VERSION, ...d };
}

export const IPPOOL = def({
  kind: 'IPPool',
  plural: 'ippools',
  singular: 'ippool',
  shortNames: ['ipp'],
  namespaced: false,
  schema: ipPoolSchema,
  statusSubresource: true,
  description: 'A range of pod addresses, handed to nodes in blocks.',
  printerColumns: [
    { name: 'CIDR', type: 'string', jsonPath: '.spec.cidr' },
    { name: 'Block', type: 'integer', jsonPath: '.spec.blockSize' },
    { name: 'NAT', type: 'boolean', jsonPath: '.spec.natOutgoing' },
    { name: 'Disabled', type: 'boolean', jsonPath: '.spec.disabled' },
    { name: 'Blocks', type: 'integer', jsonPath: '.status.blocks' },
    { name: 'InUse', type: 'integer', jsonPath: '.status.addressesInUse' },
    { name: 'Free', type: 'string', jsonPath: '.status.addressesFree' },
    { name: 'Selector', type: 'string', jsonPath: '.spec.nodeSelector', priority: 1 },
    AGE,
  ],
});

export const BGPCONFIGURATION = def({
  kind: 'BGPConfiguration',
  plural: 'bgpconfigurations',
  singular: 'bgpconfiguration',
  shortNames: ['bgpconfig'],
  namespaced: false,
  schema: bgpConfigurationSchema,
  statusSubresource: true,
  description: 'BGP settings: "default" for the cluster, "node.<name>" for one node.',
  printerColumns: [
    { name: 'AS', type: 'integer', jsonPath: '.spec.asNumber' },
    { name: 'Mesh', type: 'boolean', jsonPath: '.spec.nodeToNodeMesh' },
    { name: 'Port', type: 'integer', jsonPath: '.spec.listenPort' },
    AGE,
  ],
});

export const BGPPEER = def({
  kind: 'BGPPeer',
  plural: 'bgppeers',
  singular: 'bgppeer',
  shortNames: ['bgpp'],
  namespaced: false,
  schema: bgpPeerSchema,
  statusSubresource: true,
  description: 'A BGP peer of some or all nodes (a ToR router, a route reflector, other nodes).',
  printerColumns: [
    { name: 'Peer', type: 'string', jsonPath: '.spec.peerIP' },
    { name: 'AS', type: 'integer', jsonPath: '.spec.asNumber' },
    { name: 'Node', type: 'string', jsonPath: '.spec.node' },
    { name: 'Established', type: 'integer', jsonPath: '.status.established' },
    { name: 'Sessions', type: 'integer', jsonPath: '.status.sessions' },
    { name: 'NodeSelector', type: 'string', jsonPath: '.spec.nodeSelector', priority: 1 },
    AGE,
  ],
});

export const IPAMBLOCK = def({
  kind: 'IPAMBlock',
  plural: 'ipamblocks',
  singular: 'ipamblock',
  shortNames: [],
  namespaced: false,
  schema: ipamBlockSchema,
  statusSubresource: false,
  description: 'One block of an IPPool and the owner of each address in it (IPAM state).',
  printerColumns: [
    { name: 'CIDR', type: 'string', jsonPath: '.spec.cidr' },
    { name: 'Affinity', type: 'string', jsonPath: '.spec.affinity' },
    AGE,
  ],
});

export const BLOCKAFFINITY = def({
  kind: 'BlockAffinity',
  plural: 'blockaffinities',
  singular: 'blockaffinity',
  shortNames: [],
  namespaced: false,
  schema: blockAffinitySchema,
  statusSubresource: false,
  description: "A node's claim on an IPAM block (IPAM state).",
  printerColumns: [
    { name: 'Node', type: 'string', jsonPath: '.spec.node' },
    { name: 'CIDR', type: 'string', jsonPath: '.spec.cidr' },
    { name: 'State', type: 'string', jsonPath: '.spec.state' },
    AGE,
  ],
});

export const IPAMHANDLE = def({
  kind: 'IPAMHandle',
  plural: 'ipamhandles',
  singular: 'ipamhandle',
  shortNames: [],
  namespaced: false,
  schema: ipamHandleSchema,
  statusSubresource: false,
  description: 'What one owner (<network>.<containerID>) holds, per block (IPAM state).',
  printerColumns: [{ name: 'Handle', type: 'string', jsonPath: '.spec.handleID' }, AGE],
});

export const NODESTATUS = def({
  kind: 'NodeStatus',
  plural: 'nodestatuses',
  singular: 'nodestatus',
  shortNames: ['pns'],
  namespaced: false,
  schema: nodeStatusSchema,
  statusSubresource: true,
  description: "One node's podnet agent as it sees itself (named after the node, written only by its agent).",
  printerColumns: [
    { name: 'Ready', type: 'boolean', jsonPath: '.status.ready' },
    { name: 'Established', type: 'integer', jsonPath: '.status.establishedSessions' },
    { name: 'Sessions', type: 'integer', jsonPath: '.status.totalSessions' },
    { name: 'Routes4', type: 'integer', jsonPath: '.status.routes.ipv4.installed' },
    { name: 'Routes6', type: 'integer', jsonPath: '.status.routes.ipv6.installed' },
    { name: 'Addresses', type: 'integer', jsonPath: '.status.ipam.addressesInUse' },
    { name: 'Version', type: 'string', jsonPath: '.status.agentVersion' },
    { name: 'Updated', type: 'date', jsonPath: '.status.lastUpdate' },
    { name: 'Reasons', type: 'string', jsonPath: '.status.reasons', priority: 1 },
  ],
});

export const LOADBALANCERPOOL = def({
  kind: 'LoadBalancerPool',
  plural: 'loadbalancerpools',
  singular: 'loadbalancerpool',
  shortNames: ['lbpool'],
  namespaced: false,
  schema: loadBalancerPoolSchema,
  statusSubresource: true,
  description: 'Addresses for Services of type LoadBalancer (docs/services.md).',
  printerColumns: [
    { name: 'Addresses', type: 'string', jsonPath: '.spec.addresses' },
    { name: 'Auto', type: 'boolean', jsonPath: '.spec.autoAssign' },
    { name: 'InUse', type: 'integer', jsonPath: '.status.addressesInUse' },
    { name: 'Free', type: 'string', jsonPath: '.status.addressesFree' },
    { name: 'Services', type: 'string', jsonPath: '.spec.serviceSelector', priority: 1 },
    AGE,
  ],
});

export const LOADBALANCERADDRESS = def({
  kind: 'LoadBalancerAddress',
  plural: 'loadbalanceraddresses',
  singular: 'loadbalanceraddress',
  shortNames: ['lbaddr'],
  namespaced: false,
  schema: loadBalancerAddressSchema,
  statusSubresource: false,
  description: 'One LoadBalancer address handed out and the Services holding it (allocation state).',
  printerColumns: [
    { name: 'Address', type: 'string', jsonPath: '.spec.address' },
    { name: 'Pool', type: 'string', jsonPath: '.spec.pool' },
    { name: 'Sharing', type: 'string', jsonPath: '.spec.sharingKey' },
    AGE,
  ],
});

export const RESOURCES = [
  IPPOOL,
  BGPCONFIGURATION,
  BGPPEER,
  IPAMBLOCK,
  BLOCKAFFINITY,
  IPAMHANDLE,
  NODESTATUS,
  LOADBALANCERPOOL,
  LOADBALANCERADDRESS,
] as const;

/**
 * Validates an object against its resource schema and applies the defaults. Throws a SchemaError
 * naming every failing field and its value.
 */
export function validate<S extends z.ZodType>(resource: ResourceDef<S>, obj: unknown): z.infer<S> {
  const r = resource.schema.safeParse(obj);
  if (r.success) return { apiVersion: API_VERSION, kind: resource.kind, ...(r.data as object) } as z.infer<S>;
  const name = (obj as { metadata?: { name?: unknown } } | null)?.metadata?.name;
  throw new SchemaError(resource.kind, typeof name === 'string' ? name : undefined, problemsOf(r.error, obj));
}

/** Like validate, but returns the error instead of throwing. */
export function safeValidate<S extends z.ZodType>(
  resource: ResourceDef<S>,
  obj: unknown,
): { ok: true; value: z.infer<S> } | { ok: false; error: SchemaError } {
  try {
    return { ok: true, value: validate(resource, obj) };
  } catch (err) {
    if (err instanceof SchemaError) return { ok: false, error: err };
    throw new K8sError(K8S_ERR.SCHEMA, String(err), undefined, { cause: err });
  }
}
