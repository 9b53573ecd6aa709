// One zod schema per podnet resource (group podnet.io, version v1alpha1). These are the single
// source: the TypeScript types (z.infer), the validation of everything read from the API server,
// and the CRD OpenAPI schemas in deploy/crds (scripts/gen-crds.mjs) all derive from them.
//
// Structural checks (types, enums, ranges) live in the zod shape and so reach the CRDs; semantic
// checks (a CIDR parses, a block size fits its pool, ge <= le) are refinements whose messages
// name the field and the value.
import { formatIp, parseAddrPort, parseCidrResult } from '@podnet/net';
import { z } from 'zod';
import { cidrContains, familyBits, parseCidr, parseIp } from './net.js';
import { selectorProblem } from './selector.js';

export const GROUP = 'podnet.io';
export const VERSION = 'v1alpha1';
export const API_VERSION = `${GROUP}/${VERSION}`;

const AS_MAX = 4294967295;

// ---------------------------------------------------------------------------------------------
// Shared pieces

export const objectMetaSchema = z
  .object({
    name: z.string(),
    namespace: z.string().optional(),
    uid: z.string().optional(),
    resourceVersion: z.string().optional(),
    generation: z.number().optional(),
    creationTimestamp: z.string().optional(),
    deletionTimestamp: z.string().optional(),
    labels: z.record(z.string(), z.string()).optional(),
    annotations: z.record(z.string(), z.string()).optional(),
  })
  .loose();
export type ObjectMeta = z.infer<typeof objectMetaSchema>;

type Ctx = z.core.$RefinementCtx;

function issue(ctx: Ctx, path: (string | number)[], message: string) {
  ctx.addIssue({ code: 'custom', path, message });
}

function q(v: unknown): string {
  return JSON.stringify(v);
}

function checkCidr(ctx: Ctx, path: (string | number)[], value: string, strict = true) {
  const r = parseCidrResult(value, { hostBits: strict ? 'reject' : 'clear' });
  if (!r.ok)
    issue(
      ctx,
      path,
      strict
        ? `${q(value)} is not a valid network CIDR (address/prefix with host bits zero): ${r.reason}`
        : `${q(value)} is not a valid CIDR: ${r.reason}`,
    );
}

function checkSelector(ctx: Ctx, path: (string | number)[], value: string | undefined) {
  if (value === undefined) return;
  const p = selectorProblem(value);
  if (p) issue(ctx, path, p);
}

const asNumber = z.number().int().min(1).max(AS_MAX).describe('Autonomous System number (1-4294967295).');
const seconds = (what: string) => z.number().int().min(0).max(65535).describe(what);

const conditionSchema = z.object({
  type: z.string(),
  status: z.enum(['True', 'False', 'Unknown']),
  reason: z.string().optional(),
  message: z.string().optional(),
  lastTransitionTime: z.string().optional(),
});

export type StatusCondition = z.infer<typeof conditionSchema>;

const statusSchema = z
  .object({ conditions: z.array(conditionSchema).optional() })
  .describe('Observed state, written by podnet components.');

/** IPPool.status: the Ready and Exhausted conditions and the use of the pool's addresses (the elected writer). */
const ipPoolStatusSchema = z
  .object({
    conditions: z.array(conditionSchema).optional(),
    blocks: z.number().int().min(0).optional().describe('IPAM blocks claimed from this pool.'),
    addressesInUse: z.number().int().min(0).optional().describe('Addresses allocated in those blocks.'),
    addressesFree: z
      .string()
      .optional()
      .describe('Addresses of the pool not allocated, in decimal (a string: an IPv6 pool exceeds int64).'),
  })
  .describe('Observed state, written by the agent holding the podnet-status-writer Lease.');

const peerSessionSchema = z.object({
  node: z.string().describe('The node whose agent holds the session.'),
  state: z.enum(['Idle', 'Connect', 'Active', 'OpenSent', 'OpenConfirm', 'Established']),
  since: z.string().optional().describe('When the session entered its state (RFC 3339).'),
  lastError: z.string().optional(),
});

