// LoadBalancer address allocation, the pure part (docs/services.md): which Services podnet serves,
// which addresses each one wants (one per IP family it asks for, or the ones it requests), which
// pool an address comes from, whether two Services may share one, and each pool's problems and
// use. No I/O: lb-controller.ts turns a Decision into compare-and-swap writes.
import {
  type AddressRange,
  compareStrings,
  formatIp,
  LB_ANNOTATIONS,
  LB_CLASS,
  type LoadBalancerAddress,
  type LoadBalancerPool,
  matchesSelector,
  parseAddressRange,
  parseIp,
  parseSelector,
  type Selector,
} from '@podnet/k8s';

export type Family = 4 | 6;
type Labels = Record<string, string>;

/** What the allocator reads of a Service. */
export interface LbService {
  namespace: string;
  name: string;
  uid: string;
  labels: Labels;
  annotations: Labels;
  type: string;
  loadBalancerClass?: string;
  loadBalancerIP?: string;
  ipFamilies: Family[];
  ipFamilyPolicy: string;
  /** "PROTOCOL/port" */
  ports: string[];
}

interface RawService {
  metadata?: { namespace?: string; name?: string; uid?: string; labels?: Labels; annotations?: Labels };
  spec?: {
    type?: string;
    loadBalancerClass?: string;
    loadBalancerIP?: string;
    ipFamilies?: string[];
    ipFamilyPolicy?: string;
    ports?: { port?: number; protocol?: string }[];
  };
}

export function lbService(raw: RawService): LbService {
  const m = raw.metadata ?? {};
  const s = raw.spec ?? {};
  const fams = (s.ipFamilies ?? []).map((f): Family => (f === 'IPv6' ? 6 : 4));
  return {
    namespace: m.namespace ?? '',
    name: m.name ?? '',
    uid: m.uid ?? '',
    labels: m.labels ?? {},
    annotations: m.annotations ?? {},
    type: s.type ?? 'ClusterIP',
    ...(s.loadBalancerClass ? { loadBalancerClass: s.loadBalancerClass } : {}),
    ...(s.loadBalancerIP ? { loadBalancerIP: s.loadBalancerIP } : {}),
    ipFamilies: fams.length > 0 ? fams : [4],
    ipFamilyPolicy: s.ipFamilyPolicy ?? 'SingleStack',
    ports: (s.ports ?? []).map((p) => `${p.protocol ?? 'TCP'}/${p.port}`),
  };
}

/** A Service of type LoadBalancer with no loadBalancerClass, or podnet's (LB_CLASS). */
export const servedByPodnet = (s: LbService) =>
  s.type === 'LoadBalancer' && (s.loadBalancerClass === undefined || s.loadBalancerClass === LB_CLASS);

export interface PoolView {
  name: string;
  ranges: AddressRange[];
  autoAssign: boolean;
  avoidBuggyIPs: boolean;
  services: Selector;
  namespaces: Selector;
  created: string;
}

export function poolView(p: LoadBalancerPool): PoolView {
  return {
    name: p.metadata.name,
    ranges: p.spec.addresses.map((a) => parseAddressRange(a) as AddressRange), // the schema checked them
    autoAssign: p.spec.autoAssign,
    avoidBuggyIPs: p.spec.avoidBuggyIPs,
    services: parseSelector(p.spec.serviceSelector),
    namespaces: parseSelector(p.spec.namespaceSelector),
    created: p.metadata.creationTimestamp ?? '',
  };
}

export interface PoolProblem {
  reason: string;
  message: string;
}

/**
 * Pools whose addresses overlap an older pool's (by creation, then name): the younger one is
 * refused as a whole, with the field and value of the overlapping entry; the older keeps working.
 */
