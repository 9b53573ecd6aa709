// Block IPAM against the datastore (docs/architecture.md: "One pod, end to end" step 2, "Resources").
//
// A node claims a block from an IPPool whose nodeSelector matches it: BlockAffinity `pending`, then
// the IPAMBlock's creation (the atomic point: whoever creates it owns it), then the affinity goes
// `confirmed`. Addresses come from the node's affine blocks first; when they are full the node
// claims another block (up to maxBlocksPerNode), then borrows from other nodes' blocks unless
// strictAffinity. Every write is a compare-and-swap on resourceVersion, retried a bounded number
// of times on 409. An IPAMHandle (`<network>.<containerID>`) records which blocks an owner holds
// addresses in; it is written before the block, so a crash never leaves an address unowned, and
// release by handle is idempotent.
import { createHash } from 'node:crypto';
import {
  type BlockAffinity,
  cidrContainsIp,
  cidrsOverlap,
  compareStrings,
  formatCidr,
  type IPAMBlock,
  type IPAMHandle,
  type IpFamily,
  isK8sError,
  K8S_ERR,
  KubeClient,
  type KubeClientOptions,
  type ParsedCidr,
  parseIp,
  parseSelector,
} from '@podnet/k8s';
import type { Logger } from 'pino';
import { type AffinityEvent, type AffinityState, affinityTransition } from './affinity.js';
import {
  affineNode,
  affinityFor,
  affinityName,
  allocatedAddresses,
  allocateInBlock,
  type BlockState,
  blockName,
  blockOf,
  blockProblems,
  cidrOfBlockName,
  freeCount,
  ipAt,
  mustParseCidr,
  newBlock,
  ordinalOf,
  ordinalsOfHandle,
  type PoolInfo,
  pickFreeBlock,
  poolContaining,
  poolInfo,
  poolsForNode,
  reassignHandle,
  releaseHandle,
  releaseOrdinals,
  type SetAsidePool,
  selectPools,
  usedCount,
} from './block.js';
import { type IpamDatastore, kubeDatastore } from './datastore.js';
import { IPAM_ERR, IpamError } from './errors.js';

export const NODE_LABEL = 'podnet.io/node';
/**
 * The allocation attribute of an address an agent set aside for its node's next pod (its value is
 * the node). Such an address has no pod: GC leaves it alone while the node exists.
 */
export const SPARE_ATTR = 'podnet.io/spare';

export interface IpamOptions {
  /** A datastore; else one over `client`; else a KubeClient from kubeconfigPath/KUBECONFIG/in-cluster. */
  datastore?: IpamDatastore;
  client?: KubeClient;
  kubeconfigPath?: string;
  kubeClientOptions?: KubeClientOptions;
  logger?: Logger;
  /** Blocks one node may claim before it borrows. Default 20. */
  maxBlocksPerNode?: number;
  /** Never borrow from other nodes' blocks; fail with POOL_EXHAUSTED instead. Default false. */
  strictAffinity?: boolean;
  /** Compare-and-swap attempts per write before TOO_MANY_CONFLICTS. Default 30. */
  maxRetries?: number;
  /** How long pools and node labels are cached, ms. Default 5000. */
  cacheTtlMs?: number;
  /**
   * How long an allocation waits for another one with the same handle (in another process) to
   * record its address before failing with HANDLE_BUSY, ms. Default 10000.
   */
  handleWaitMs?: number;
}

export interface AllocationAttrs {
  namespace?: string;
  pod?: string;
  containerID?: string;
  [k: string]: string | undefined;
}

export interface AllocateRequest {
  /** `<network>.<containerID>`: the owner; release by handle frees everything it holds. */
  handle: string;
  node: string;
  /** Default true. */
  ipv4?: boolean;
  /** Default false. */
  ipv6?: boolean;
  attrs?: AllocationAttrs;
  /** Only these IPPools (by name). */
  pools?: string[];
}

export interface AllocatedAddress {
  /** e.g. 10.244.1.5 */
  address: string;
  /** The address as a host route: 10.244.1.5/32 or fd00::5/128. */
  cidr: string;
  /** The block it came from, e.g. 10.244.1.0/26. */
  block: string;
  pool: string;
  /** True when the block is affine to another node (the agent announces the /32). */
  borrowed: boolean;
}

export interface AllocateResult {
  ipv4?: AllocatedAddress;
  ipv6?: AllocatedAddress;
}

export interface ReleasedAddress {
  address: string;
  block: string;
  handle: string;
}

export interface NodeBlock {
  cidr: string;
  pool: string | undefined;
  state: BlockAffinity['spec']['state'] | 'none';
  used: number;
  free: number;
}

export interface Inconsistency {
  type:
    | 'block-corrupt'
    | 'blocks-overlap'
    | 'block-outside-pools'
    | 'block-without-affinity'
    | 'affinity-without-block'
    | 'handle-count-mismatch'
    | 'allocation-without-handle'
    | 'invalid-object'
    | 'pools-overlap';
  message: string;
}

export interface Usage {
  pools: {
    name: string;
    cidr: string;
    blockSize: number;
    disabled: boolean;
    blocks: number;
    capacity: string;
    used: number;
  }[];
  nodes: {
    node: string;
    blocks: { cidr: string; used: number; free: number }[];
    used: number;
    borrowedFrom: number;
  }[];
  totals: { blocks: number; used: number; handles: number };
}

export interface GcOptions {
  /** How long a leaked address or an empty block must stay so before it is released. Default 60 s. */
  graceMs?: number;
  now?: number;
  /** Release empty blocks' affinities (never a node's last block of a family, see keepLastBlock). Default true. */
  blocks?: boolean;
  /**
   * Keep each node's last block of each address family even when it is empty, so the node's next
   * pod needs no new claim. Default true. Set false where an empty node should give its blocks back
   * (and withdraw them) once the grace period has passed.
   */
  keepLastBlock?: boolean;
  /** Release addresses whose pod is gone. Default true. */
  addresses?: boolean;
  /**
   * Also release the last empty block of a node whose Node object no longer exists. Default false
   * (set it where Node objects are authoritative, as in the agent).
   */
  deletedNodes?: boolean;
}

export interface GcReport {
  releasedHandles: string[];
  releasedBlocks: string[];
  /** Candidates seen once, waiting for the grace period. */
  pending: number;
}

/** A Kubernetes object name for a handle ID (which may hold characters names may not). */
export function handleName(handleID: string): string {
  if (/^[a-z0-9]([-a-z0-9.]{0,200}[a-z0-9])?$/.test(handleID)) return handleID;
  const clean = handleID
    .toLowerCase()
    .replace(/[^a-z0-9.-]/g, '-')
    .replace(/^[^a-z0-9]+/, '')
    .slice(0, 40);
  const h = createHash('sha256').update(handleID).digest('hex').slice(0, 16);
  return clean ? `${clean.replace(/[^a-z0-9]+$/, '')}.${h}` : `h.${h}`;
}

function familyOf(c: ParsedCidr): IpFamily {
  return c.family;
}

function toState(b: IPAMBlock): BlockState {
  return {
    cidr: b.spec.cidr,
    affinity: b.spec.affinity ?? null,
    allocations: b.spec.allocations,
    unallocated: b.spec.unallocated,
    attributes: b.spec.attributes,
    strictAffinity: b.spec.strictAffinity,
    deleted: b.spec.deleted,
  };
}

