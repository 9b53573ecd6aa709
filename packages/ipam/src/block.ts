// The pure core of block IPAM: block CIDR math for IPv4 and IPv6, the per-block allocation state
// (a bitmap in the form of `allocations` + `unallocated`), pool selection and the choice of the
// next free block. No I/O: ipam.ts applies these to objects read from the API server.
import {
  type AllocationAttribute,
  cidrContains,
  cidrContainsIp,
  cidrsOverlap,
  compareStrings,
  familyBits,
  formatCidr,
  formatIp,
  type IPPool,
  type IpFamily,
  matchesSelector,
  type ParsedCidr,
  parseCidr,
  parseIp,
  parseSelector,
} from '@podnet/k8s';
import { IPAM_ERR, IpamError } from './errors.js';

/** The allocation state of one block, as stored in IPAMBlock.spec. */
export interface BlockState {
  cidr: string;
  affinity?: string | null;
  allocations: (number | null)[];
  unallocated: number[];
  attributes: AllocationAttribute[];
  strictAffinity: boolean;
  deleted: boolean;
}

export const MAX_BLOCK_ADDRESSES = 65536;

export function mustParseCidr(cidr: string, field = 'cidr'): ParsedCidr {
  const c = parseCidr(cidr, { strict: true });
  if (!c)
    throw new IpamError(
      IPAM_ERR.INVALID_CIDR,
      `${field} ${JSON.stringify(cidr)} is not a valid network CIDR`,
    );
  return c;
}

export function blockAddressCount(block: ParsedCidr): number {
  const hostBits = familyBits(block.family) - block.prefixLength;
  if (hostBits > 16) {
    throw new IpamError(
      IPAM_ERR.BLOCK_SIZE,
      `block /${block.prefixLength} is too large (at most 65536 addresses)`,
    );
  }
  return 2 ** hostBits;
}

/** The number of blocks of `blockSize` in a pool (a bigint: IPv6 pools hold very many). */
export function blockCount(pool: ParsedCidr, blockSize: number): bigint {
  checkBlockSize(pool, blockSize);
  return 1n << BigInt(blockSize - pool.prefixLength);
}

export function checkBlockSize(pool: ParsedCidr, blockSize: number): void {
  const bits = familyBits(pool.family);
  if (!Number.isInteger(blockSize) || blockSize < pool.prefixLength || blockSize > bits) {
    throw new IpamError(
      IPAM_ERR.BLOCK_SIZE,
      `block size ${blockSize} must be between the pool prefix /${pool.prefixLength} and /${bits}`,
    );
  }
  if (bits - blockSize > 16) {
    throw new IpamError(
      IPAM_ERR.BLOCK_SIZE,
      `block size /${blockSize} is too large (at most 65536 addresses per block)`,
    );
  }
}

/** The index-th block of a pool. */
export function blockAt(pool: ParsedCidr, blockSize: number, index: bigint): ParsedCidr {
  const shift = BigInt(familyBits(pool.family) - blockSize);
  return { family: pool.family, network: pool.network + (index << shift), prefixLength: blockSize };
}

/** The index of a block within its pool (the inverse of blockAt). */
export function blockIndex(pool: ParsedCidr, block: ParsedCidr): bigint {
  const shift = BigInt(familyBits(pool.family) - block.prefixLength);
  return (block.network - pool.network) >> shift;
}

/** The block of `blockSize` that holds `ip`. */
export function blockOf(ip: string, blockSize: number): ParsedCidr | undefined {
  const p = parseIp(ip);
  if (!p) return undefined;
  const hostMask = (1n << BigInt(familyBits(p.family) - blockSize)) - 1n;
  return { family: p.family, network: p.value & ~hostMask, prefixLength: blockSize };
}

export function ipAt(block: ParsedCidr, ordinal: number): string {
  return formatIp(block.network + BigInt(ordinal), block.family);
}

/** The ordinal of `ip` in `block`, or undefined when it is outside. */
export function ordinalOf(block: ParsedCidr, ip: string): number | undefined {
  const p = parseIp(ip);
  if (!p || !cidrContainsIp(block, p)) return undefined;
  return Number(p.value - block.network);
}