/** BGPPeer.status: per node that uses the peer, its session (from the NodeStatus objects), and conditions. */
const bgpPeerStatusSchema = z
  .object({
    conditions: z.array(conditionSchema).optional(),
    nodes: z.array(peerSessionSchema).optional().describe('One entry per node that peers with it.'),
    established: z.number().int().min(0).optional().describe('Nodes whose session is Established.'),
    sessions: z.number().int().min(0).optional().describe('Nodes that peer with it.'),
  })
  .describe('Observed state, written by the agent holding the podnet-status-writer Lease.');

// ---------------------------------------------------------------------------------------------
// IPPool (cluster-scoped)

export const ipPoolSpecSchema = z
  .object({
    cidr: z.string().describe('The pool, e.g. 10.244.0.0/16 or fd00:10:244::/48.'),
    blockSize: z
      .number()
      .int()
      .min(0)
      .max(128)
      .optional()
      .describe('Prefix length of the blocks handed to nodes. Default 26 (IPv4) or 122 (IPv6).'),
    natOutgoing: z
      .boolean()
      .default(false)
      .describe(
        "Masquerade this pool's pod traffic to the node's address when it leaves for a destination outside every IPPool and outside BGPConfiguration natOutgoingExclusions (IPv4, and NAT66 for IPv6 pools). Not applied to a disabled pool, nor together with isolated.",
      ),
    isolated: z
      .boolean()
      .default(false)
      .describe(
        'Pods of this pool exchange traffic only with the cluster (every IPPool, every node address, BGPConfiguration serviceClusterIPs); the node drops anything else in both directions. Invalid together with natOutgoing: the agents report it and treat the pool as isolated.',
      ),
    disabled: z
      .boolean()
      .default(false)
      .describe('No new allocations from this pool, and its traffic is no longer masqueraded (natOutgoing).'),
    nodeSelector: z
      .string()
      .default('all()')
      .describe('Label selector for the nodes that may use this pool.'),
    disableBGPExport: z.boolean().default(false).describe('Do not advertise this pool over BGP.'),
  })
  .superRefine((spec, ctx) => {
    const c = parseCidr(spec.cidr, { strict: true });
    if (!c) {
      checkCidr(ctx, ['cidr'], spec.cidr);
    } else if (spec.blockSize !== undefined) {
      const bits = familyBits(c.family);
      if (spec.blockSize < c.prefixLength || spec.blockSize > bits) {
        issue(
          ctx,
          ['blockSize'],
          `block size ${spec.blockSize} must be between the pool prefix /${c.prefixLength} and /${bits}`,
        );
      }
    }
    checkSelector(ctx, ['nodeSelector'], spec.nodeSelector);
  })
  .transform((spec) => {
    const c = parseCidr(spec.cidr);
    return { ...spec, blockSize: spec.blockSize ?? (c?.family === 6 ? 122 : 26) };
  });

export const ipPoolSchema = z.object({
  apiVersion: z.literal(API_VERSION).optional(),
  kind: z.literal('IPPool').optional(),
  metadata: objectMetaSchema,
  spec: ipPoolSpecSchema,
  status: ipPoolStatusSchema.optional(),
});
export type IPPool = z.infer<typeof ipPoolSchema>;
export type IPPoolInput = z.input<typeof ipPoolSchema>;

// ---------------------------------------------------------------------------------------------
// BGPConfiguration (cluster-scoped; `default`, or `node.<name>` for one node)

const cidrEntry = z.object({ cidr: z.string() });

const communityValue = z
  .string()
  .describe('A standard community "asn:value" (16-bit each) or a large community "a:b:c" (32-bit each).');

/** True when `v` is neither a standard community (asn:value) nor a large one (a:b:c). */
export function communityProblem(v: string): boolean {
  const parts = v.split(':');
  if (!parts.every((p) => /^\d{1,10}$/.test(p))) return true;
  const n = parts.map(Number);
  if (n.length === 2) return n.some((x) => x > 65535);
  if (n.length === 3) return n.some((x) => x > AS_MAX);
  return true;
}