export function overlapProblems(pools: readonly LoadBalancerPool[]): Map<string, PoolProblem> {
  const order = [...pools].sort(
    (a, b) =>
      compareStrings(a.metadata.creationTimestamp ?? '', b.metadata.creationTimestamp ?? '') ||
      compareStrings(a.metadata.name, b.metadata.name),
  );
  const out = new Map<string, PoolProblem>();
  const accepted: { pool: string; field: string; text: string; r: AddressRange }[] = [];
  for (const p of order) {
    const mine: typeof accepted = [];
    let problem: PoolProblem | undefined;
    p.spec.addresses.forEach((text, i) => {
      const r = parseAddressRange(text);
      if (typeof r === 'string') return;
      const field = `spec.addresses[${i}]`;
      const clash = [...accepted, ...mine].find(
        (o) => o.r.family === r.family && o.r.first <= r.last && r.first <= o.r.last,
      );
      if (clash && !problem)
        problem = {
          reason: 'Overlap',
          message: `${field}: ${JSON.stringify(text)} overlaps ${clash.pool === p.metadata.name ? 'this pool' : `LoadBalancerPool ${JSON.stringify(clash.pool)}`} (${clash.field}: ${JSON.stringify(clash.text)})`,
        };
      mine.push({ pool: p.metadata.name, field, text, r });
    });
    if (problem) out.set(p.metadata.name, problem);
    else accepted.push(...mine);
  }
  return out;
}

const isBuggy = (family: Family, n: bigint) => family === 4 && ((n & 0xffn) === 0n || (n & 0xffn) === 0xffn);

/** How many n in [first, last] have n mod 256 === v. */
function countResidue(first: bigint, last: bigint, v: bigint): bigint {
  const upTo = (x: bigint) => (x < v ? 0n : (x - v) / 256n + 1n);
  return upTo(last) - (first === 0n ? 0n : upTo(first - 1n));
}

/** The addresses a pool can hand out (avoidBuggyIPs taken into account). */
export function poolSize(p: PoolView): bigint {
  let n = 0n;
  for (const r of p.ranges) {
    n += r.last - r.first + 1n;
    if (p.avoidBuggyIPs && r.family === 4)
      n -= countResidue(r.first, r.last, 0n) + countResidue(r.first, r.last, 255n);
  }
  return n;
}

/** An allocation, as the allocator sees a LoadBalancerAddress. */
export interface Held {
  address: string;
  family: Family;
  pool: string;
  sharingKey?: string;
  holders: { namespace: string; name: string; uid: string; ports: string[] }[];
}

export function held(a: LoadBalancerAddress): Held {
  const ip = parseIp(a.spec.address)!;
  return {
    address: formatIp(ip.value, ip.family),
    family: ip.family,
    pool: a.spec.pool,
    ...(a.spec.sharingKey ? { sharingKey: a.spec.sharingKey } : {}),
    holders: a.spec.services,
  };
}

/**
 * The LoadBalancerAddresses in effect, by name, with their allocations indexed by address and by
 * the Service (`namespace/name`) holding them: kept up to date one object at a time, so one
 * Service's pass costs its own addresses, not a walk over every allocation.
 */
export class HeldIndex {
  private readonly byName = new Map<string, { obj: LoadBalancerAddress; held: Held }>();
  private readonly addresses = new Map<string, Held>();
  /** Names of the objects with a holder, by the holder's `namespace/name`. */
  private readonly services = new Map<string, Set<string>>();

  /** Every allocation, by canonical address. */
  get byAddress(): ReadonlyMap<string, Held> {
    return this.addresses;
  }

  get(name: string): LoadBalancerAddress | undefined {
    return this.byName.get(name)?.obj;
  }

  objects(): LoadBalancerAddress[] {
    return [...this.byName.values()].map((e) => e.obj);
  }

  /** The allocations with a holder named `namespace/name` (whatever its uid). */
  heldBy(key: string): Held[] {
    return [...(this.services.get(key) ?? [])].flatMap((name) => {
      const e = this.byName.get(name);
      return e ? [e.held] : [];
    });
  }