/**
 * A Kubernetes object name for a block: the CIDR with ':' '.' '/' as '-', IPv6 fully expanded
 * (so the name never starts or ends with '-'). 10.244.1.64/26 → 10-244-1-64-26.
 */
export function blockName(block: ParsedCidr | string): string {
  const c = typeof block === 'string' ? mustParseCidr(block) : block;
  if (c.family === 4) return formatCidr(c).replace(/[./]/g, '-');
  const groups: string[] = [];
  for (let i = 7; i >= 0; i--) groups.push(((c.network >> BigInt(i * 16)) & 0xffffn).toString(16));
  return `${groups.join('-')}-${c.prefixLength}`;
}

/** The CIDR a block object name stands for (the inverse of blockName); undefined if it is not one. */
export function cidrOfBlockName(name: string): string | undefined {
  const parts = name.split('-');
  let text: string | undefined;
  if (parts.length === 5) text = `${parts.slice(0, 4).join('.')}/${parts[4]}`;
  if (parts.length === 9) text = `${parts.slice(0, 8).join(':')}/${parts[8]}`;
  const c = text === undefined ? undefined : parseCidr(text, { strict: true });
  return c ? formatCidr(c) : undefined;
}

export function affinityFor(node: string): string {
  return `host:${node}`;
}

export function affineNode(block: { affinity?: string | null }): string | undefined {
  return block.affinity?.startsWith('host:') ? block.affinity.slice(5) : undefined;
}

/** A BlockAffinity object name: node and block, both readable. */
export function affinityName(node: string, block: ParsedCidr | string): string {
  return `${node}-${blockName(block)}`.slice(0, 253);
}

/** A fresh, empty block affine to `node` (or to no node). */
export function newBlock(cidr: ParsedCidr, node: string | undefined, strictAffinity = false): BlockState {
  const size = blockAddressCount(cidr);
  return {
    cidr: formatCidr(cidr),
    affinity: node ? affinityFor(node) : null,
    allocations: new Array<number | null>(size).fill(null),
    unallocated: Array.from({ length: size }, (_, i) => i),
    attributes: [],
    strictAffinity,
    deleted: false,
  };
}

export function freeCount(b: BlockState): number {
  return b.unallocated.length;
}

export function usedCount(b: BlockState): number {
  return b.allocations.length - b.unallocated.length;
}

function sameAttr(a: AllocationAttribute, handleID: string, secondary: Record<string, string> | undefined) {
  if (a.handleID !== handleID) return false;
  const x = a.secondary ?? {};
  const y = secondary ?? {};
  const kx = Object.keys(x);
  return kx.length === Object.keys(y).length && kx.every((k) => x[k] === y[k]);
}

/**
 * Takes up to `count` free addresses for a handle. Pure: returns a new state. Released addresses
 * go to the back of `unallocated`, so an address is reused as late as possible.
 */
export function allocateInBlock(
  b: BlockState,
  handleID: string,
  secondary: Record<string, string> | undefined,
  count = 1,
): { block: BlockState; ordinals: number[] } {
  if (b.deleted || count <= 0 || b.unallocated.length === 0) return { block: b, ordinals: [] };
  const ordinals = b.unallocated.slice(0, count);
  const attributes = [...b.attributes];
  let attr = attributes.findIndex((a) => sameAttr(a, handleID, secondary));
  if (attr < 0) {
    attributes.push(secondary ? { handleID, secondary: { ...secondary } } : { handleID });
    attr = attributes.length - 1;
  }
  const allocations = [...b.allocations];
  for (const o of ordinals) allocations[o] = attr;
  return {
    block: { ...b, allocations, unallocated: b.unallocated.slice(ordinals.length), attributes },
    ordinals,
  };
}

/** Drops attributes no allocation refers to and renumbers the rest. */
function compactAttributes(allocations: (number | null)[], attributes: AllocationAttribute[]) {
  const used = new Set<number>();
  for (const a of allocations) if (a !== null) used.add(a);
  const remap = new Map<number, number>();
  const out: AllocationAttribute[] = [];
  attributes.forEach((a, i) => {
    if (used.has(i)) {
      remap.set(i, out.length);
      out.push(a);
    }
  });
  return { allocations: allocations.map((a) => (a === null ? null : remap.get(a)!)), attributes: out };
}

