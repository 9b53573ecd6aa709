import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { formatAddr, parseAddr, parsePrefix, prefixContains, tryParsePrefix } from './ip.js';

describe('parsePrefix', () => {
  it.each([
    ['10.65.0.7', '10.65.0.7/32'],
    ['10.65.0.7/26', '10.65.0.0/26'],
    ['0.0.0.0/0', '0.0.0.0/0'],
    ['fd00:0:0::1', 'fd00::1/128'],
    ['FD00:10::/122', 'fd00:10::/122'],
    ['2001:db8:0:0:1:0:0:1/128', '2001:db8::1:0:0:1/128'],
    ['2001:db8::ffff:1.2.3.4/128', '2001:db8::ffff:102:304/128'],
    ['::/0', '::/0'],
    ['1:0:0:2:0:0:0:3', '1:0:0:2::3/128'],
    ['::FFFF:a00:1', '::ffff:10.0.0.1/128'],
  ])('canonicalises %s as %s', (input, want) => {
    expect(parsePrefix(input).text).toBe(want);
  });

  it.each([
    '10.65.0/24',
    '10.65.0.256',
    '10.65.0.1/33',
    'fd00::1/129',
    'fd00:::1',
    '1:2:3:4:5:6:7:8:9',
    'fe80::1%eth0',
    '10.0.0.1/',
    '10..0.1',
    '1.2.3.4.5',
    '01234.1.1.1',
    '10.0.0.1/032',
    '010.0.0.1',
    '10.65.0.07/32',
    '10.0.0.0/08',
    ' 10.0.0.1',
    'pod',
    '',
  ])('rejects %j naming the field and value', (input) => {
    expect(tryParsePrefix(input)).toBeUndefined();
    expect(() => parsePrefix(input, 'ownedBlocks[0]')).toThrow(`ownedBlocks[0]: "${input}"`);
  });

  it('formats every IPv6 address so that it parses back to the same value', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: (1n << 128n) - 1n }), (v) => {
        expect(parseAddr(formatAddr(6, v))?.bits).toBe(v);
      }),
    );
  });

  it('agrees with the WHATWG URL parser on IPv6 canonical text', () => {
    fc.assert(
      fc.property(fc.ipV6(), (s) => {
        const a = parseAddr(s);
        expect(a).toBeDefined();
        fc.pre(a!.bits >> 32n !== 0xffffn); // mapped: RFC 5952 section 5's ::ffff:a.b.c.d, URL prints hex
        expect(`[${a!.text}]`).toBe(new URL(`http://[${s}]/`).hostname);
      }),
    );
  });

  it('masks IPv4 host bits like a reference computed with BigInt', () => {
    fc.assert(
      fc.property(fc.ipV4(), fc.integer({ min: 0, max: 32 }), (addr, len) => {
        const v = addr.split('.').reduce((acc, o) => (acc << 8n) | BigInt(o), 0n);
        const net = len === 0 ? 0n : v & (((1n << BigInt(len)) - 1n) << BigInt(32 - len));
        const p = parsePrefix(`${addr}/${len}`);
        expect(p.bits).toBe(net);
        expect(p.text).toBe(`${formatAddr(4, net)}/${len}`);
        expect(parseAddr(p.text.split('/')[0]!)?.bits).toBe(net);
      }),
    );
  });

  it('knows which prefixes contain which', () => {
    const block = parsePrefix('10.65.0.64/26');
    expect(prefixContains(block, parsePrefix('10.65.0.100'))).toBe(true);
    expect(prefixContains(block, parsePrefix('10.65.0.128'))).toBe(false);
    expect(prefixContains(block, parsePrefix('10.65.0.0/24'))).toBe(false);
    expect(prefixContains(parsePrefix('fd00::/64'), parsePrefix('fd00::5'))).toBe(true);
    expect(prefixContains(parsePrefix('0.0.0.0/0'), parsePrefix('::1'))).toBe(false);
  });
});