  /** What is in effect under `name` now (undefined: nothing). */
  set(name: string, obj: LoadBalancerAddress | undefined): void {
    const was = this.byName.get(name);
    if (was?.obj === obj) return;
    if (was) {
      this.byName.delete(name);
      if (this.addresses.get(was.held.address) === was.held) this.addresses.delete(was.held.address);
      for (const o of was.held.holders) {
        const k = `${o.namespace}/${o.name}`;
        const set = this.services.get(k);
        set?.delete(name);
        if (set?.size === 0) this.services.delete(k);
      }
    }
    if (!obj) return;
    const h = held(obj);
    this.byName.set(name, { obj, held: h });
    this.addresses.set(h.address, h);
    for (const o of h.holders) {
      const k = `${o.namespace}/${o.name}`;
      let set = this.services.get(k);
      if (!set) {
        set = new Set();
        this.services.set(k, set);
      }
      set.add(name);
    }
  }

  clear(): void {
    this.byName.clear();
    this.addresses.clear();
    this.services.clear();
  }
}

export interface Problem {
  reason: 'InvalidRequest' | 'AddressNotInPool' | 'RequestedAddressTaken' | 'NoAddressAvailable';
  message: string;
}

export interface Take {
  address: string;
  pool: string;
  /** Join an existing allocation (sharing) rather than create one. */
  share: boolean;
}

export interface Decision {
  keep: string[];
  take: Take[];
  release: string[];
  problems: Problem[];
}

export interface World {
  pools: readonly PoolView[];
  /** Every allocation, by canonical address. */
  allocations: ReadonlyMap<string, Held>;
  namespaceLabels: (namespace: string) => Labels;
  /** Addresses not to try (found taken in this pass). */
  exclude?: ReadonlySet<string>;
}

const familyOf = (ip: string): Family | undefined => parseIp(ip)?.family;
const sharingKey = (s: LbService) => s.annotations[LB_ANNOTATIONS.sharingKey] || undefined;
const clash = (a: readonly string[], b: readonly string[]) => a.some((p) => b.includes(p));

/**
 * Whether what `s` may take depends on what other Services take at the same time (a sharing key,
 * or a requested address by annotation or spec.loadBalancerIP): such a Service is reconciled alone.
 */
export const dependsOnOthers = (s: LbService) =>
  sharingKey(s) !== undefined ||
  s.annotations[LB_ANNOTATIONS.addresses] !== undefined ||
  s.loadBalancerIP !== undefined;

/** The addresses the Service requests (annotation, else spec.loadBalancerIP), canonical, or why not. */
export function requested(s: LbService): string[] | Problem {
  const note = s.annotations[LB_ANNOTATIONS.addresses];
  const [field, list] =
    note !== undefined
      ? [
          `annotation ${LB_ANNOTATIONS.addresses}`,
          note
            .split(',')
            .map((x) => x.trim())
            .filter(Boolean),
        ]
      : ['spec.loadBalancerIP', s.loadBalancerIP ? [s.loadBalancerIP] : []];
  const out: string[] = [];
  const seen = new Set<Family>();
  for (const text of list) {
    const ip = parseIp(text);
    if (!ip)
      return { reason: 'InvalidRequest', message: `${field}: ${JSON.stringify(text)} is not an IP address` };
    if (seen.has(ip.family))
      return {
        reason: 'InvalidRequest',
        message: `${field}: ${JSON.stringify(note)} holds two IPv${ip.family} addresses`,
      };
    seen.add(ip.family);
    out.push(formatIp(ip.value, ip.family));
  }
  return out;
}

function serves(p: PoolView, s: LbService, w: World): boolean {
  return (
    matchesSelector(p.services, s.labels) && matchesSelector(p.namespaces, w.namespaceLabels(s.namespace))
  );
}

/** Whether `s` may join allocation `h` (same sharing key, no port both use). */
function mayShare(h: Held, s: LbService): boolean {
  const key = sharingKey(s);
  return (
    key !== undefined &&
    h.sharingKey === key &&
    h.holders.every((o) => o.uid === s.uid || !clash(o.ports, s.ports))
  );
}

