// The nf_tables element codec, byte for byte against what the `nft` program sends for the same
// command (captured with strace by scripts/capture-nfnl.sh), and its reply decoder.
import { describe, expect, it } from 'vitest';
import { CAPTURED } from './__fixtures__/nfnl-captured.js';
import { NftError } from './errors.js';
import type { SetType } from './model.js';
import { decodeReplies, type ElementChange, encodeElementBatch, encodeGetGen } from './nfnl.js';

const TYPES: Record<string, SetType> = {
  s4: 'ipv4_addr',
  s6: 'ipv6_addr',
  si: 'ifname',
  sp: 'inet_service',
  m: 'ifname',
  c4: 'ifname . ipv4_addr',
  c6: 'ifname . ipv6_addr',
  cp: 'ifname . inet_service',
  c3: 'ipv4_addr . ipv4_addr . inet_service',
};

/** `add element inet t s4 { a, b }` → the change the encoder takes (the fixture's commands only). */
function changeOf(command: string): ElementChange {
  const m = /^(add|delete) element inet t (\w+) \{ (.*) \}$/.exec(command);
  if (!m) throw new Error(`fixture command not understood: ${command}`);
  const [, op, set, body] = m;
  const elements = body!.split(', ').map((e) => e.replaceAll('"', ''));
  return {
    set: set!,
    kind: set === 'm' ? 'map' : 'set',
    type: TYPES[set!]!,
    add: op === 'add' ? elements : [],
    delete: op === 'delete' ? elements : [],
  };
}

/**
 * nft names the set by name and also by NFTA_SET_ELEM_LIST_SET_ID (4), an id for sets created in
 * the same batch; the kernel looks the name up first, and podnet never adds elements to a set it
 * creates in the same batch, so the encoder leaves it out. This drops it from nft's bytes and
 * fixes the lengths; every other byte is compared as captured.
 */
function withoutSetId(hex: string): string {
  const b = Buffer.from(hex, 'hex');
  const out: Buffer[] = [];
  let off = 0;
  while (off < b.length) {
    const len = b.readUInt32LE(off);
    const msg = b.subarray(off, off + len);
    const parts = [msg.subarray(0, 20)];
    let a = 20;
    while (a < msg.length) {
      const alen = msg.readUInt16LE(a);
      const type = msg.readUInt16LE(a + 2) & 0x3fff;
      const padded = (alen + 3) & ~3;
      if (type !== 4) parts.push(msg.subarray(a, a + padded));
      a += padded;
    }
    const m = Buffer.concat(parts);
    m.writeUInt32LE(m.length, 0);
    out.push(m);
    off += (len + 3) & ~3;
  }
  return Buffer.concat(out).toString('hex');
}

describe('encodeElementBatch', () => {
  it.each(CAPTURED)('sends what nft sends for `$command`', ({ command, hex }) => {
    expect(hex.length).toBeGreaterThan(0);
    const batch = encodeElementBatch('t', [changeOf(command)], 0, { ack: false });
    expect(batch.bytes.toString('hex')).toBe(withoutSetId(hex));
    expect(batch.first).toBe(0);
    expect(batch.last).toBe(2);
    expect(batch.parts).toHaveLength(1);
  });

  it('asks for an ACK on every element message, and not on the batch markers', () => {
    const b = encodeElementBatch('t', [changeOf('add element inet t s4 { 10.65.0.1 }')], 7);
    const flags = (i: number) => b.bytes.readUInt16LE(i + 6);
    expect(flags(0)).toBe(0x1); // BATCH_BEGIN: REQUEST
    expect(flags(20)).toBe(0x1 | 0x4 | 0x400); // NEWSETELEM: REQUEST | ACK | CREATE
    expect(b.bytes.readUInt32LE(20 + 8)).toBe(8);
    expect(b.parts).toEqual([{ seq: 8, op: 'add', set: 's4', elements: ['10.65.0.1'] }]);
    expect(b.last).toBe(9);
  });

  it('puts every deletion before every addition, so a map key can change its verdict', () => {
    const b = encodeElementBatch(
      'podnet',
      [
        { set: 'a', kind: 'set', type: 'ipv4_addr', add: ['10.0.0.2'], delete: [] },
        { set: 'm', kind: 'map', type: 'ifname', add: ['pn1 : drop'], delete: ['pn1 : accept'] },
      ],
      1,
    );
    expect(b.parts.map((p) => `${p.op} ${p.set}`)).toEqual(['delete m', 'add a', 'add m']);
    expect(b.parts.map((p) => p.seq)).toEqual([2, 3, 4]);
  });

  it('splits a large change over several messages of one batch (a nest length is 16 bits)', () => {
    const add = Array.from({ length: 1000 }, (_, i) => `10.0.${i >> 8}.${i & 255}`);
    const b = encodeElementBatch(
      'podnet',
      [{ set: 'a', kind: 'set', type: 'ipv4_addr', add, delete: [] }],
      1,
    );
    expect(b.parts.map((p) => p.elements.length)).toEqual([256, 256, 256, 232]);
    expect(b.parts.flatMap((p) => p.elements)).toEqual(add);
  });

  it.each([
    ['ipv4_addr', '10.0.0.300'],
    ['ipv4_addr', 'fd00::1'],
    ['ipv6_addr', '10.0.0.1'],
    ['inet_service', '0'],
    ['inet_service', '65536'],
    ['ifname', 'a-name-too-long-for-linux'],
    ['ifname', ''],
  ] as [SetType, string][])('refuses a %s element %j naming it', (type, value) => {
    const err = (() => {
      try {
        encodeElementBatch('t', [{ set: 's', kind: 'set', type, add: [value], delete: [] }], 1);
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(NftError);
    expect((err as NftError).code).toBe('NFT_ERR_INVALID');
    expect((err as NftError).message).toContain(JSON.stringify(value));
  });
});

describe('GETGEN and replies', () => {
  it('encodes NFT_MSG_GETGEN as nft does', () => {
    // nft's own GETGEN (strace: nlmsg_type=NFNL_SUBSYS_NFTABLES<<8|NFT_MSG_GETGEN, NLM_F_REQUEST,
    // nfgen_family=AF_UNSPEC, res_id=0), with seq 5.
    expect(encodeGetGen(5).toString('hex')).toBe('14000000100a0100050000000000000000000000');
  });

  it('decodes an ACK, an error with its extended ACK, a NEWGEN and a truncated datagram', () => {
    const ack = Buffer.alloc(36);
    ack.writeUInt32LE(36, 0);
    ack.writeUInt16LE(2, 4); // NLMSG_ERROR
    ack.writeInt32LE(0, 16);
    ack.writeUInt32LE(20, 20);
    ack.writeUInt32LE(9, 28); // request seq
    const err = Buffer.from(ack);
    err.writeInt32LE(-2, 16);
    const gen = Buffer.from(
      '1c000000 0f0a0000 0b000000 00000000 00000000 0800 0100 0000002a'.replace(/ /g, ''),
      'hex',
    );
    expect(decodeReplies(Buffer.concat([ack, err, gen]))).toEqual([
      { type: 'ack', seq: 9 },
      { type: 'error', seq: 9, errno: 2 },
      { type: 'gen', seq: 11, id: 42 },
    ]);
    expect(decodeReplies(gen.subarray(0, 10))).toEqual([
      { type: 'malformed', reason: expect.stringContaining('truncated') },
    ]);
  });
});
