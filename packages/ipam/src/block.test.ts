import { parseCidr } from '@podnet/k8s';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  allocateInBlock,
  type BlockState,
  blockAt,
  blockCount,
  blockIndex,
  blockName,
  blockOf,
  blockProblems,
  checkBlockSize,
  checkPoolsDisjoint,
  cidrOfBlockName,
  ipAt,
  mustParseCidr,
  newBlock,
  ordinalOf,
  ordinalsOfHandle,
  type PoolInfo,
  pickFreeBlock,
  poolsForNode,
  releaseHandle,
  releaseOrdinals,
  usedCount,
} from './block.js';
import { IPAM_ERR, IpamError } from './errors.js';

const pool = (name: string, cidr: string, blockSize: number, extra: Partial<PoolInfo> = {}): PoolInfo => ({
  name,
  cidr: mustParseCidr(cidr),
  blockSize,
  disabled: false,
  nodeSelector: 'all()',
  ...extra,
});

function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(IpamError);
    return (err as IpamError).code;
  }
  return 'no error';
}

describe('block CIDR math', () => {
  it.each([
    ['10.244.1.64/26', '10-244-1-64-26'],
    ['fd00:10:244::40/122', 'fd00-10-244-0-0-0-0-40-122'],
    ['::/122', '0-0-0-0-0-0-0-0-122'],
  ])('names block %s as %s, and back', (cidr, name) => {
    expect(blockName(cidr)).toBe(name);
    expect(cidrOfBlockName(name)).toBe(cidr);
  });

  it.each(['10-244-1-65-26', 'banana', 'a-b-c-d-e'])('knows %s is not a block name', (name) => {
    expect(cidrOfBlockName(name)).toBeUndefined();
  });

  it('finds the n-th block of a pool and back, for IPv4 and IPv6', () => {
    const v4 = mustParseCidr('10.244.0.0/16');
    const v6 = mustParseCidr('fd00:10:244::/48');
    expect(blockCount(v4, 26)).toBe(1024n);
    expect(blockCount(v6, 122)).toBe(1n << 74n);
    fc.assert(
      fc.property(
        fc.bigInt({ min: 0n, max: 1023n }),
        fc.bigInt({ min: 0n, max: (1n << 74n) - 1n }),
        (i4, i6) => {
          expect(blockIndex(v4, blockAt(v4, 26, i4))).toBe(i4);
          expect(blockIndex(v6, blockAt(v6, 122, i6))).toBe(i6);
        },
      ),
    );
  });

  it('maps addresses to ordinals and back', () => {
    const b = mustParseCidr('fd00::40/122');
    expect(ipAt(b, 5)).toBe('fd00::45');
    expect(ordinalOf(b, 'fd00::45')).toBe(5);
    expect(ordinalOf(b, 'fd00::80')).toBeUndefined();
    expect(blockOf('10.244.1.70', 26)).toEqual(parseCidr('10.244.1.64/26'));
  });

  it.each([
    [() => mustParseCidr('10.0.0.1/8'), IPAM_ERR.INVALID_CIDR],
    [() => checkBlockSize(mustParseCidr('10.0.0.0/16'), 12), IPAM_ERR.BLOCK_SIZE],
    [() => checkBlockSize(mustParseCidr('fd00::/48'), 64), IPAM_ERR.BLOCK_SIZE],
    [
      () => checkPoolsDisjoint([pool('a', '10.0.0.0/16', 26), pool('b', '10.0.128.0/17', 26)]),
      IPAM_ERR.POOLS_OVERLAP,
    ],
  ])('rejects bad pools with a typed error (%#)', (fn, code) => {
    expect(codeOf(fn)).toBe(code);
  });

  it('selects the enabled pools of a family whose nodeSelector matches the node', () => {
    const pools = [
      pool('b', '10.1.0.0/16', 26, { nodeSelector: 'zone=a' }),
      pool('a', '10.2.0.0/16', 26),
      pool('off', '10.3.0.0/16', 26, { disabled: true }),
      pool('v6', 'fd00::/48', 122),
    ];
    expect(poolsForNode(pools, 4, { zone: 'a' }).map((p) => p.name)).toEqual(['a', 'b']);
    expect(poolsForNode(pools, 4, { zone: 'b' }).map((p) => p.name)).toEqual(['a']);
    expect(poolsForNode(pools, 6, {}).map((p) => p.name)).toEqual(['v6']);
  });
});