/** Frees the given ordinals (ones already free are ignored). */
export function releaseOrdinals(
  b: BlockState,
  ordinals: number[],
): { block: BlockState; released: number[] } {
  const allocations = [...b.allocations];
  const released: number[] = [];
  for (const o of ordinals) {
    if (o >= 0 && o < allocations.length && allocations[o] !== null && allocations[o] !== undefined) {
      allocations[o] = null;
      released.push(o);
    }
  }
  if (released.length === 0) return { block: b, released };
  const compact = compactAttributes(allocations, b.attributes);
  return {
    block: { ...b, ...compact, unallocated: [...b.unallocated, ...released] },
    released,
  };
}

/** The ordinals a handle holds in a block. */
export function ordinalsOfHandle(b: BlockState, handleID: string): number[] {
  const attrs = new Set<number>();
  b.attributes.forEach((a, i) => {
    if (a.handleID === handleID) attrs.add(i);
  });
  const out: number[] = [];
  b.allocations.forEach((a, i) => {
    if (a !== null && attrs.has(a)) out.push(i);
  });
  return out;
}

/**
 * Gives the ordinals `from` holds to `to` with the attributes `secondary` (one attribute for all of
 * them). Pure; `moved` is empty (and the state unchanged) when `from` holds nothing here.
 */
export function reassignHandle(
  b: BlockState,
  from: string,
  to: string,
  secondary: Record<string, string> | undefined,
): { block: BlockState; moved: number[] } {
  const moved = ordinalsOfHandle(b, from);
  if (moved.length === 0) return { block: b, moved };
  const attributes = [...b.attributes];
  let attr = attributes.findIndex((a) => sameAttr(a, to, secondary));
  if (attr < 0) {
    attributes.push(secondary ? { handleID: to, secondary: { ...secondary } } : { handleID: to });
    attr = attributes.length - 1;
  }
  const allocations = [...b.allocations];
  for (const o of moved) allocations[o] = attr;
  return { block: { ...b, ...compactAttributes(allocations, attributes) }, moved };
}

export function releaseHandle(b: BlockState, handleID: string): { block: BlockState; released: number[] } {
  return releaseOrdinals(b, ordinalsOfHandle(b, handleID));
}

/** Every allocated address of a block with its attribute. */
export function allocatedAddresses(
  b: BlockState,
): { ip: string; ordinal: number; attr: AllocationAttribute }[] {
  const c = mustParseCidr(b.cidr);
  const out: { ip: string; ordinal: number; attr: AllocationAttribute }[] = [];
  b.allocations.forEach((a, i) => {
    if (a !== null) out.push({ ip: ipAt(c, i), ordinal: i, attr: b.attributes[a]! });
  });
  return out;
}

/** Internal consistency of one block; returns the problems found (empty when sound). */
export function blockProblems(b: BlockState): string[] {
  const problems: string[] = [];
  const free = new Set<number>();
  for (const o of b.unallocated) {
    if (free.has(o)) problems.push(`ordinal ${o} is listed twice as free`);
    free.add(o);
    if (b.allocations[o] !== null) problems.push(`ordinal ${o} is both allocated and listed as free`);
  }
  b.allocations.forEach((a, i) => {
    if (a === null && !free.has(i)) problems.push(`ordinal ${i} is neither allocated nor free (leaked)`);
    if (a !== null && b.attributes[a] === undefined)
      problems.push(`ordinal ${i} points at missing attribute ${a}`);
  });
  return problems;
}

// ---------------------------------------------------------------------------------------------
// Pools

export interface PoolInfo {
  name: string;
  cidr: ParsedCidr;
  blockSize: number;
  disabled: boolean;
  nodeSelector: string;
  /** metadata.creationTimestamp (RFC 3339), which decides which of two overlapping pools is kept. */
  createdAt?: string;
}