function withState(b: IPAMBlock, s: BlockState): IPAMBlock {
  return { ...b, spec: { ...b.spec, ...s } };
}

function labelValue(node: string): string | undefined {
  return /^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/.test(node) ? node : undefined;
}

/** Whether a pool's nodeSelector selects every node (`all()` or empty); an invalid one does not. */
function selectsEveryNode(selector: string): boolean {
  try {
    return parseSelector(selector).requirements.length === 0;
  } catch {
    return false;
  }
}

function nodeLabels(node: string): Record<string, string> {
  const v = labelValue(node);
  return v ? { [NODE_LABEL]: v } : {};
}

interface FamilyPlan {
  family: IpFamily;
  pools: PoolInfo[];
  /** Blocks found full (or gone) during this allocation. */
  tried: Set<string>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A write another writer got in before: changed (409), made (409 AlreadyExists) or deleted (404). */
const lostRace = (err: unknown): boolean =>
  isK8sError(err, K8S_ERR.CONFLICT) ||
  isK8sError(err, K8S_ERR.ALREADY_EXISTS) ||
  isK8sError(err, K8S_ERR.NOT_FOUND);

/** How long a list of the blocks serves further block claims (Ipam.blocksTaken). */
const TAKEN_BLOCKS_TTL_MS = 1000;

export class Ipam {
  readonly ds: IpamDatastore;
  readonly client: KubeClient | undefined;
  private readonly log: Logger | undefined;
  private readonly maxBlocksPerNode: number;
  private readonly strictAffinity: boolean;
  private readonly maxRetries: number;
  private readonly cacheTtlMs: number;
  /** Blocks last seen, by CIDR (a cache: every write is still a CAS on its resourceVersion). */
  private readonly blocks = new Map<string, IPAMBlock>();
  private readonly loadedNodes = new Set<string>();
  private poolCache: { at: number; pools: PoolInfo[]; setAside: SetAsidePool[] } | undefined;
  /** Set-aside pools already logged (by message), so each overlap is logged once, not per read. */
  private readonly loggedOverlaps = new Set<string>();
  private readonly labelCache = new Map<string, { at: number; labels: Record<string, string> | undefined }>();
  private readonly blockQueues = new Map<string, Promise<unknown>>();
  private readonly gcSeen = new Map<string, number>();
  private readonly inflight = new Map<string, Promise<void>>();
  /** Handles whose pins this instance wrote and whose allocation has not completed. */
  private readonly adoptable = new Set<string>();
  private readonly handleWaitMs: number;
  /** Conflicts retried (409 on a CAS write), for metrics and the benchmark. */
  conflicts = 0;
  /** Blocks this instance claimed. */
  claims = 0;
  /**
   * The block CIDRs seen taken by the last list, and when: claims close together (many nodes
   * starting at once) share one list instead of each listing every block. Stale is safe: a
   * block's create is the atomic point, so a CIDR taken since only costs a lost race.
   */
  private takenBlocks: { at: number; cidrs: Set<string> } | undefined;
  private listingBlocks: Promise<{ at: number; cidrs: Set<string> }> | undefined;

  constructor(opts: IpamOptions = {}) {
    if (opts.datastore) {
      this.ds = opts.datastore;
      this.client = opts.client;
    } else {
      this.client =
        opts.client ??
        new KubeClient({
          ...opts.kubeClientOptions,
          ...(opts.kubeconfigPath ? { kubeconfigPath: opts.kubeconfigPath } : {}),
        });
      this.ds = kubeDatastore(this.client);
    }
    this.log = opts.logger?.child({ component: 'ipam' });
    this.maxBlocksPerNode = opts.maxBlocksPerNode ?? 20;
    this.strictAffinity = opts.strictAffinity ?? false;
    this.maxRetries = opts.maxRetries ?? 30;
    this.cacheTtlMs = opts.cacheTtlMs ?? 5000;
    this.handleWaitMs = opts.handleWaitMs ?? 10_000;
  }

  // -------------------------------------------------------------------------------------------
  // Reads and caches

  /**
   * The IPPools in use: valid ones, minus each pool that overlaps an older one (set aside, see
   * selectPools; `setAsidePools()` lists them and `check()` reports them).
   */
  async pools(fresh = false): Promise<PoolInfo[]> {
    return (await this.poolSelection(fresh)).pools;
  }

  /** Pools left out because they overlap an older pool, with the reason. */
  async setAsidePools(fresh = false): Promise<SetAsidePool[]> {
    return (await this.poolSelection(fresh)).setAside;
  }

  private async poolSelection(fresh: boolean): Promise<{ pools: PoolInfo[]; setAside: SetAsidePool[] }> {
    const now = Date.now();
    if (!fresh && this.poolCache && now - this.poolCache.at < this.cacheTtlMs) return this.poolCache;
    const r = await this.ds.pools.list();
    for (const bad of r.invalid)
      this.log?.warn({ pool: bad.name, err: bad.error.message }, 'skipping invalid IPPool');
    const pools: PoolInfo[] = [];
    for (const p of r.items) {
      try {
        pools.push(poolInfo(p));
      } catch (err) {
        this.log?.warn({ pool: p.metadata.name, err: (err as Error).message }, 'skipping unusable IPPool');
      }
    }
    const { valid, setAside } = selectPools(pools);
    for (const s of setAside)
      if (!this.loggedOverlaps.has(s.message)) {
        this.loggedOverlaps.add(s.message);
        this.log?.warn({ pool: s.pool.name, overlaps: s.overlaps.name, err: s.message }, 'IPPool set aside');
      }
    // Keep the name order the rest of IPAM relies on (poolsForNode sorts again).
    this.poolCache = { at: now, pools: valid.sort((a, b) => compareStrings(a.name, b.name)), setAside };
    return this.poolCache;
  }

  private async labelsOf(node: string) {
    const now = Date.now();
    const c = this.labelCache.get(node);
    if (c && now - c.at < this.cacheTtlMs) return c.labels;
    const labels = await this.ds.nodeLabels(node);
    this.labelCache.set(node, { at: now, labels });
    return labels;
  }

  /**
   * The node's labels as pool selection needs them: read only when a pool selects some nodes (with
   * every pool on all(), the default, the Node is not read).
   */
  private async selectorLabels(node: string, pools: PoolInfo[]): Promise<Record<string, string>> {
    return pools.some((p) => !selectsEveryNode(p.nodeSelector)) ? ((await this.labelsOf(node)) ?? {}) : {};
  }

  /** The blocks labelled with the node (its affine blocks, and any that still carry its label). */
  private async nodeBlocks(node: string) {
    const v = labelValue(node);
    return this.ds.blocks.list(v ? { labelSelector: `${NODE_LABEL}=${v}` } : {});
  }

  private remember(b: IPAMBlock): IPAMBlock {
    this.blocks.set(b.spec.cidr, b);
    return b;
  }

  private forget(cidr: string) {
    this.blocks.delete(cidr);
  }

  /** Loads the node's affine blocks into the cache (once per node, then kept by writes and conflicts). */
  private async loadNode(node: string): Promise<void> {
    if (this.loadedNodes.has(node)) return;
    const r = await this.nodeBlocks(node);
    for (const b of r.items) if (affineNode(b.spec) === node) this.remember(b);
    this.loadedNodes.add(node);
  }