// ---------------------------------------------------------------------------------------------
// BFD (RFC 5880/5881) towards BGP peers: the mesh-wide default in BGPConfiguration, per peer in BGPPeer

export const bfdSchema = z
  .object({
    enabled: z
      .boolean()
      .optional()
      .describe('Run BFD towards the peer; a BFD Down takes the BGP session down at once.'),
    minTx: z
      .number()
      .int()
      .min(10)
      .max(60000)
      .optional()
      .describe('Desired Min TX Interval, milliseconds (default 300).'),
    minRx: z
      .number()
      .int()
      .min(10)
      .max(60000)
      .optional()
      .describe('Required Min RX Interval, milliseconds (default 300).'),
    multiplier: z.number().int().min(1).max(255).optional().describe('Detect Mult (default 3).'),
    controlPlaneCheck: z
      .boolean()
      .optional()
      .describe(
        'RFC 5882 4.3: with graceful restart negotiated, a BFD Down from a peer whose BFD shares fate with its control plane (C bit clear) keeps its routes stale as in a restart; with the C bit set they go at once. Default false: a BFD Down always withdraws at once.',
      ),
  })
  .describe(
    'Bidirectional Forwarding Detection; unset fields come from BGPConfiguration bfd, then the defaults.',
  );
export type BfdSpec = z.infer<typeof bfdSchema>;

export const bgpConfigurationSpecSchema = z
  .object({
    asNumber: asNumber.default(64512),
    nodeToNodeMesh: z.boolean().default(true).describe('Peer every node with every other node.'),
    listenPort: z.number().int().min(1).max(65535).default(179),
    keepaliveTime: seconds('KEEPALIVE interval in seconds.').default(30),
    holdTime: seconds('Hold time in seconds (0, or at least 3).').default(90),
    gracefulRestart: z
      .object({
        enabled: z.boolean().default(true),
        restartTime: seconds('Restart time advertised to peers, seconds.').default(120),
      })
      .default({ enabled: true, restartTime: 120 }),
    communities: z
      .array(z.object({ cidr: z.string(), values: z.array(communityValue) }))
      .default([])
      .describe('Communities attached to routes inside each CIDR.'),
    bfd: bfdSchema
      .optional()
      .describe(
        'BFD for node-to-node sessions, and the default for every BGPPeer (enabled: false unless set).',
      ),
    serviceClusterIPs: z.array(cidrEntry).default([]),
    natOutgoingExclusions: z
      .array(cidrEntry)
      .default([])
      .describe(
        'Destination CIDRs that pod traffic of natOutgoing pools reaches untranslated (e.g. a corporate range that routes pods natively). The default object and node.<name> lists both apply.',
      ),
    serviceExternalIPs: z.array(cidrEntry).default([]),
    serviceLoadBalancerIPs: z.array(cidrEntry).default([]),
    serviceAdvertisement: z
      .enum(['Aggregate', 'PerService'])
      .optional()
      .describe(
        'How Services with externalTrafficPolicy Cluster are announced: Aggregate (default) announces the serviceClusterIPs/serviceExternalIPs/serviceLoadBalancerIPs ranges from every node; PerService announces each such Service address (/32, /128) inside those ranges from every node instead. Services with externalTrafficPolicy Local are announced per address, only from nodes with a ready local endpoint, in both modes.',
      ),
    logSeverity: z
      .enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal'])
      .optional()
      .describe(
        "The agents' log level, applied live (node.<name> over default); --log-level or PODNET_LOG_LEVEL on an agent wins. Unset: the agent's own configuration.",
      ),
  })
  .superRefine((spec, ctx) => {
    if (spec.holdTime !== 0 && spec.holdTime < 3)
      issue(ctx, ['holdTime'], `hold time ${spec.holdTime} must be 0 or at least 3 seconds (RFC 4271 4.2)`);
    if (spec.holdTime !== 0 && spec.keepaliveTime >= spec.holdTime)
      issue(
        ctx,
        ['keepaliveTime'],
        `keepalive time ${spec.keepaliveTime} must be less than the hold time ${spec.holdTime}`,
      );
    spec.communities.forEach((c, i) => {
      checkCidr(ctx, ['communities', i, 'cidr'], c.cidr);
      c.values.forEach((v, j) => {
        if (communityProblem(v))
          issue(ctx, ['communities', i, 'values', j], `${q(v)} is not a community (asn:value or a:b:c)`);
      });
    });
    for (const key of [
      'serviceClusterIPs',
      'serviceExternalIPs',
      'serviceLoadBalancerIPs',
      'natOutgoingExclusions',
    ] as const) {
      spec[key].forEach((e, i) => {
        checkCidr(ctx, [key, i, 'cidr'], e.cidr);
      });
    }
  });