function pick(s: LbService, family: Family, w: World): Take | undefined {
  const pools = w.pools.filter(
    (p) => p.autoAssign && serves(p, s, w) && p.ranges.some((r) => r.family === family),
  );
  if (sharingKey(s) !== undefined)
    for (const h of w.allocations.values())
      if (
        h.family === family &&
        pools.some((p) => p.name === h.pool) &&
        mayShare(h, s) &&
        !w.exclude?.has(h.address)
      )
        return { address: h.address, pool: h.pool, share: true };
  for (const p of pools)
    for (const r of p.ranges) {
      if (r.family !== family) continue;
      for (let n = r.first; n <= r.last; n++) {
        if (p.avoidBuggyIPs && isBuggy(family, n)) continue;
        const ip = formatIp(n, family);
        if (!w.allocations.has(ip) && !w.exclude?.has(ip)) return { address: ip, pool: p.name, share: false };
      }
    }
  return undefined;
}

function claimRequested(s: LbService, ip: string, w: World): Take | Problem {
  const n = parseIp(ip)!;
  const pool = w.pools.find(
    (p) =>
      serves(p, s, w) &&
      p.ranges.some((r) => r.family === n.family && r.first <= n.value && n.value <= r.last),
  );
  if (!pool)
    return {
      reason: 'AddressNotInPool',
      message: `requested address ${ip} is in no LoadBalancerPool that serves this Service`,
    };
  const h = w.allocations.get(ip);
  if (!h && !w.exclude?.has(ip)) return { address: ip, pool: pool.name, share: false };
  if (h && mayShare(h, s)) return { address: ip, pool: h.pool, share: true };
  const by = h?.holders.map((o) => `${o.namespace}/${o.name}`).join(', ') ?? 'another Service';
  return { reason: 'RequestedAddressTaken', message: `requested address ${ip} is held by ${by}` };
}

/**
 * What to do for one Service: the addresses it keeps, takes and releases, and why it falls short.
 * `mine`: the allocations it holds now.
 */
export function decide(s: LbService, mine: readonly Held[], w: World): Decision {
  const d: Decision = { keep: [], take: [], release: [], problems: [] };
  if (!servedByPodnet(s)) {
    d.release = mine.map((h) => h.address);
    return d;
  }
  const req = requested(s);
  if (!Array.isArray(req)) {
    d.problems.push(req);
    d.keep = mine.map((h) => h.address);
    return d;
  }
  const families: Family[] =
    req.length > 0
      ? req.map((ip) => familyOf(ip)!)
      : s.ipFamilyPolicy === 'SingleStack'
        ? s.ipFamilies.slice(0, 1)
        : s.ipFamilies;
  const needAll = req.length > 0 || s.ipFamilyPolicy !== 'PreferDualStack';
  const plan: (Take | string)[] = [];
  const problems: Problem[] = [];
  for (const f of families) {
    const ofFamily = mine.filter((h) => h.family === f).map((h) => h.address);
    const want = req.find((ip) => familyOf(ip) === f);
    const kept = want !== undefined ? ofFamily.find((a) => a === want) : ofFamily[0];
    if (kept !== undefined) {
      plan.push(kept);
      continue;
    }
    const t = want !== undefined ? claimRequested(s, want, w) : pick(s, f, w);
    if (t === undefined)
      problems.push({
        reason: 'NoAddressAvailable',
        message: `no IPv${f} address available in a LoadBalancerPool that serves this Service`,
      });
    else if ('reason' in t) problems.push(t);
    else plan.push(t);
  }
  const short = needAll ? problems.length > 0 : plan.length === 0;
  d.problems = short ? problems : [];
  for (const x of plan)
    if (typeof x === 'string') d.keep.push(x);
    else if (!short) d.take.push(x);
  // Falling short keeps what is held: nothing is given up for a request that cannot be met.
  if (short) d.keep = mine.map((h) => h.address);
  d.release = mine.map((h) => h.address).filter((a) => !d.keep.includes(a));
  return d;
}

/** Addresses in use and still free per pool (for its status). */
export function poolUse(
  p: PoolView,
  allocations: ReadonlyMap<string, Held>,
): { inUse: number; free: bigint } {
  let inUse = 0;
  for (const h of allocations.values()) if (h.pool === p.name) inUse++;
  const free = poolSize(p) - BigInt(inUse);
  return { inUse, free: free < 0n ? 0n : free };
}