  private async fetchBlock(cidr: string): Promise<IPAMBlock | undefined> {
    try {
      return this.remember(await this.ds.blocks.get(blockName(cidr)));
    } catch (err) {
      if (isK8sError(err, K8S_ERR.NOT_FOUND)) {
        this.forget(cidr);
        return undefined;
      }
      throw err;
    }
  }

  private async blockFor(cidr: string): Promise<IPAMBlock | undefined> {
    return this.blocks.get(cidr) ?? (await this.fetchBlock(cidr));
  }

  /** Runs writes to one block from this process one after another (they would only conflict). */
  private serial<T>(cidr: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.blockQueues.get(cidr) ?? Promise.resolve();
    const next = prev.then(fn, fn);
    const tail = next.catch(() => {});
    this.blockQueues.set(cidr, tail);
    void tail.then(() => {
      if (this.blockQueues.get(cidr) === tail) this.blockQueues.delete(cidr);
    });
    return next;
  }

  /**
   * Applies `change` to a block with compare-and-swap, re-reading and retrying on conflict.
   * `change` returns undefined to leave the block alone, or the state it was given (unchanged) to
   * report a result without writing.
   */
  private async casBlock<R>(
    cidr: string,
    change: (s: BlockState) => { state: BlockState; result: R } | undefined,
  ): Promise<{ block: IPAMBlock; result: R } | undefined> {
    return this.serial(cidr, async () => {
      let b = await this.blockFor(cidr);
      for (let attempt = 0; attempt < this.maxRetries; attempt++) {
        if (!b) return undefined;
        const state = toState(b);
        const c = change(state);
        if (!c) return undefined;
        if (c.state === state) return { block: b, result: c.result }; // nothing to write
        try {
          const written = this.remember(await this.ds.blocks.replace(withState(b, c.state)));
          return { block: written, result: c.result };
        } catch (err) {
          if (isK8sError(err, K8S_ERR.CONFLICT)) {
            this.conflicts++;
            b = await this.fetchBlock(cidr);
            continue;
          }
          if (isK8sError(err, K8S_ERR.NOT_FOUND)) {
            this.forget(cidr);
            return undefined;
          }
          // Any other failure leaves the outcome unknown (the server may have stored the write and
          // its answer been lost): the cached block can no longer be trusted.
          this.forget(cidr);
          throw err;
        }
      }
      throw new IpamError(
        IPAM_ERR.TOO_MANY_CONFLICTS,
        `block ${cidr}: gave up after ${this.maxRetries} conflicts`,
      );
    });
  }

  /** Read-modify-write of a handle with CAS; `change` returning undefined deletes it. */
  private async casHandle(
    handleID: string,
    change: (cur: IPAMHandle['spec']['block'] | undefined) => IPAMHandle['spec']['block'] | undefined,
  ): Promise<void> {
    const name = handleName(handleID);
    let cur: IPAMHandle | undefined;
    let known = false;
    for (let attempt = 0; attempt < this.maxRetries; attempt++) {
      if (!known) {
        try {
          cur = await this.ds.handles.get(name);
        } catch (err) {
          if (!isK8sError(err, K8S_ERR.NOT_FOUND)) throw err;
          cur = undefined;
        }
      }
      known = false;
      const next = change(cur?.spec.block);
      try {
        if (next === undefined) {
          if (cur) await this.ds.handles.delete(name, { resourceVersion: cur.metadata.resourceVersion! });
        } else if (!cur) {
          await this.ds.handles.create({ metadata: { name }, spec: { handleID, block: next } });
        } else {
          await this.ds.handles.replace({ ...cur, spec: { ...cur.spec, block: next } });
        }
        return;
      } catch (err) {
        if (lostRace(err)) {
          this.conflicts++;
          continue;
        }
        throw err;
      }
    }
    throw new IpamError(
      IPAM_ERR.TOO_MANY_CONFLICTS,
      `handle ${handleID}: gave up after ${this.maxRetries} conflicts`,
    );
  }

  // -------------------------------------------------------------------------------------------
  // Allocation

  /**
   * Allocates one address per requested family for `handle` on `node`. Idempotent per handle: when
   * the handle already holds an address of a family (an ADD retried), that address is returned.
   *
   * The IPAMHandle is the atomic point. Whoever creates it (or adds a family to it with a CAS)
   * pins one block per family in that write and becomes the only writer of the handle's address
   * in that family: it allocates in the pinned block (idempotently: a block that already holds an
   * address for the handle gives that one back) and, when the block is full, moves the pin with a
   * CAS before trying the next block. Every other call with the same handle only reads: it waits,
   * boundedly, until the pinned block records the address and returns it. So concurrent ADDs with
   * one handle get one address per family. Steady state stays two writes: create the handle, CAS
   * the block.
   */
  async allocate(req: AllocateRequest): Promise<AllocateResult> {
    if (!req.handle) throw new IpamError(IPAM_ERR.INVALID_ARGUMENT, 'handle must not be empty');
    if (!req.node) throw new IpamError(IPAM_ERR.INVALID_ARGUMENT, 'node must not be empty');
    const families: IpFamily[] = [];
    if (req.ipv4 ?? true) families.push(4);
    if (req.ipv6) families.push(6);
    if (families.length === 0) throw new IpamError(IPAM_ERR.INVALID_ARGUMENT, 'ask for ipv4, ipv6 or both');
    const secondary: Record<string, string> = { node: req.node };
    for (const [k, v] of Object.entries(req.attrs ?? {})) if (v !== undefined) secondary[k] = v;

    const allPools = await this.pools();
    const labels = await this.selectorLabels(req.node, allPools);
    const plan: FamilyPlan[] = families.map((family) => {
      let pools = poolsForNode(allPools, family, labels);
      if (req.pools) pools = pools.filter((p) => req.pools!.includes(p.name));
      if (pools.length === 0) {
        throw new IpamError(
          IPAM_ERR.NO_POOL_FOR_NODE,
          `no enabled IPv${family} IPPool${req.pools ? ` among ${req.pools.join(', ')}` : ''} selects node ${req.node}`,
        );
      }
      return { family, pools, tried: new Set<string>() };
    });

    // Calls with one handle in this process run one after the other (the later one then finds the
    // handle and its addresses); calls in other processes are kept apart by the handle itself.
    const prev = this.inflight.get(req.handle);
    const run = (async () => {
      if (prev) await prev;
      const r = await this.allocateWithHandle(req, plan, secondary);
      this.adoptable.delete(req.handle);
      return r;
    })();
    const tail = run.then(
      () => {},
      () => {},
    );
    this.inflight.set(req.handle, tail);
    void tail.then(() => {
      if (this.inflight.get(req.handle) === tail) this.inflight.delete(req.handle);
    });
    return run;
  }

