// LoadBalancer address allocation (docs/services.md): the pools addresses come from
// (LoadBalancerPool) and the allocation state, one object per address handed out
// (LoadBalancerAddress), created only if absent so that no address is ever given twice.
import { z } from 'zod';
import { formatIp, parseCidr, parseIp } from './net.js';
import { API_VERSION, objectMetaSchema } from './schemas.js';
import { selectorProblem } from './selector.js';

/** `spec.loadBalancerClass` podnet answers to, besides none. */
export const LB_CLASS = 'podnet.io/lb';

/** Annotations a Service carries for the allocator. */
export const LB_ANNOTATIONS = {
  /** Requested addresses, comma-separated (one per family); besides `spec.loadBalancerIP`. */
  addresses: 'podnet.io/loadBalancerIPs',
  /** Services with the same key may share an address when their ports do not clash. */
  sharingKey: 'podnet.io/allow-shared-ip',
} as const;

/** One entry of LoadBalancerPool.spec.addresses: a CIDR or an inclusive range `first-last`. */
export interface AddressRange {
  family: 4 | 6;
  first: bigint;
  last: bigint;
}

/** The range an entry stands for, or why it is not one (the message names the value). */
export function parseAddressRange(text: string): AddressRange | string {
  const dash = text.indexOf('-');
  if (dash < 0) {
    const c = parseCidr(text, { strict: true });
    if (!c) return `${JSON.stringify(text)} is neither a CIDR with host bits zero nor a range first-last`;
    const bits = c.family === 4 ? 32 : 128;
    return {
      family: c.family,
      first: c.network,
      last: c.network + (1n << BigInt(bits - c.prefixLength)) - 1n,
    };
  }
  const a = parseIp(text.slice(0, dash).trim());
  const b = parseIp(text.slice(dash + 1).trim());
  if (!a || !b) return `${JSON.stringify(text)} is not a range of two addresses first-last`;
  if (a.family !== b.family) return `${JSON.stringify(text)} mixes IPv4 and IPv6`;
  if (a.value > b.value) return `${JSON.stringify(text)}: the first address is after the last`;
  return { family: a.family, first: a.value, last: b.value };
}

const conditionSchema = z.object({
  type: z.string(),
  status: z.enum(['True', 'False', 'Unknown']),
  reason: z.string().optional(),
  message: z.string().optional(),
  lastTransitionTime: z.string().optional(),
});

export const loadBalancerPoolSpecSchema = z
  .object({
    addresses: z
      .array(z.string())
      .min(1)
      .describe('CIDRs (192.0.2.0/28, 2001:db8::/124) or ranges (192.0.2.10-192.0.2.20), IPv4 and IPv6.'),
    autoAssign: z
      .boolean()
      .default(true)
      .describe(
        'Hand out addresses from this pool to Services that request none; false: only requested ones.',
      ),
    avoidBuggyIPs: z
      .boolean()
      .default(false)
      .describe('Never hand out IPv4 addresses ending in .0 or .255 (some clients drop them).'),
    serviceSelector: z
      .string()
      .default('all()')
      .describe('Label selector for the Services this pool serves.'),
    namespaceSelector: z
      .string()
      .default('all()')
      .describe('Label selector for the namespaces whose Services this pool serves.'),
  })
  .superRefine((spec, ctx) => {
    spec.addresses.forEach((a, i) => {
      const r = parseAddressRange(a);
      if (typeof r === 'string') ctx.addIssue({ code: 'custom', path: ['addresses', i], message: r });
    });
    for (const f of ['serviceSelector', 'namespaceSelector'] as const) {
      const p = selectorProblem(spec[f]);
      if (p) ctx.addIssue({ code: 'custom', path: [f], message: p });
    }
  });

export const loadBalancerPoolSchema = z.object({
  apiVersion: z.literal(API_VERSION).optional(),
  kind: z.literal('LoadBalancerPool').optional(),
  metadata: objectMetaSchema,
  spec: loadBalancerPoolSpecSchema,
  status: z
    .object({
      conditions: z.array(conditionSchema).optional(),
      addressesInUse: z.number().int().min(0).optional().describe('Addresses of this pool handed out.'),
      addressesFree: z
        .string()
        .optional()
        .describe(
          'Addresses of this pool that can still be handed out, in decimal (IPv6 pools exceed int64).',
        ),
    })
    .optional()
    .describe('Observed state, written by the agent holding the podnet-status-writer Lease.'),
});
export type LoadBalancerPool = z.infer<typeof loadBalancerPoolSchema>;
export type LoadBalancerPoolInput = z.input<typeof loadBalancerPoolSchema>;

const holderSchema = z.object({
  namespace: z.string().min(1),
  name: z.string().min(1),
  uid: z.string().min(1),
  ports: z.array(z.string()).default([]).describe('The Service\'s ports as "PROTOCOL/port".'),
});
export type LoadBalancerAddressHolder = z.infer<typeof holderSchema>;

export const loadBalancerAddressSpecSchema = z
  .object({
    address: z.string().describe('The address handed out.'),
    pool: z.string().min(1).describe('The LoadBalancerPool it came from.'),
    sharingKey: z
      .string()
      .optional()
      .describe(`The ${LB_ANNOTATIONS.sharingKey} key of the Services sharing it.`),
    services: z
      .array(holderSchema)
      .default([])
      .describe('The Services holding it (several only when shared).'),
  })
  .superRefine((spec, ctx) => {
    if (!parseIp(spec.address))
      ctx.addIssue({
        code: 'custom',
        path: ['address'],
        message: `${JSON.stringify(spec.address)} is not an IP address`,
      });
  });

export const loadBalancerAddressSchema = z.object({
  apiVersion: z.literal(API_VERSION).optional(),
  kind: z.literal('LoadBalancerAddress').optional(),
  metadata: objectMetaSchema,
  spec: loadBalancerAddressSpecSchema,
});
export type LoadBalancerAddress = z.infer<typeof loadBalancerAddressSchema>;
export type LoadBalancerAddressInput = z.input<typeof loadBalancerAddressSchema>;

/** The LoadBalancerAddress object's name for an address: `192.0.2.7`, or `2001-0db8-…-0007` for IPv6. */
export function loadBalancerAddressName(address: string): string {
  const ip = parseIp(address);
  if (!ip) throw new Error(`${JSON.stringify(address)} is not an IP address`);
  if (ip.family === 4) return formatIp(ip.value, 4);
  return ip.value
    .toString(16)
    .padStart(32, '0')
    .replace(/(....)(?!$)/g, '$1-');
}
