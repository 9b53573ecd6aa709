// The inputs of the translation: NetworkPolicies as networking.k8s.io/v1 defines them, and the few
// fields of pods and namespaces the translation reads (not whole objects: an agent keeps these for
// every pod of the cluster). zod schemas are the single source of the types.
import { z } from 'zod';

export const PROTOCOLS = ['TCP', 'UDP', 'SCTP'] as const;
export type Protocol = (typeof PROTOCOLS)[number];
export const OPERATORS = ['In', 'NotIn', 'Exists', 'DoesNotExist'] as const;

export const LabelSelectorSchema = z.object({
  matchLabels: z.record(z.string(), z.string()).nullish(),
  matchExpressions: z
    .array(
      z.object({
        key: z.string(),
        operator: z.enum(OPERATORS),
        values: z.array(z.string()).nullish(),
      }),
    )
    .nullish(),
});
export type LabelSelector = z.infer<typeof LabelSelectorSchema>;

export const PeerSchema = z.object({
  podSelector: LabelSelectorSchema.nullish(),
  namespaceSelector: LabelSelectorSchema.nullish(),
  ipBlock: z.object({ cidr: z.string(), except: z.array(z.string()).nullish() }).nullish(),
});
export type Peer = z.infer<typeof PeerSchema>;

export const PortSchema = z.object({
  protocol: z.enum(PROTOCOLS).nullish(),
  port: z.union([z.number().int(), z.string()]).nullish(),
  endPort: z.number().int().nullish(),
});
export type PolicyPort = z.infer<typeof PortSchema>;

const IngressRuleSchema = z.object({
  from: z.array(PeerSchema).nullish(),
  ports: z.array(PortSchema).nullish(),
});
const EgressRuleSchema = z.object({
  to: z.array(PeerSchema).nullish(),
  ports: z.array(PortSchema).nullish(),
});

export const NetworkPolicySchema = z.object({
  metadata: z.object({ namespace: z.string().min(1), name: z.string().min(1) }),
  spec: z.object({
    /** Absent and `{}` both select every pod of the namespace. */
    podSelector: LabelSelectorSchema.nullish(),
    policyTypes: z.array(z.enum(['Ingress', 'Egress'])).nullish(),
    ingress: z.array(IngressRuleSchema).nullish(),
    egress: z.array(EgressRuleSchema).nullish(),
  }),
});
export type NetworkPolicy = z.infer<typeof NetworkPolicySchema>;

export const PodSchema = z.object({
  namespace: z.string().min(1),
  name: z.string().min(1),
  labels: z.record(z.string(), z.string()).default({}),
  /** Every address of the pod (status.podIPs): IPv4, IPv6 or both. */
  ips: z.array(z.string()).default([]),
  /** spec.nodeName. */
  node: z.string().optional(),
  /** The containers' ports: what a named port in a policy resolves to on this pod. */
  ports: z
    .array(
      z.object({
        name: z.string().optional(),
        containerPort: z.number().int(),
        protocol: z.enum(PROTOCOLS).default('TCP'),
      }),
    )
    .default([]),
});
export type Pod = z.infer<typeof PodSchema>;
export type PodInput = z.input<typeof PodSchema>;

export const NamespaceSchema = z.object({
  name: z.string().min(1),
  labels: z.record(z.string(), z.string()).default({}),
});
export type Namespace = z.infer<typeof NamespaceSchema>;
export type NamespaceInput = z.input<typeof NamespaceSchema>;

/** What one node's translation reads. */
export interface PolicyInput {
  /** The node whose local pods are enforced. */
  node: string;
  /** This node's own addresses: traffic from them to a local pod is always allowed. */
  nodeAddresses: string[];
  /** NetworkPolicy objects as read from the API (each parsed and checked; bad ones are skipped). */
  policies: unknown[];
  pods: PodInput[];
  namespaces: NamespaceInput[];
}

/** A core/v1 Pod reduced to the fields the translation reads (what an agent keeps per pod). */
export function podFromObject(o: {
  metadata?: { namespace?: string; name?: string; labels?: Record<string, string> };
  spec?: {
    nodeName?: string;
    containers?: { ports?: { name?: string; containerPort?: number; protocol?: string }[] }[];
  };
  status?: { podIP?: string; podIPs?: { ip?: string }[] };
}): PodInput {
  const ips = (o.status?.podIPs ?? []).map((p) => p.ip).filter((ip): ip is string => !!ip);
  if (ips.length === 0 && o.status?.podIP) ips.push(o.status.podIP);
  // A port without a number or with another protocol cannot be what a policy's port names.
  const ports = (o.spec?.containers ?? []).flatMap((c) =>
    (c.ports ?? []).flatMap((p) => {
      const protocol = (p.protocol ?? 'TCP') as Protocol;
      if (typeof p.containerPort !== 'number' || !PROTOCOLS.includes(protocol)) return [];
      return [{ name: p.name, containerPort: p.containerPort, protocol }];
    }),
  );
  return {
    namespace: o.metadata?.namespace ?? '',
    name: o.metadata?.name ?? '',
    labels: o.metadata?.labels ?? {},
    ips,
    node: o.spec?.nodeName,
    ports,
  };
}