  private async allocateWithHandle(
    req: AllocateRequest,
    plan: FamilyPlan[],
    secondary: Record<string, string>,
  ): Promise<AllocateResult> {
    const log = this.log?.child({ handle: req.handle, node: req.node });
    const name = handleName(req.handle);
    const result: AllocateResult = {};
    const set = (family: IpFamily, a: AllocatedAddress) => {
      if (family === 4) result.ipv4 = a;
      else result.ipv6 = a;
      log?.debug({ address: a.address, block: a.block, borrowed: a.borrowed }, 'allocated');
    };
    const deadline = Date.now() + this.handleWaitMs;
    let pause = 2;
    // The first attempt assumes the handle is new (no read in the steady state).
    let h: IPAMHandle | undefined;
    let read = false;
    for (let round = 0; round < 10_000; round++) {
      const todo = plan.filter((p) => (p.family === 4 ? !result.ipv4 : !result.ipv6));
      if (todo.length === 0) return result;
      if (read) h = await this.readHandle(name);
      read = true;

      if (!h) {
        // Own the handle: its creation pins one block per family.
        const pins = await this.choosePins(req.node, todo);
        try {
          await this.ds.handles.create({
            metadata: { name },
            spec: { handleID: req.handle, block: Object.fromEntries(pins.map((p) => [p.cidr, 1])) },
          });
          this.adoptable.add(req.handle);
        } catch (err) {
          if (!isK8sError(err, K8S_ERR.ALREADY_EXISTS)) throw err;
          this.conflicts++;
          continue;
        }
        for (const p of pins) set(p.plan.family, await this.fillPin(req, p.plan, p.cidr, secondary));
        continue;
      }

      // The handle exists. A family it does not pin yet is ours once our CAS adds the pin.
      const held = h;
      const unpinned = todo.filter((p) => this.pinsOf(held, p.family).length === 0);
      if (unpinned.length > 0) {
        const pins = await this.choosePins(req.node, unpinned);
        const block = { ...held.spec.block };
        for (const p of pins) block[p.cidr] = (block[p.cidr] ?? 0) + 1;
        try {
          await this.ds.handles.replace({ ...held, spec: { ...held.spec, block } });
          this.adoptable.add(req.handle);
        } catch (err) {
          if (!isK8sError(err, K8S_ERR.CONFLICT) && !isK8sError(err, K8S_ERR.NOT_FOUND)) throw err;
          this.conflicts++;
          continue;
        }
        for (const p of pins) set(p.plan.family, await this.fillPin(req, p.plan, p.cidr, secondary));
        continue;
      }

      // A pin written by an earlier call of this instance that failed half-way: that call has
      // settled (calls with one handle run in turn here), so its pin is ours to fill.
      if (this.adoptable.has(req.handle)) {
        for (const p of todo)
          set(p.family, await this.fillPin(req, p, this.pinsOf(held, p.family)[0]!, secondary));
        continue;
      }
      // Every family left is pinned by another call (or an earlier ADD): read what it recorded.
      const pools = await this.pools();
      for (const p of todo) {
        for (const cidr of this.pinsOf(held, p.family)) {
          const b = await this.fetchBlock(cidr);
          const o = b ? ordinalsOfHandle(toState(b), req.handle)[0] : undefined;
          if (b && o !== undefined) {
            set(p.family, this.describe(mustParseCidr(cidr), o, b, pools, req.node));
            break;
          }
        }
      }
      if (plan.every((p) => (p.family === 4 ? result.ipv4 : result.ipv6))) return result;
      if (Date.now() >= deadline) {
        throw new IpamError(
          IPAM_ERR.HANDLE_BUSY,
          `handle ${req.handle}: another allocation pinned ${Object.keys(held.spec.block).join(', ')} and has not recorded its address within ${this.handleWaitMs} ms (if it died, DEL or GC releases the handle)`,
        );
      }
      await sleep(pause);
      pause = Math.min(pause * 2, 100);
    }
    throw new IpamError(IPAM_ERR.TOO_MANY_CONFLICTS, `handle ${req.handle}: gave up after too many rounds`);
  }

  private async readHandle(name: string): Promise<IPAMHandle | undefined> {
    try {
      return await this.ds.handles.get(name);
    } catch (err) {
      if (isK8sError(err, K8S_ERR.NOT_FOUND)) return undefined;
      throw err;
    }
  }

  /** The blocks of a family in which a handle holds (or is about to hold) an address. */
  private pinsOf(h: IPAMHandle, family: IpFamily): string[] {
    return Object.entries(h.spec.block)
      .filter(([cidr, n]) => n > 0 && familyOf(mustParseCidr(cidr)) === family)
      .map(([cidr]) => cidr)
      .sort();
  }

  /** A block for each family (claiming one when the node has none with room). */
  private async choosePins(node: string, plans: FamilyPlan[]): Promise<{ plan: FamilyPlan; cidr: string }[]> {
    await this.loadNode(node);
    const out: { plan: FamilyPlan; cidr: string }[] = [];
    for (const plan of plans) {
      const cidr = await this.chooseBlock(node, plan.family, plan.pools, plan.tried);
      if (!cidr) throw this.exhausted(node, plan);
      out.push({ plan, cidr });
    }
    return out;
  }

  private exhausted(node: string, plan: FamilyPlan): IpamError {
    return new IpamError(
      IPAM_ERR.POOL_EXHAUSTED,
      `no free IPv${plan.family} address for node ${node} in pools ${plan.pools.map((p) => `${p.name} (${formatCidr(p.cidr)})`).join(', ')}`,
    );
  }

  /**
   * As the owner of the handle's pin in `cidr`: allocates there (or finds the address an earlier
   * attempt of ours recorded); when the block is full or gone, moves the pin to another block with a
   * CAS on the handle and tries again. On exhaustion it removes its pin and throws POOL_EXHAUSTED.
   */
  private async fillPin(
    req: AllocateRequest,
    plan: FamilyPlan,
    first: string,
    secondary: Record<string, string>,
  ): Promise<AllocatedAddress> {
    let cidr = first;
    for (let round = 0; round < this.maxRetries; round++) {
      const r = await this.casBlock(cidr, (s) => {
        const have = ordinalsOfHandle(s, req.handle)[0];
        if (have !== undefined) return { state: s, result: have };
        if (s.deleted) return undefined;
        if (affineNode(s) !== req.node && (this.strictAffinity || s.strictAffinity)) return undefined;
        const a = allocateInBlock(s, req.handle, secondary, 1);
        return a.ordinals.length ? { state: a.block, result: a.ordinals[0]! } : undefined;
      });
      if (r) return this.describe(mustParseCidr(cidr), r.result, r.block, await this.pools(), req.node);
      // The block filled up (or went away) under us: move the pin, or give it up.
      plan.tried.add(cidr);
      const from = cidr;
      const next = await this.chooseBlock(req.node, plan.family, plan.pools, plan.tried);
      await this.casHandle(req.handle, (cur) => {
        const block = { ...cur };
        const n = (block[from] ?? 1) - 1;
        if (n > 0) block[from] = n;
        else delete block[from];
        if (next) block[next] = (block[next] ?? 0) + 1;
        return Object.keys(block).length ? block : undefined;
      });
      if (!next) break;
      cidr = next;
    }
    throw this.exhausted(req.node, plan);
  }

  private describe(
    c: ParsedCidr,
    ordinal: number,
    b: IPAMBlock,
    pools: PoolInfo[],
    node: string | undefined,
  ) {
    const address = ipAt(c, ordinal);
    return {
      address,
      cidr: `${address}/${c.family === 4 ? 32 : 128}`,
      block: formatCidr(c),
      pool: poolContaining(pools, c)?.name ?? '',
      borrowed: node !== undefined && affineNode(b.spec) !== node,
    };
  }