export const bgpConfigurationSchema = z.object({
  apiVersion: z.literal(API_VERSION).optional(),
  kind: z.literal('BGPConfiguration').optional(),
  metadata: objectMetaSchema,
  spec: bgpConfigurationSpecSchema,
  status: statusSchema.optional(),
});
export type BGPConfiguration = z.infer<typeof bgpConfigurationSchema>;
export type BGPConfigurationInput = z.input<typeof bgpConfigurationSchema>;

// ---------------------------------------------------------------------------------------------
// BGPPeer (cluster-scoped)

export const prefixFilterSchema = z.object({
  cidr: z.string(),
  ge: z.number().int().min(0).max(128).optional().describe('Match prefixes at least this long.'),
  le: z.number().int().min(0).max(128).optional().describe('Match prefixes at most this long.'),
  action: z.enum(['Accept', 'Reject']),
});
export type PrefixFilter = z.infer<typeof prefixFilterSchema>;

/** Splits `ip`, `ip:port` or `[ipv6]:port` (@podnet/net's grammar); undefined when malformed. */
export function parsePeerAddress(s: string): { ip: string; port?: number } | undefined {
  const p = parseAddrPort(s, { port: 'optional' });
  if (!p) return undefined;
  return p.port === undefined ? { ip: formatIp(p.ip) } : { ip: formatIp(p.ip), port: p.port };
}

function checkFilters(ctx: Ctx, key: string, filters: PrefixFilter[]) {
  filters.forEach((f, i) => {
    const c = parseCidr(f.cidr, { strict: true });
    if (!c) {
      checkCidr(ctx, [key, i, 'cidr'], f.cidr);
      return;
    }
    const bits = familyBits(c.family);
    const ge = f.ge ?? c.prefixLength;
    const le = f.le ?? (f.ge !== undefined ? bits : c.prefixLength);
    if (f.ge !== undefined && (f.ge < c.prefixLength || f.ge > bits))
      issue(ctx, [key, i, 'ge'], `ge ${f.ge} must be between /${c.prefixLength} and /${bits} for ${f.cidr}`);
    if (f.le !== undefined && (f.le < c.prefixLength || f.le > bits))
      issue(ctx, [key, i, 'le'], `le ${f.le} must be between /${c.prefixLength} and /${bits} for ${f.cidr}`);
    if (ge > le) issue(ctx, [key, i, 'le'], `le ${le} must not be less than ge ${ge}`);
  });
}