export function poolInfo(p: IPPool): PoolInfo {
  const cidr = mustParseCidr(p.spec.cidr, `IPPool ${p.metadata.name} spec.cidr`);
  checkBlockSize(cidr, p.spec.blockSize);
  return {
    name: p.metadata.name,
    cidr,
    blockSize: p.spec.blockSize,
    disabled: p.spec.disabled,
    nodeSelector: p.spec.nodeSelector,
    ...(p.metadata.creationTimestamp ? { createdAt: p.metadata.creationTimestamp } : {}),
  };
}

/** A pool left out of allocation because it overlaps an older one that is in use. */
export interface SetAsidePool {
  pool: PoolInfo;
  /** The older pool it overlaps. */
  overlaps: PoolInfo;
  /** "IPPool b spec.cidr 10.0.1.0/24 overlaps IPPool a (10.0.0.0/16), which is older". */
  message: string;
}

/** Older first: by creationTimestamp (a pool without one sorts first), then by name. */
export function olderPoolFirst(a: PoolInfo, b: PoolInfo): number {
  const ta = a.createdAt ? Date.parse(a.createdAt) : Number.NEGATIVE_INFINITY;
  const tb = b.createdAt ? Date.parse(b.createdAt) : Number.NEGATIVE_INFINITY;
  if (ta !== tb) return ta < tb ? -1 : 1;
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}

/**
 * Splits pools into those in use and those set aside: walking from the oldest (creationTimestamp,
 * then name), a pool that shares addresses with a pool already in use is set aside. One bad pool
 * never stops allocation from the others; a set-aside pool does not block a later one.
 */
export function selectPools(pools: PoolInfo[]): { valid: PoolInfo[]; setAside: SetAsidePool[] } {
  const valid: PoolInfo[] = [];
  const setAside: SetAsidePool[] = [];
  for (const p of [...pools].sort(olderPoolFirst)) {
    const older = valid.find((v) => cidrsOverlap(v.cidr, p.cidr));
    if (!older) valid.push(p);
    else
      setAside.push({
        pool: p,
        overlaps: older,
        message: `IPPool ${p.name} spec.cidr ${formatCidr(p.cidr)} overlaps IPPool ${older.name} (${formatCidr(older.cidr)}), which is older`,
      });
  }
  return { valid, setAside };
}

/** Throws POOLS_OVERLAP when two pools share addresses. */
export function checkPoolsDisjoint(pools: PoolInfo[]): void {
  const first = selectPools(pools).setAside[0];
  if (first) throw new IpamError(IPAM_ERR.POOLS_OVERLAP, first.message);
}

/** Enabled pools of a family whose nodeSelector matches the node's labels, in name order. */
export function poolsForNode(
  pools: PoolInfo[],
  family: IpFamily,
  nodeLabels: Record<string, string> | undefined,
) {
  return pools
    .filter((p) => !p.disabled && p.cidr.family === family)
    .filter((p) => matchesSelector(parseSelector(p.nodeSelector), nodeLabels))
    .sort((a, b) => compareStrings(a.name, b.name));
}

export function poolContaining(pools: PoolInfo[], block: ParsedCidr): PoolInfo | undefined {
  return pools.find((p) => cidrContains(p.cidr, block));
}

/** A small stable hash (FNV-1a) used to spread nodes over candidate blocks. */
export function hash32(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}

/**
 * Picks a free block of the pool, given the CIDRs of blocks that exist. The first free block is at
 * index <= used.size, so the scan is bounded by the number of existing blocks, not the pool size.
 * Among the first few free blocks the choice is spread by `spread` (node name + attempt) so
 * nodes claiming at the same time rarely race for the same one. Undefined when the pool is full.
 */
export function pickFreeBlock(pool: PoolInfo, existing: Set<string>, spread: string, candidates = 4) {
  const total = blockCount(pool.cidr, pool.blockSize);
  const free: ParsedCidr[] = [];
  for (let i = 0n; i < total && free.length < candidates; i++) {
    const b = blockAt(pool.cidr, pool.blockSize, i);
    if (!existing.has(formatCidr(b))) free.push(b);
    if (i > BigInt(existing.size + candidates)) break;
  }
  if (free.length === 0) return undefined;
  return free[hash32(spread) % free.length];
}