  /** Affine block with room → claim a new block → borrow; undefined when nothing is left. */
  private async chooseBlock(node: string, family: IpFamily, pools: PoolInfo[], tried: Set<string>) {
    const inPools = (b: IPAMBlock) => {
      const c = mustParseCidr(b.spec.cidr);
      return c.family === family && poolContaining(pools, c) !== undefined;
    };
    let affine: IPAMBlock[] = [];
    for (let pass = 0; pass < 2; pass++) {
      affine = [...this.blocks.values()].filter((b) => affineNode(b.spec) === node && !b.spec.deleted);
      const withRoom = affine
        .filter((b) => inPools(b) && freeCount(toState(b)) > 0 && !tried.has(b.spec.cidr))
        .sort((a, b) => compareStrings(a.spec.cidr, b.spec.cidr));
      if (withRoom[0]) return withRoom[0].spec.cidr;
      // The cache may be stale (another process released addresses): re-read once before claiming.
      if (pass === 0) {
        for (const b of affine) this.forget(b.spec.cidr);
        this.loadedNodes.delete(node);
        await this.loadNode(node);
      }
    }

    const nodeBlocks = affine.filter((b) => mustParseCidr(b.spec.cidr).family === family).length;
    if (nodeBlocks < this.maxBlocksPerNode) {
      for (const pool of pools) {
        const claimed = await this.claimBlock(node, pool);
        if (claimed) return claimed.spec.cidr;
      }
    }
    if (this.strictAffinity) return undefined;
    const all = await this.ds.blocks.list();
    for (const b of all.items) this.remember(b);
    const borrow = all.items
      .filter(
        (b) =>
          inPools(b) &&
          !b.spec.deleted &&
          !b.spec.strictAffinity &&
          freeCount(toState(b)) > 0 &&
          !tried.has(b.spec.cidr),
      )
      .sort((a, b) => freeCount(toState(b)) - freeCount(toState(a)));
    if (borrow[0]) {
      this.log?.info({ node, block: borrow[0].spec.cidr, owner: affineNode(borrow[0].spec) }, 'borrowing');
      return borrow[0].spec.cidr;
    }
    return undefined;
  }

  /**
   * Claims a free block of `pool` for `node`: affinity pending → create the block (atomic point)
   * → affinity confirmed. Undefined when the pool has no free block.
   */
  async claimBlock(node: string, pool: PoolInfo): Promise<IPAMBlock | undefined> {
    for (let attempt = 0; attempt < this.maxRetries; attempt++) {
      const taken = await this.blocksTaken(attempt);
      // After each lost race, choose among more free blocks: claimers racing for the lowest few
      // spread out instead of colliding again.
      const cidr = pickFreeBlock(pool, taken, `${node}/${attempt}`, 4 << Math.min(attempt, 4));
      if (!cidr) return undefined;
      const cidrText = formatCidr(cidr);
      const affName = affinityName(node, cidr);
      await this.affinityEvent(affName, node, cidrText, { type: 'claim' });
      try {
        const block = newBlock(cidr, node, this.strictAffinity);
        const created = await this.ds.blocks.create({
          metadata: { name: blockName(cidr), labels: nodeLabels(node) },
          spec: block,
        });
        this.remember(created);
        this.takenBlocks?.cidrs.add(cidrText);
        this.claims++;
        await this.affinityEvent(affName, node, cidrText, { type: 'block-created' });
        this.log?.info({ node, block: cidrText, pool: pool.name }, 'claimed block');
        return created;
      } catch (err) {
        if (!isK8sError(err, K8S_ERR.ALREADY_EXISTS)) throw err;
        // Lost the race (or an earlier attempt of ours won it).
        this.takenBlocks?.cidrs.add(cidrText);
        const b = await this.fetchBlock(cidrText);
        if (b && affineNode(b.spec) === node) {
          await this.affinityEvent(affName, node, cidrText, { type: 'block-already-ours' });
          return b;
        }
        this.conflicts++;
        await this.affinityEvent(affName, node, cidrText, {
          type: 'lost-race',
          owner: b ? affineNode(b.spec) : undefined,
        });
        await sleep(Math.random() * 5 * (attempt + 1));
      }
    }
    throw new IpamError(
      IPAM_ERR.TOO_MANY_CONFLICTS,
      `node ${node}: could not claim a block of pool ${pool.name}`,
    );
  }

  /** Block CIDRs taken: the last list if it is recent and this is not a retry after two lost races. */
  private async blocksTaken(attempt: number): Promise<Set<string>> {
    const t = this.takenBlocks;
    if (t && Date.now() - t.at < TAKEN_BLOCKS_TTL_MS && attempt < 2) return t.cidrs;
    // Claims arriving while a list is under way wait for it rather than list again.
    if (attempt < 2 && this.listingBlocks) return (await this.listingBlocks).cidrs;
    const listing = (async () => {
      const at = Date.now();
      const existing = await this.ds.blocks.list();
      const cidrs = new Set(existing.items.map((b) => b.spec.cidr));
      for (const bad of existing.invalid) {
        // Never hand out a block whose object exists but cannot be read.
        const c = cidrOfBlockName(bad.name);
        if (c) cidrs.add(c);
      }
      return { at, cidrs };
    })();
    this.listingBlocks = listing;
    try {
      this.takenBlocks = await listing;
      return this.takenBlocks.cidrs;
    } finally {
      if (this.listingBlocks === listing) this.listingBlocks = undefined;
    }
  }

  /**
   * Applies one event to a node's BlockAffinity through affinityTransition, with compare-and-swap:
   * creates it on `claim`, deletes it when the transition leads to `deleted`, retries on conflict.
   */
  private async affinityEvent(name: string, node: string, cidr: string, ev: AffinityEvent): Promise<void> {
    for (let attempt = 0; attempt < this.maxRetries; attempt++) {
      let cur: BlockAffinity | undefined;
      try {
        cur = await this.ds.affinities.get(name);
      } catch (err) {
        if (!isK8sError(err, K8S_ERR.NOT_FOUND)) throw err;
      }
      const state: AffinityState = cur?.spec.state ?? 'none';
      const t = affinityTransition(state, ev);
      if (!t.ok) {
        this.log?.warn({ node, block: cidr, state, event: ev.type }, t.reason);
        return;
      }
      if (t.next === state) return;
      try {
        if (t.next === 'deleted') {
          if (cur) await this.ds.affinities.delete(name, { resourceVersion: cur.metadata.resourceVersion! });
        } else if (!cur) {
          await this.ds.affinities.create({
            metadata: { name, labels: nodeLabels(node) },
            spec: { node, cidr, state: t.next },
          });
        } else {
          await this.ds.affinities.replace({ ...cur, spec: { ...cur.spec, state: t.next } });
        }
        this.log?.debug({ node, block: cidr, from: state, to: t.next, reason: t.reason }, 'block affinity');
        return;
      } catch (err) {
        if (lostRace(err)) {
          this.conflicts++;
          continue;
        }
        throw err;
      }
    }
    throw new IpamError(
      IPAM_ERR.TOO_MANY_CONFLICTS,
      `BlockAffinity ${name}: gave up after ${this.maxRetries} conflicts`,
    );
  }

