// Node address autodetection: a pure function over the node's interfaces and addresses, plus an
// injected `can-reach` resolver (the source address the kernel would pick towards a destination).
import { AgentError } from './errors.js';
import { cidrContains, isIPv4, parseCidr } from './ip.js';

export type AutodetectionMethod =
  | { type: 'first-found' }
  | { type: 'interface'; regex: RegExp }
  | { type: 'skip-interface'; regex: RegExp }
  | { type: 'can-reach'; destination: string }
  | { type: 'cidr'; cidrs: string[] };

export interface InterfaceAddress {
  /** Address with its prefix length, e.g. 10.0.0.11/24. */
  cidr: string;
  family: 4 | 6;
  scope?: 'global' | 'link' | 'host' | string;
}

export interface NodeInterface {
  name: string;
  up: boolean;
  addresses: InterfaceAddress[];
}

/** Interfaces never used for the node address: loopback, pod veths, bridges of container runtimes. */
export const EXCLUDED_INTERFACES =
  /^(lo|pn[0-9a-f]+|docker\d*|cni\d*|cali.*|veth.*|virbr.*|kube-ipvs\d*|cilium.*|flannel.*|vxlan.*|tunl\d*)$/;

/** Parses `first-found`, `interface=eth.*`, `skip-interface=REGEX`, `can-reach=IP`, `cidr=CIDR[,CIDR]`. */
export function parseAutodetectionMethod(text: string): AutodetectionMethod {
  const t = text.trim();
  if (t === 'first-found' || t === '') return { type: 'first-found' };
  const eq = t.indexOf('=');
  const kind = eq < 0 ? t : t.slice(0, eq);
  const arg = eq < 0 ? '' : t.slice(eq + 1).trim();
  const regex = (what: string) => {
    if (!arg)
      throw new AgentError('AGENT_ERR_AUTODETECT', `${what}= needs a regular expression, e.g. ${what}=eth.*`);
    try {
      return new RegExp(`^(?:${arg})$`);
    } catch (err) {
      throw new AgentError(
        'AGENT_ERR_AUTODETECT',
        `${what}=${arg}: not a valid regular expression (${(err as Error).message})`,
      );
    }
  };
  switch (kind) {
    case 'interface':
      return { type: 'interface', regex: regex('interface') };
    case 'skip-interface':
      return { type: 'skip-interface', regex: regex('skip-interface') };
    case 'can-reach':
      if (!isIPv4(arg))
        throw new AgentError(
          'AGENT_ERR_AUTODETECT',
          `can-reach=${arg}: expected an IPv4 address, e.g. can-reach=10.0.0.1`,
        );
      return { type: 'can-reach', destination: arg };
    case 'cidr': {
      const cidrs = arg.split(',').map((c) => c.trim());
      for (const c of cidrs) {
        if (!parseCidr(c) || !c.includes('/'))
          throw new AgentError(
            'AGENT_ERR_AUTODETECT',
            `cidr=${arg}: ${JSON.stringify(c)} is not a CIDR, e.g. cidr=10.0.0.0/24`,
          );
      }
      return { type: 'cidr', cidrs };
    }
    default:
      throw new AgentError(
        'AGENT_ERR_AUTODETECT',
        `unknown IP autodetection method ${JSON.stringify(text)}; use first-found, interface=REGEX, skip-interface=REGEX, can-reach=IP or cidr=CIDR`,
      );
  }
}

function candidates(ifaces: NodeInterface[], pick: (i: NodeInterface) => boolean): InterfaceAddress[] {
  const out: InterfaceAddress[] = [];
  for (const i of ifaces) {
    if (!i.up || !pick(i)) continue;
    for (const a of i.addresses) {
      if (a.family !== 4) continue;
      if (a.scope && a.scope !== 'global') continue;
      const ip = a.cidr.split('/')[0]!;
      if (ip.startsWith('127.') || ip.startsWith('169.254.')) continue;
      out.push(a);
    }
  }
  return out;
}

/**
 * Chooses the node's IPv4 address (as CIDR) by `method`. `canReach(dst)` returns the local source
 * address the kernel would use towards `dst` (from `ip route get`); only `can-reach` calls it.
 */
export async function detectNodeAddress(
  method: AutodetectionMethod,
  ifaces: NodeInterface[],
  canReach: (destination: string) => Promise<string | undefined>,
): Promise<string> {
  const fail = (why: string): never => {
    const seen = ifaces.map(
      (i) =>
        `${i.name}(${i.up ? 'up' : 'down'}: ${i.addresses.map((a) => a.cidr).join(' ') || 'no address'})`,
    );
    throw new AgentError(
      'AGENT_ERR_AUTODETECT',
      `${why}; interfaces seen: ${seen.join(', ') || 'none'}; set --ipv4-address or another --ip-autodetection-method`,
    );
  };
  switch (method.type) {
    case 'first-found': {
      const c = candidates(ifaces, (i) => !EXCLUDED_INTERFACES.test(i.name))[0];
      return c ? c.cidr : fail('first-found: no up interface with a global IPv4 address');
    }
    case 'interface': {
      const c = candidates(ifaces, (i) => method.regex.test(i.name))[0];
      return c
        ? c.cidr
        : fail(`interface=${method.regex.source}: no matching up interface with an IPv4 address`);
    }
    case 'skip-interface': {
      const c = candidates(ifaces, (i) => !method.regex.test(i.name) && !EXCLUDED_INTERFACES.test(i.name))[0];
      return c
        ? c.cidr
        : fail(`skip-interface=${method.regex.source}: no other up interface with an IPv4 address`);
    }
    case 'cidr': {
      const nets = method.cidrs.map((c) => parseCidr(c)!);
      const c = candidates(ifaces, () => true).find((a) => {
        const addr = parseCidr(a.cidr.split('/')[0]!)!;
        return nets.some((n) => cidrContains(n, addr));
      });
      return c ? c.cidr : fail(`cidr=${method.cidrs.join(',')}: no address inside`);
    }
    case 'can-reach': {
      const src = await canReach(method.destination);
      if (!src) return fail(`can-reach=${method.destination}: no route to the destination`);
      for (const i of ifaces) for (const a of i.addresses) if (a.cidr.split('/')[0] === src) return a.cidr;
      return `${src}/32`;
    }
  }
}

/** The BGP router ID: the node's IPv4 address. */
export function routerIdFor(nodeAddressCidr: string): string {
  return nodeAddressCidr.split('/')[0]!;
}