describe('picking a free block', () => {
  it('never picks an existing block and reports a full pool', () => {
    const p = pool('p', '10.0.0.0/27', 29); // 4 blocks
    fc.assert(
      fc.property(fc.subarray([0n, 1n, 2n, 3n]), fc.string(), (used, spread) => {
        const names = new Set(
          used.map((i) => {
            const c = blockAt(p.cidr, 29, i);
            return `${ipAt(c, 0)}/29`;
          }),
        );
        const got = pickFreeBlock(p, names, spread);
        if (used.length === 4) expect(got).toBeUndefined();
        else {
          expect(got).toBeDefined();
          expect(names.has(`${ipAt(got!, 0)}/29`)).toBe(false);
        }
      }),
    );
  });

  it('stays bounded by the number of existing blocks in a huge IPv6 pool', () => {
    const p = pool('v6', 'fd00::/48', 122);
    const got = pickFreeBlock(p, new Set(['fd00::/122']), 'n1', 1);
    expect(got && ipAt(got, 0)).toBe('fd00::40');
  });
});

describe('allocation inside a block', () => {
  type Op =
    | { type: 'alloc'; handle: number }
    | { type: 'releaseHandle'; handle: number }
    | { type: 'releaseOrdinal'; o: number };
  const op: fc.Arbitrary<Op> = fc.oneof(
    fc.record({ type: fc.constant('alloc' as const), handle: fc.integer({ min: 0, max: 5 }) }),
    fc.record({ type: fc.constant('releaseHandle' as const), handle: fc.integer({ min: 0, max: 5 }) }),
    fc.record({ type: fc.constant('releaseOrdinal' as const), o: fc.integer({ min: 0, max: 15 }) }),
  );

  it('never hands out an address twice and never leaks one, for any sequence of operations', () => {
    fc.assert(
      fc.property(fc.array(op, { maxLength: 80 }), (ops) => {
        let b: BlockState = newBlock(mustParseCidr('10.0.0.0/28'), 'n1');
        const model = new Map<number, string>(); // ordinal → handle
        for (const o of ops) {
          if (o.type === 'alloc') {
            const r = allocateInBlock(b, `h${o.handle}`, { pod: `p${o.handle}` });
            b = r.block;
            for (const ord of r.ordinals) {
              expect(model.has(ord), `ordinal ${ord} handed out twice`).toBe(false);
              model.set(ord, `h${o.handle}`);
            }
            if (model.size < 16) expect(r.ordinals).toHaveLength(1);
          } else if (o.type === 'releaseHandle') {
            const r = releaseHandle(b, `h${o.handle}`);
            b = r.block;
            for (const ord of r.released) expect(model.delete(ord)).toBe(true);
          } else {
            const r = releaseOrdinals(b, [o.o]);
            b = r.block;
            expect(r.released.length === 1).toBe(model.delete(o.o));
          }
          expect(blockProblems(b)).toEqual([]);
          expect(usedCount(b)).toBe(model.size);
          for (const [ord, h] of model) expect(b.attributes[b.allocations[ord]!]?.handleID).toBe(h);
        }
        for (let h = 0; h <= 5; h++) b = releaseHandle(b, `h${h}`).block;
        expect(usedCount(b)).toBe(0);
        expect(new Set(b.unallocated).size).toBe(16);
        expect(b.attributes).toEqual([]);
      }),
    );
  });

  it('reuses a released address as late as possible', () => {
    let b = newBlock(mustParseCidr('10.0.0.0/30'), 'n1');
    b = allocateInBlock(b, 'a', undefined).block;
    b = releaseHandle(b, 'a').block;
    const r = allocateInBlock(b, 'b', undefined);
    expect(r.ordinals).toEqual([1]);
    expect(ordinalsOfHandle(r.block, 'b')).toEqual([1]);
  });

  it('hands out nothing from a full or deleted block', () => {
    let b = newBlock(mustParseCidr('10.0.0.0/31'), 'n1');
    b = allocateInBlock(b, 'a', undefined, 2).block;
    expect(allocateInBlock(b, 'b', undefined).ordinals).toEqual([]);
    expect(
      allocateInBlock({ ...newBlock(mustParseCidr('10.0.0.0/31'), 'n1'), deleted: true }, 'b', undefined)
        .ordinals,
    ).toEqual([]);
  });
});