  /**
   * Gives every address handle `from` holds in `blocks` to handle `to`, with the attributes `attrs`
   * (the node is added): `to` is created pinning those blocks, each block's ordinals of `from` are
   * rewritten in one compare-and-swap, then `from` is deleted. Idempotent: a transfer interrupted
   * at any step completes when called again. Throws HANDLE_BUSY when `to` already exists pinning
   * other blocks (another allocation owns it), NOT_ALLOCATED when neither handle holds an address
   * in one of the blocks. Returns the addresses `to` holds in them.
   */
  async transfer(
    from: string,
    to: string,
    node: string,
    blocks: string[],
    attrs: AllocationAttrs = {},
  ): Promise<string[]> {
    const secondary: Record<string, string> = { node };
    for (const [k, v] of Object.entries(attrs)) if (v !== undefined) secondary[k] = v;
    const name = handleName(to);
    try {
      await this.ds.handles.create({
        metadata: { name },
        spec: { handleID: to, block: Object.fromEntries(blocks.map((b) => [b, 1])) },
      });
    } catch (err) {
      if (!isK8sError(err, K8S_ERR.ALREADY_EXISTS)) throw err;
      const h = await this.readHandle(name);
      const pinned = Object.keys(h?.spec.block ?? {});
      if (!h || pinned.length !== blocks.length || !blocks.every((b) => pinned.includes(b))) {
        throw new IpamError(
          IPAM_ERR.HANDLE_BUSY,
          `handle ${to} already exists and pins ${pinned.join(', ') || 'nothing'}, not ${blocks.join(', ')}: another allocation owns it`,
        );
      }
    }
    const held: string[] = [];
    for (const cidr of blocks) {
      const c = mustParseCidr(cidr);
      const move = () =>
        this.casBlock(cidr, (s) => {
          const m = reassignHandle(s, from, to, secondary);
          if (m.moved.length > 0) return { state: m.block, result: { ords: m.moved, wrote: true } };
          return { state: s, result: { ords: ordinalsOfHandle(s, to), wrote: false } };
        });
      let moved = await move();
      // Nothing to write (done before, or nothing held): decide on the server's block, not on a
      // cached copy another process may have changed since.
      if (!moved?.result.wrote) {
        this.forget(cidr);
        moved = await move();
      }
      const r = moved && { result: moved.result.ords };
      if (!r || r.result.length === 0) {
        // Nothing was held anywhere: the handle made above pins nothing.
        if (held.length === 0) await this.casHandle(to, () => undefined);
        throw new IpamError(
          IPAM_ERR.NOT_ALLOCATED,
          `block ${cidr} holds no address of handle ${from} or ${to}: nothing to transfer`,
        );
      }
      for (const o of r.result) held.push(ipAt(c, o));
    }
    await this.casHandle(from, () => undefined);
    this.log?.debug({ from, to, addresses: held }, 'transferred');
    return held;
  }

  /**
   * The addresses set aside on `node` (allocations whose SPARE_ATTR names it) in its affine blocks,
   * per handle, read from the server.
   */
  async sparesOf(
    node: string,
  ): Promise<{ handle: string; addresses: { address: string; block: string }[] }[]> {
    const r = await this.nodeBlocks(node);
    const out = new Map<string, { address: string; block: string }[]>();
    for (const b of r.items) {
      if (affineNode(b.spec) !== node || b.spec.deleted) continue;
      for (const a of allocatedAddresses(toState(b))) {
        if (a.attr.secondary?.[SPARE_ATTR] !== node) continue;
        const list = out.get(a.attr.handleID) ?? [];
        list.push({ address: a.ip, block: b.spec.cidr });
        out.set(a.attr.handleID, list);
      }
    }
    return [...out].map(([handle, addresses]) => ({ handle, addresses }));
  }

  /**
   * Whether an address in each of `blocks` may still go to a pod on `node`: the block lies in an
   * enabled pool of its family that selects the node (allocate()'s choice, from the cached pools).
   */
  async allocatable(node: string, blocks: string[]): Promise<boolean> {
    const allPools = await this.pools();
    const labels = await this.selectorLabels(node, allPools);
    return blocks.every((cidr) => {
      const c = mustParseCidr(cidr);
      return poolContaining(poolsForNode(allPools, familyOf(c), labels), c) !== undefined;
    });
  }

  // -------------------------------------------------------------------------------------------
  // Release

  /** Releases every address a handle holds and deletes the handle. Idempotent. */
  async releaseByHandle(handleID: string): Promise<ReleasedAddress[]> {
    this.adoptable.delete(handleID);
    let h: IPAMHandle;
    try {
      h = await this.ds.handles.get(handleName(handleID));
    } catch (err) {
      if (isK8sError(err, K8S_ERR.NOT_FOUND)) return [];
      throw err;
    }
    const released: ReleasedAddress[] = [];
    for (const cidr of Object.keys(h.spec.block)) {
      const c = mustParseCidr(cidr);
      // Decide on the server's block, not a cached one: an address written by another process, or
      // by a write of ours whose answer was lost, is in the block but not in a stale copy of it.
      this.forget(cidr);
      const r = await this.casBlock(cidr, (s) => {
        const rel = releaseHandle(s, handleID);
        return rel.released.length ? { state: rel.block, result: rel.released } : undefined;
      });
      for (const o of r?.result ?? []) released.push({ address: ipAt(c, o), block: cidr, handle: handleID });
    }
    const blocks = new Set(Object.keys(h.spec.block));
    // Drop the blocks just cleared; keep any that a concurrent ADD with the same handle added.
    await this.casHandle(handleID, (cur) => {
      if (!cur) return undefined;
      const rest = Object.fromEntries(Object.entries(cur).filter(([k]) => !blocks.has(k)));
      return Object.keys(rest).length ? rest : undefined;
    });
    this.log?.debug({ handle: handleID, released: released.map((r) => r.address) }, 'released handle');
    return released;
  }

  /** Releases one address; undefined when it was not allocated. */
  async releaseIp(ip: string): Promise<ReleasedAddress | undefined> {
    const parsed = parseIp(ip);
    if (!parsed) throw new IpamError(IPAM_ERR.INVALID_ARGUMENT, `${JSON.stringify(ip)} is not an IP address`);
    const pools = await this.pools();
    let block: ParsedCidr | undefined;
    for (const p of pools) {
      const b = blockOf(ip, p.blockSize);
      if (b && poolContaining([p], b)) block = b;
    }
    if (!block || !(await this.blockFor(formatCidr(block)))) {
      // The pool is gone or its block size changed since the block was made: find the holder.
      const all = await this.ds.blocks.list();
      const holder = all.items.find((b) => cidrContainsIp(mustParseCidr(b.spec.cidr), parsed));
      if (!holder) return undefined;
      block = mustParseCidr(this.remember(holder).spec.cidr);
    }
    const cidr = formatCidr(block);
    const ordinal = ordinalOf(block, ip)!;
    const r = await this.casBlock(cidr, (s) => {
      const a = s.allocations[ordinal];
      if (a === null || a === undefined) return undefined;
      const handle = s.attributes[a]!.handleID;
      return { state: releaseOrdinals(s, [ordinal]).block, result: handle };
    });
    if (!r) return undefined;
    const handle = r.result;
    const still = ordinalsOfHandle(toState(r.block), handle).length;
    await this.casHandle(handle, (cur) => {
      if (!cur) return undefined;
      const next = { ...cur };
      if (still > 0) next[cidr] = still;
      else delete next[cidr];
      return Object.keys(next).length ? next : undefined;
    });
    return { address: ip, block: cidr, handle };
  }

  // -------------------------------------------------------------------------------------------
  // Views