export const bgpPeerSpecSchema = z
  .object({
    peerIP: z
      .string()
      .optional()
      .describe('Peer address, optionally with a port: 10.0.0.1, 10.0.0.1:1179, [fd00::1]:179.'),
    asNumber: asNumber.optional(),
    node: z
      .string()
      .optional()
      .describe('Only this node peers (default: every node selected by nodeSelector).'),
    nodeSelector: z.string().optional().describe('Label selector of the nodes that peer.'),
    peerSelector: z
      .string()
      .optional()
      .describe('Peer with the nodes this label selector matches, instead of peerIP/asNumber.'),
    password: z
      .object({
        secretKeyRef: z.object({ name: z.string(), key: z.string() }),
      })
      .optional()
      .describe('TCP MD5 password from a Secret in the podnet namespace.'),
    keepaliveTime: seconds('KEEPALIVE interval in seconds.').optional(),
    holdTime: seconds('Hold time in seconds (0, or at least 3).').optional(),
    maxRestartTime: seconds('How long to keep routes from this peer while it restarts, seconds.').optional(),
    gracefulRestartNotification: z
      .boolean()
      .optional()
      .describe(
        'RFC 8538: advertise the N bit in the graceful restart capability, so that a NOTIFICATION (a hold timer expiry, an error) keeps routes stale as in a restart when both sides set it. Default false. Needs graceful restart (BGPConfiguration).',
      ),
    longLivedGracefulRestart: z
      .object({
        staleTime: z
          .number()
          .int()
          .min(1)
          .max(16777215)
          .describe('Long-lived stale time advertised to the peer (RFC 9494), seconds (1..16777215).'),
        maxStaleTime: z
          .number()
          .int()
          .min(0)
          .max(16777215)
          .optional()
          .describe('Cap on the stale time the peer advertises, seconds (default: the peer value).'),
      })
      .optional()
      .describe(
        'Long-lived graceful restart (RFC 9494), off when absent: routes of a peer gone past its restart time are kept as LLGR_STALE (least preferred) for the stale time. Needs graceful restart (BGPConfiguration).',
      ),
    sourceAddress: z
      .string()
      .default('UseNodeIP')
      .describe('UseNodeIP, None, or an IP address to bind the session to.'),
    bfd: bfdSchema.optional(),
    routeReflectorClient: z.boolean().default(false),
    importFilters: z.array(prefixFilterSchema).default([]),
    exportFilters: z.array(prefixFilterSchema).default([]),
    maxPrefixes: z.number().int().min(1).optional().describe('Reset the session above this many prefixes.'),
  })
  .superRefine((spec, ctx) => {
    if (spec.peerSelector === undefined) {
      if (spec.peerIP === undefined) issue(ctx, ['peerIP'], 'peerIP is required unless peerSelector is set');
      if (spec.asNumber === undefined)
        issue(ctx, ['asNumber'], 'asNumber is required unless peerSelector is set');
    } else if (spec.peerIP !== undefined) {
      issue(ctx, ['peerIP'], 'peerIP and peerSelector are mutually exclusive');
    }
    if (spec.peerIP !== undefined && !parsePeerAddress(spec.peerIP))
      issue(ctx, ['peerIP'], `${q(spec.peerIP)} is not an IP address or ip:port`);
    if (spec.node !== undefined && spec.nodeSelector !== undefined)
      issue(ctx, ['nodeSelector'], 'node and nodeSelector are mutually exclusive');
    checkSelector(ctx, ['nodeSelector'], spec.nodeSelector);
    checkSelector(ctx, ['peerSelector'], spec.peerSelector);
    if (spec.holdTime !== undefined && spec.holdTime !== 0 && spec.holdTime < 3)
      issue(ctx, ['holdTime'], `hold time ${spec.holdTime} must be 0 or at least 3 seconds (RFC 4271 4.2)`);
    if (
      spec.holdTime !== undefined &&
      spec.keepaliveTime !== undefined &&
      spec.holdTime !== 0 &&
      spec.keepaliveTime >= spec.holdTime
    )
      issue(
        ctx,
        ['keepaliveTime'],
        `keepalive time ${spec.keepaliveTime} must be less than hold time ${spec.holdTime}`,
      );
    if (spec.sourceAddress !== 'UseNodeIP' && spec.sourceAddress !== 'None' && !parseIp(spec.sourceAddress))
      issue(ctx, ['sourceAddress'], `${q(spec.sourceAddress)} is not UseNodeIP, None or an IP address`);
    checkFilters(ctx, 'importFilters', spec.importFilters);
    checkFilters(ctx, 'exportFilters', spec.exportFilters);
  });

export const bgpPeerSchema = z.object({
  apiVersion: z.literal(API_VERSION).optional(),
  kind: z.literal('BGPPeer').optional(),
  metadata: objectMetaSchema,
  spec: bgpPeerSpecSchema,
  status: bgpPeerStatusSchema.optional(),
});
export type BGPPeer = z.infer<typeof bgpPeerSchema>;
export type BGPPeerInput = z.input<typeof bgpPeerSchema>;

