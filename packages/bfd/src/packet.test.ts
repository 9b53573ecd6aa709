import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type BfdPacket, decodePacket, encodePacket, State } from './packet.js';

// A Control packet written by hand from RFC 5880 §4.1: version 1, diag 0, state Up, C bit,
// multiplier 3, my 0x11223344, your 0x55667788, 300 ms / 300 ms / echo 0.
const UP_HEX = '20c80318' + '11223344' + '55667788' + '000493e0' + '000493e0' + '00000000';

const base: Omit<BfdPacket, 'version' | 'auth' | 'multipoint'> = {
  diag: 0,
  state: State.UP,
  poll: false,
  final: false,
  cpi: true,
  demand: false,
  detectMult: 3,
  myDiscr: 0x11223344,
  yourDiscr: 0x55667788,
  desiredMinTx: 300_000,
  requiredMinRx: 300_000,
  requiredMinEchoRx: 0,
};

describe('BFD Control packet codec', () => {
  it('encodes the bytes of RFC 5880 §4.1 and decodes them back', () => {
    const b = encodePacket(base);
    expect(b.toString('hex')).toBe(UP_HEX);
    const d = decodePacket(Buffer.from(UP_HEX, 'hex'));
    expect(d).toEqual({ ok: true, packet: { ...base, version: 1, auth: false, multipoint: false } });
  });

  it('round-trips any packet', () => {
    fc.assert(
      fc.property(
        fc.record({
          diag: fc.integer({ min: 0, max: 31 }),
          state: fc.constantFrom(State.ADMIN_DOWN, State.DOWN, State.INIT, State.UP),
          poll: fc.boolean(),
          cpi: fc.boolean(),
          demand: fc.boolean(),
          detectMult: fc.integer({ min: 1, max: 255 }),
          myDiscr: fc.integer({ min: 1, max: 0xffff_ffff }),
          yourDiscr: fc.integer({ min: 1, max: 0xffff_ffff }),
          desiredMinTx: fc.integer({ min: 0, max: 0xffff_ffff }),
          requiredMinRx: fc.integer({ min: 0, max: 0xffff_ffff }),
          requiredMinEchoRx: fc.integer({ min: 0, max: 0xffff_ffff }),
        }),
        (p) => {
          const full = { ...p, final: false };
          const d = decodePacket(encodePacket(full));
          expect(d).toEqual({ ok: true, packet: { ...full, version: 1, auth: false, multipoint: false } });
        },
      ),
    );
  });

  /** The fixture with byte `i` set to `v`. */
  const poke = (i: number, v: number) => (b: Buffer) => {
    b[i] = v;
    return b;
  };
  const bad: [string, (b: Buffer) => Buffer, RegExp][] = [
    ['a short packet', (b) => b.subarray(0, 20), /short/],
    ['version 2', poke(0, 0x40), /version 2/],
    ['a length field under 24', poke(3, 20), /length field 20/],
    ['a length field past the datagram', poke(3, 30), /length field 30/],
    ['detect multiplier 0', poke(2, 0), /multiplier 0/],
    ['the multipoint bit', poke(1, 0xc9), /multipoint/],
    ['my discriminator 0', (b) => b.fill(0, 4, 8), /my discriminator 0/],
    ['your discriminator 0 while Up', (b) => b.fill(0, 8, 12), /your discriminator 0 in state up/],
    [
      'authentication',
      (b) => Buffer.concat([poke(3, 26)(poke(1, 0xcc)(b)), Buffer.from('0102', 'hex')]),
      /authentication/,
    ],
  ];
  it.each(bad)('refuses %s', (_name, mutate, reason) => {
    const d = decodePacket(mutate(Buffer.from(UP_HEX, 'hex')));
    expect(d.ok).toBe(false);
    if (!d.ok) expect(d.reason).toMatch(reason);
  });

  it('accepts your discriminator 0 in Down', () => {
    const b = encodePacket({ ...base, state: State.DOWN, yourDiscr: 0 });
    expect(decodePacket(b).ok).toBe(true);
  });
});