  /** The blocks affine to a node, with their affinity state and use. */
  async blocksForNode(node: string): Promise<NodeBlock[]> {
    const pools = await this.pools();
    const v = labelValue(node);
    const [blocks, affs] = await Promise.all([
      this.ds.blocks.list(v ? { labelSelector: `${NODE_LABEL}=${v}` } : {}),
      this.ds.affinities.list(v ? { labelSelector: `${NODE_LABEL}=${v}` } : {}),
    ]);
    const states = new Map(
      affs.items.filter((a) => a.spec.node === node).map((a) => [a.spec.cidr, a.spec.state]),
    );
    return blocks.items
      .filter((b) => affineNode(b.spec) === node && !b.spec.deleted)
      .map((b) => ({
        cidr: b.spec.cidr,
        pool: poolContaining(pools, mustParseCidr(b.spec.cidr))?.name,
        state: states.get(b.spec.cidr) ?? ('none' as const),
        used: usedCount(toState(b)),
        free: freeCount(toState(b)),
      }))
      .sort((a, b) => compareStrings(a.cidr, b.cidr));
  }

  /** Addresses used by pods on `node` that come from other nodes' blocks (announced as /32s). */
  async borrowedForNode(
    node: string,
  ): Promise<{ address: string; block: string; owner: string | undefined }[]> {
    const all = await this.ds.blocks.list();
    const out: { address: string; block: string; owner: string | undefined }[] = [];
    for (const b of all.items) {
      if (affineNode(b.spec) === node) continue;
      for (const a of allocatedAddresses(toState(b))) {
        if (a.attr.secondary?.node === node)
          out.push({ address: a.ip, block: b.spec.cidr, owner: affineNode(b.spec) });
      }
    }
    return out;
  }

  /** Pools, blocks per node and utilisation (`podnetctl ipam show`). */
  async usage(): Promise<Usage> {
    const pools = await this.pools(true);
    const [blocks, handles] = await Promise.all([this.ds.blocks.list(), this.ds.handles.list()]);
    const nodes = new Map<string, Usage['nodes'][number]>();
    const node = (n: string) => {
      let e = nodes.get(n);
      if (!e) {
        e = { node: n, blocks: [], used: 0, borrowedFrom: 0 };
        nodes.set(n, e);
      }
      return e;
    };
    const perPool = new Map(pools.map((p) => [p.name, { blocks: 0, used: 0 }]));
    let used = 0;
    for (const b of blocks.items) {
      const s = toState(b);
      const u = usedCount(s);
      used += u;
      const owner = affineNode(s);
      if (owner) node(owner).blocks.push({ cidr: s.cidr, used: u, free: freeCount(s) });
      for (const a of allocatedAddresses(s)) {
        const n = a.attr.secondary?.node;
        if (!n) continue;
        node(n).used++;
        if (n !== owner) node(n).borrowedFrom++;
      }
      const p = poolContaining(pools, mustParseCidr(s.cidr));
      const e = p && perPool.get(p.name);
      if (e) {
        e.blocks++;
        e.used += u;
      }
    }
    return {
      pools: pools.map((p) => ({
        name: p.name,
        cidr: formatCidr(p.cidr),
        blockSize: p.blockSize,
        disabled: p.disabled,
        blocks: perPool.get(p.name)!.blocks,
        capacity: (1n << BigInt((p.cidr.family === 4 ? 32 : 128) - p.cidr.prefixLength)).toString(),
        used: perPool.get(p.name)!.used,
      })),
      nodes: [...nodes.values()].sort((a, b) => compareStrings(a.node, b.node)),
      totals: { blocks: blocks.items.length, used, handles: handles.items.length },
    };
  }

  /** Inconsistencies in the stored IPAM state (`podnetctl ipam check`). Empty when all is well. */
  async check(): Promise<Inconsistency[]> {
    const out: Inconsistency[] = [];
    const { pools, setAside } = await this.poolSelection(true);
    for (const s of setAside) out.push({ type: 'pools-overlap', message: `${s.message}: set aside` });
    const [blocks, affs, handles] = await Promise.all([
      this.ds.blocks.list(),
      this.ds.affinities.list(),
      this.ds.handles.list(),
    ]);
    for (const r of [blocks, affs, handles])
      for (const bad of r.invalid) out.push({ type: 'invalid-object', message: bad.error.message });
    const parsed = blocks.items.map((b) => ({ b, c: mustParseCidr(b.spec.cidr) }));
    for (let i = 0; i < parsed.length; i++) {
      const { b, c } = parsed[i]!;
      for (const p of blockProblems(toState(b)))
        out.push({ type: 'block-corrupt', message: `block ${b.spec.cidr}: ${p}` });
      if (!poolContaining(pools, c))
        out.push({ type: 'block-outside-pools', message: `block ${b.spec.cidr} lies in no IPPool` });
      for (let j = i + 1; j < parsed.length; j++) {
        const o = parsed[j]!;
        if (cidrsOverlap(c, o.c))
          out.push({ type: 'blocks-overlap', message: `blocks ${b.spec.cidr} and ${o.b.spec.cidr} overlap` });
      }
      const owner = affineNode(b.spec);
      if (owner && !affs.items.some((a) => a.spec.node === owner && a.spec.cidr === b.spec.cidr))
        out.push({
          type: 'block-without-affinity',
          message: `block ${b.spec.cidr} is affine to ${owner} but has no BlockAffinity`,
        });
    }
    const blockByCidr = new Map(blocks.items.map((b) => [b.spec.cidr, b]));
    for (const a of affs.items) {
      if (a.spec.state === 'confirmed' && !blockByCidr.has(a.spec.cidr))
        out.push({
          type: 'affinity-without-block',
          message: `BlockAffinity ${a.metadata.name} (${a.spec.node}, ${a.spec.cidr}) has no IPAMBlock`,
        });
    }
    const handleIDs = new Set(handles.items.map((h) => h.spec.handleID));
    for (const b of blocks.items) {
      for (const attr of new Set(allocatedAddresses(toState(b)).map((a) => a.attr.handleID))) {
        if (!handleIDs.has(attr))
          out.push({
            type: 'allocation-without-handle',
            message: `block ${b.spec.cidr} holds addresses for handle ${attr}, which has no IPAMHandle`,
          });
      }
    }
    for (const h of handles.items) {
      for (const [cidr, n] of Object.entries(h.spec.block)) {
        const b = blockByCidr.get(cidr);
        const actual = b ? ordinalsOfHandle(toState(b), h.spec.handleID).length : 0;
        if (actual !== n)
          out.push({
            type: 'handle-count-mismatch',
            message: `handle ${h.spec.handleID} counts ${n} address(es) in ${cidr}, the block holds ${actual}`,
          });
      }
    }
    return out;
  }

  // -------------------------------------------------------------------------------------------
  // Garbage collection

  /**
   * Forgets the candidates gc() has seen once. Call it when this instance takes garbage collection
   * over (a new leader term), so nothing is released before this term saw it twice a grace apart.
   */
  gcForget(): void {
    this.gcSeen.clear();
  }