// ---------------------------------------------------------------------------------------------
// IPAMBlock (cluster-scoped): one block of a pool and who holds each address in it.

export const allocationAttributeSchema = z.object({
  handleID: z.string(),
  secondary: z
    .record(z.string(), z.string())
    .optional()
    .describe('What the address is for: namespace, pod, node, containerID.'),
});
export type AllocationAttribute = z.infer<typeof allocationAttributeSchema>;

export const ipamBlockSpecSchema = z
  .object({
    cidr: z.string(),
    affinity: z
      .string()
      .nullable()
      .optional()
      .describe('"host:<node>" for the node this block is affine to; null when it is free.'),
    allocations: z
      .array(z.number().int().min(0).nullable())
      .describe('Per ordinal: index into attributes, or null when the address is free.'),
    unallocated: z
      .array(z.number().int().min(0))
      .describe('Free ordinals, in the order they are handed out.'),
    attributes: z.array(allocationAttributeSchema).default([]),
    strictAffinity: z.boolean().default(false),
    deleted: z.boolean().default(false).describe('Set just before the block is deleted; no allocations.'),
  })
  .superRefine((spec, ctx) => {
    const c = parseCidr(spec.cidr, { strict: true });
    if (!c) {
      checkCidr(ctx, ['cidr'], spec.cidr);
      return;
    }
    const hostBits = familyBits(c.family) - c.prefixLength;
    if (hostBits > 16) {
      issue(ctx, ['cidr'], `${q(spec.cidr)} is too large for a block (at most 65536 addresses)`);
      return;
    }
    const size = 2 ** hostBits;
    if (spec.allocations.length !== size)
      issue(ctx, ['allocations'], `has ${spec.allocations.length} entries, block ${spec.cidr} has ${size}`);
    spec.allocations.forEach((a, i) => {
      if (a !== null && a >= spec.attributes.length)
        issue(ctx, ['allocations', i], `attribute index ${a} is out of range (${spec.attributes.length})`);
    });
    spec.unallocated.forEach((o, i) => {
      if (o >= size) issue(ctx, ['unallocated', i], `ordinal ${o} is outside block ${spec.cidr}`);
    });
    if (spec.affinity != null && !spec.affinity.startsWith('host:'))
      issue(ctx, ['affinity'], `${q(spec.affinity)} must look like host:<node>`);
  });

export const ipamBlockSchema = z.object({
  apiVersion: z.literal(API_VERSION).optional(),
  kind: z.literal('IPAMBlock').optional(),
  metadata: objectMetaSchema,
  spec: ipamBlockSpecSchema,
});
export type IPAMBlock = z.infer<typeof ipamBlockSchema>;
export type IPAMBlockInput = z.input<typeof ipamBlockSchema>;

// ---------------------------------------------------------------------------------------------
// BlockAffinity (cluster-scoped): a node's claim on a block.

export const blockAffinityStates = ['pending', 'confirmed', 'pendingDeletion'] as const;
export type BlockAffinityState = (typeof blockAffinityStates)[number];

export const blockAffinitySpecSchema = z
  .object({
    node: z.string(),
    cidr: z.string(),
    state: z.enum(blockAffinityStates).default('pending'),
    // No `deleted`: Calico marks an affinity deleted before removing it because it could not make a
    // delete conditional; podnet deletes with a resourceVersion precondition. A stored `deleted`
    // (older podnet) is ignored on read and dropped on the next write.
  })
  .superRefine((spec, ctx) => {
    checkCidr(ctx, ['cidr'], spec.cidr);
    if (spec.node === '') issue(ctx, ['node'], 'node must not be empty');
  });

export const blockAffinitySchema = z.object({
  apiVersion: z.literal(API_VERSION).optional(),
  kind: z.literal('BlockAffinity').optional(),
  metadata: objectMetaSchema,
  spec: blockAffinitySpecSchema,
});
export type BlockAffinity = z.infer<typeof blockAffinitySchema>;
export type BlockAffinityInput = z.input<typeof blockAffinitySchema>;