  /**
   * Releases what nobody uses any more, each only after it was seen unused twice across the grace
   * period: addresses whose pod no longer exists, and the affinity of an empty block (never a
   * node's last block).
   */
  async gc(opts: GcOptions = {}): Promise<GcReport> {
    const now = opts.now ?? Date.now();
    const grace = opts.graceMs ?? 60_000;
    const report: GcReport = { releasedHandles: [], releasedBlocks: [], pending: 0 };
    const seenNow = new Set<string>();
    const due = (key: string) => {
      seenNow.add(key);
      const first = this.gcSeen.get(key);
      if (first === undefined) {
        this.gcSeen.set(key, now);
        return false;
      }
      return now - first >= grace;
    };
    const blocks = (await this.ds.blocks.list()).items;

    if (opts.addresses ?? true) {
      const handlesPods = new Map<
        string,
        { namespace: string; pod: string; node: string | undefined; ips: string[] }
      >();
      for (const b of blocks)
        for (const a of allocatedAddresses(toState(b))) {
          const ns = a.attr.secondary?.namespace;
          const pod = a.attr.secondary?.pod;
          if (!ns || !pod) continue;
          const e = handlesPods.get(a.attr.handleID) ?? {
            namespace: ns,
            pod,
            node: a.attr.secondary?.node,
            ips: [],
          };
          e.ips.push(a.ip);
          handlesPods.set(a.attr.handleID, e);
        }
      // Pods are listed in bulk: one list per node that holds candidates (field selector
      // spec.nodeName), and one list of every pod for addresses that name no node.
      const lists = new Map<string, Promise<Map<string, string[]>>>();
      const podsOn = (node: string | undefined) => {
        const key = node ?? '';
        let l = lists.get(key);
        if (!l) {
          l = this.ds.listPodAddresses!(node);
          lists.set(key, l);
        }
        return l;
      };
      for (const [handle, { namespace, pod, node, ips }] of handlesPods) {
        if (this.ds.listPodAddresses) {
          const recorded = (await podsOn(node)).get(`${namespace}/${pod}`);
          if (recorded !== undefined && (recorded.length === 0 || ips.some((ip) => recorded.includes(ip))))
            continue;
        } else if (await this.podHolds(namespace, pod, ips)) continue;
        if (due(`handle:${handle}`)) {
          const rel = await this.releaseByHandle(handle);
          this.log?.info(
            { handle, namespace, pod, released: rel.map((r) => r.address) },
            'gc: released leaked addresses',
          );
          report.releasedHandles.push(handle);
          this.gcSeen.delete(`handle:${handle}`);
        }
      }
    }

    if ((opts.addresses ?? true) && opts.deletedNodes === true) {
      // Addresses an agent set aside for a node that is gone: nobody will hand them out.
      const spares = new Map<string, string>();
      for (const b of blocks)
        for (const a of allocatedAddresses(toState(b))) {
          const n = a.attr.secondary?.[SPARE_ATTR];
          if (n) spares.set(a.attr.handleID, n);
        }
      const gone = new Map<string, boolean>();
      for (const [handle, node] of spares) {
        let g = gone.get(node);
        if (g === undefined) {
          g = (await this.ds.nodeLabels(node)) === undefined;
          gone.set(node, g);
        }
        if (!g || !due(`spare:${handle}`)) continue;
        const rel = await this.releaseByHandle(handle);
        this.log?.info(
          { handle, node, released: rel.map((r) => r.address) },
          'gc: released the spare addresses of a deleted node',
        );
        report.releasedHandles.push(handle);
        this.gcSeen.delete(`spare:${handle}`);
      }
    }

    if (opts.addresses ?? true) {
      // Handles that hold nothing (an ADD that died between writing the handle and the block).
      const holders = new Set<string>();
      for (const b of blocks) for (const a of allocatedAddresses(toState(b))) holders.add(a.attr.handleID);
      for (const h of (await this.ds.handles.list()).items) {
        if (holders.has(h.spec.handleID)) continue;
        if (!due(`empty-handle:${h.spec.handleID}:${h.metadata.resourceVersion}`)) continue;
        try {
          await this.ds.handles.delete(h.metadata.name, { resourceVersion: h.metadata.resourceVersion! });
          report.releasedHandles.push(h.spec.handleID);
          this.log?.info({ handle: h.spec.handleID }, 'gc: deleted a handle that holds no address');
        } catch (err) {
          if (!isK8sError(err, K8S_ERR.CONFLICT) && !isK8sError(err, K8S_ERR.NOT_FOUND)) throw err;
        }
      }
    }

    if (opts.blocks ?? true) {
      // Grouped per node AND family: a dual-stack node's last IPv4 block and last IPv6 block are
      // each its last of their kind (counting both together released whichever came first).
      const perNodeFamily = new Map<string, { node: string; list: IPAMBlock[] }>();
      for (const b of blocks) {
        const node = affineNode(b.spec);
        if (!node || b.spec.deleted) continue;
        const key = `${node}|${b.spec.cidr.includes(':') ? 6 : 4}`;
        const group = perNodeFamily.get(key) ?? { node, list: [] };
        group.list.push(b);
        perNodeFamily.set(key, group);
      }
      const keepLast = opts.keepLastBlock ?? true;
      const goneNodes = new Map<string, boolean>();
      for (const { node, list } of perNodeFamily.values()) {
        // A node whose Node object is gone keeps nothing: even its last empty block goes.
        let nodeGone = goneNodes.get(node);
        if (nodeGone === undefined) {
          nodeGone = opts.deletedNodes === true && (await this.ds.nodeLabels(node)) === undefined;
          goneNodes.set(node, nodeGone);
        }
        let remaining = list.length;
        for (const b of list) {
          if (keepLast && remaining <= 1 && !nodeGone) break;
          if (usedCount(toState(b)) !== 0) continue;
          if (!due(`block:${b.spec.cidr}:${b.metadata.resourceVersion}`)) continue;
          if (await this.releaseBlock(node, b)) {
            report.releasedBlocks.push(b.spec.cidr);
            remaining--;
          }
        }
      }
    }
    for (const key of [...this.gcSeen.keys()]) if (!seenNow.has(key)) this.gcSeen.delete(key);
    report.pending = this.gcSeen.size;
    return report;
  }

  /** Whether the pod still exists and (when it records its addresses) still uses one of `ips`. */
  private async podHolds(namespace: string, pod: string, ips: string[]): Promise<boolean> {
    if (!this.ds.podAddresses) return this.ds.podExists(namespace, pod);
    const recorded = await this.ds.podAddresses(namespace, pod);
    if (recorded === undefined) return false;
    return recorded.length === 0 || ips.some((ip) => recorded.includes(ip));
  }

  /**
   * Gives up an empty block: affinity → pendingDeletion, mark the block deleted with a CAS on the
   * version we saw empty (so an allocation in between wins), delete it, then delete the affinity.
   */
  private async releaseBlock(node: string, b: IPAMBlock): Promise<boolean> {
    const affName = affinityName(node, b.spec.cidr);
    await this.affinityEvent(affName, node, b.spec.cidr, { type: 'release-empty' });
    try {
      const marked = await this.ds.blocks.replace({ ...b, spec: { ...b.spec, deleted: true } });
      await this.ds.blocks.delete(blockName(b.spec.cidr), {
        resourceVersion: marked.metadata.resourceVersion!,
      });
    } catch (err) {
      if (isK8sError(err, K8S_ERR.CONFLICT)) {
        // Someone allocated meanwhile: keep the block and its affinity.
        this.conflicts++;
        await this.affinityEvent(affName, node, b.spec.cidr, { type: 'block-in-use' });
        return false;
      }
      if (!isK8sError(err, K8S_ERR.NOT_FOUND)) throw err;
    }
    this.forget(b.spec.cidr);
    await this.affinityEvent(affName, node, b.spec.cidr, { type: 'block-deleted' });
    this.log?.info({ node, block: b.spec.cidr }, 'gc: released empty block');
    return true;
  }

  /** Forgets cached blocks (the next allocation re-reads the node's blocks). */
  invalidate(): void {
    this.blocks.clear();
    this.loadedNodes.clear();
    this.poolCache = undefined;
    this.labelCache.clear();
  }
}

export { affinityFor };