// ---------------------------------------------------------------------------------------------
// IPAMHandle (cluster-scoped): what one allocation owner (`<network>.<containerID>`) holds.

export const ipamHandleSpecSchema = z
  .object({
    handleID: z.string().min(1),
    block: z
      .record(z.string(), z.number().int().min(0))
      .default({})
      .describe('Addresses held, per block CIDR.'),
    // No `deleted` (as on BlockAffinity): an empty handle is deleted with a resourceVersion precondition.
  })
  .superRefine((spec, ctx) => {
    for (const cidr of Object.keys(spec.block)) checkCidr(ctx, ['block', cidr], cidr);
  });

export const ipamHandleSchema = z.object({
  apiVersion: z.literal(API_VERSION).optional(),
  kind: z.literal('IPAMHandle').optional(),
  metadata: objectMetaSchema,
  spec: ipamHandleSpecSchema,
});
export type IPAMHandle = z.infer<typeof ipamHandleSchema>;
export type IPAMHandleInput = z.input<typeof ipamHandleSchema>;

// ---------------------------------------------------------------------------------------------
// Node annotations

export const NODE_ANNOTATIONS = {
  ipv4Address: 'podnet.io/ipv4-address',
  ipv6Address: 'podnet.io/ipv6-address',
  asNumber: 'podnet.io/as-number',
  routeReflectorClusterID: 'podnet.io/route-reflector-cluster-id',
} as const;

const interfaceCidr = (family: 4 | 6) =>
  z.string().superRefine((v, ctx) => {
    const c = parseCidr(v);
    if (!c || c.family !== family)
      ctx.addIssue({
        code: 'custom',
        message: `${q(v)} is not an IPv${family} address with a prefix length`,
      });
  });

/** Annotations the CNI plugin writes on a Pod: its address(es), comma-separated for the plural. */
export const POD_ANNOTATIONS = {
  podIP: 'podnet.io/podIP',
  podIPs: 'podnet.io/podIPs',
} as const;

/** The podnet annotations on a Node; other annotations pass through untouched. */
export const nodeAnnotationsSchema = z
  .object({
    [NODE_ANNOTATIONS.ipv4Address]: interfaceCidr(4).optional(),
    [NODE_ANNOTATIONS.ipv6Address]: interfaceCidr(6).optional(),
    [NODE_ANNOTATIONS.asNumber]: z
      .string()
      .optional()
      .superRefine((v, ctx) => {
        if (v === undefined) return;
        const n = Number(v);
        if (!/^\d+$/.test(v) || n < 1 || n > AS_MAX)
          ctx.addIssue({ code: 'custom', message: `${q(v)} is not an AS number (1-4294967295)` });
      }),
    [NODE_ANNOTATIONS.routeReflectorClusterID]: z
      .string()
      .optional()
      .superRefine((v, ctx) => {
        if (v !== undefined && parseIp(v)?.family !== 4)
          ctx.addIssue({ code: 'custom', message: `${q(v)} is not a cluster ID in IPv4 dotted form` });
      }),
  })
  .loose();

export interface NodeBgpInfo {
  ipv4?: { address: string; prefixLength: number };
  ipv6?: { address: string; prefixLength: number };
  asNumber?: number;
  routeReflectorClusterID?: string;
}

/** Reads a Node's podnet annotations; throws a SchemaError naming the bad annotation. */
export function parseNodeAnnotations(annotations: Record<string, string> | undefined): NodeBgpInfo {
  const a = nodeAnnotationsSchema.parse(annotations ?? {});
  const out: NodeBgpInfo = {};
  const split = (v: string) => {
    const [address, len] = v.split('/');
    return { address: address!, prefixLength: Number(len) };
  };
  const v4 = a[NODE_ANNOTATIONS.ipv4Address];
  const v6 = a[NODE_ANNOTATIONS.ipv6Address];
  const asn = a[NODE_ANNOTATIONS.asNumber];
  const rr = a[NODE_ANNOTATIONS.routeReflectorClusterID];
  if (typeof v4 === 'string') out.ipv4 = split(v4);
  if (typeof v6 === 'string') out.ipv6 = split(v6);
  if (typeof asn === 'string') out.asNumber = Number(asn);
  if (typeof rr === 'string') out.routeReflectorClusterID = rr;
  return out;
}

/** Whether a pool CIDR and a block CIDR agree (used by ipam and `ipam check`). */
export function blockInPool(poolCidr: string, blockCidr: string): boolean {
  const p = parseCidr(poolCidr);
  const b = parseCidr(blockCidr);
  return !!p && !!b && cidrContains(p, b);
}

// ---------------------------------------------------------------------------------------------
// NodeStatus (cluster-scoped, named after its node): what one node's agent reports about itself.
// Only status; written only by that node's agent (deploy/admission enforces it on Kubernetes >= 1.30).

const routeCountsSchema = z.object({
  desired: z.number().int().min(0),
  installed: z.number().int().min(0).describe('Acknowledged by the kernel and held by a later dump.'),
  failed: z.number().int().min(0).describe('Refused by the kernel, in conflict, or with no next hop.'),
  pending: z.number().int().min(0).describe('Waiting for their interface, or not dumped yet.'),
});

export const nodeSessionSchema = z.object({
  peer: z.string().describe('The peer address (address:port when not 179).'),
  type: z.string().describe('mesh, global, node, rr-client or route-reflector.'),
  source: z.string().describe('The BGPPeer, node-to-node-mesh or route-reflector.'),
  peerNode: z.string().optional().describe('The node at the other end (mesh and route reflectors).'),
  remoteAs: z.number().int().min(0),
  state: z.enum(['Idle', 'Connect', 'Active', 'OpenSent', 'OpenConfirm', 'Established']),
  since: z.string().describe('When the session entered its state (RFC 3339).'),
  prefixesAccepted: z
    .number()
    .int()
    .min(0)
    .describe('Prefixes held from the peer after the import policy (Adj-RIB-In).'),
  prefixesAdvertised: z.number().int().min(0).describe('Prefixes sent to the peer (Adj-RIB-Out).'),
  lastError: z.string().optional(),
});
export type NodeSession = z.infer<typeof nodeSessionSchema>;

export const nodeStatusStatusSchema = z
  .object({
    agentVersion: z.string(),
    address: z.string().optional().describe('The node address the agent peers from.'),
    asNumber: z.number().int().min(0).optional(),
    ready: z.boolean().describe("The agent's /readyz."),
    reasons: z.array(z.string()).default([]).describe('Why it is not ready (empty when ready).'),
    sessions: z.array(nodeSessionSchema).default([]),
    establishedSessions: z.number().int().min(0),
    totalSessions: z.number().int().min(0),
    routes: z
      .object({ ipv4: routeCountsSchema, ipv6: routeCountsSchema })
      .describe("podnet's routes in the node's kernel, by family."),
    ipam: z.object({
      blocks: z
        .array(z.object({ cidr: z.string(), inUse: z.number().int().min(0), free: z.number().int().min(0) }))
        .default([])
        .describe('IPAM blocks affine to the node.'),
      addressesInUse: z.number().int().min(0),
    }),
    lastResync: z
      .object({
        time: z.string().describe('When the agent last resynced its routes from a kernel dump (RFC 3339).'),
        durationSeconds: z.number().min(0),
      })
      .optional(),
    heartbeatSeconds: z
      .number()
      .int()
      .min(1)
      .describe('The agent rewrites this object at least this often; an older lastUpdate means it stopped.'),
    lastUpdate: z.string().describe('When the agent last wrote this object (RFC 3339).'),
  })
  .describe("Written only by the node's own agent, at a bounded rate.");
export type NodeStatusStatus = z.infer<typeof nodeStatusStatusSchema>;

export const nodeStatusSchema = z.object({
  apiVersion: z.literal(API_VERSION).optional(),
  kind: z.literal('NodeStatus').optional(),
  metadata: objectMetaSchema,
  status: nodeStatusStatusSchema.optional(),
});
export type NodeStatus = z.infer<typeof nodeStatusSchema>;
