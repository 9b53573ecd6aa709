import { isIPv4 as nodeIsIPv4, isIPv6 as nodeIsIPv6 } from 'node:net';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { addressText, addrPortText, cidrText, v4Text, v6Text } from './__fixtures__/inputs.js';
import {
  cidrContains,
  cidrsOverlap,
  formatCidr,
  formatIp,
  ipFromBytes,
  ipToBytes,
  mustParseAddrPort,
  mustParseCidr,
  mustParseIp,
  NetError,
  parseAddrPort,
  parseCidr,
  parseIp,
  parseIpResult,
} from './index.js';

const canon = (s: string, zone = false) => {
  const ip = parseIp(s, { zone });
  return ip && formatIp(ip);
};

describe('parseIp', () => {
  it.each([
    ['10.0.0.1', '10.0.0.1'],
    ['0.0.0.0', '0.0.0.0'],
    ['255.255.255.255', '255.255.255.255'],
    ['::', '::'],
    ['::1', '::1'],
    ['2001:DB8:0:0:0:0:0:1', '2001:db8::1'],
    ['2001:0db8:0000:0000:0001:0000:0000:0001', '2001:db8::1:0:0:1'],
    ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'],
    ['1:2:3:4:5:6:7::', '1:2:3:4:5:6:7:0'],
    ['::2:3:4:5:6:7:8', '0:2:3:4:5:6:7:8'],
    ['::ffff:10.0.0.1', '::ffff:10.0.0.1'],
    ['::FFFF:a00:1', '::ffff:10.0.0.1'],
    ['64:ff9b::192.0.2.33', '64:ff9b::c000:221'],
    ['::1.2.3.4', '::102:304'],
  ])('reads %s as %s', (text, want) => {
    expect(canon(text)).toBe(want);
  });

  it.each([
    ['010.0.0.1', 'leading zero'],
    ['10.0.0.01', 'leading zero'],
    ['10.0.0.256', 'above 255'],
    ['10.0.0', 'fewer than four'],
    ['10.0.0.1.2', 'more than four'],
    ['10..0.1', 'empty IPv4 octet'],
    [' 10.0.0.1', 'unexpected character'],
    ['10.0.0.1\n', 'unexpected character'],
    ['0x0a.0.0.1', 'unexpected character'],
    ['', 'empty'],
    ['fe80::1%eth0', 'zone'],
    ['::ffff:010.0.0.1', 'leading zero'],
    ['1::2::3', 'more than one ::'],
    [':::', 'more than one ::'],
    [':1::', 'leading single colon'],
    ['1::2:', 'trailing single colon'],
    ['1:2:3:4:5:6:7:8::', ':: stands for no group'],
    ['1:2:3:4:5:6:7:8:9', 'more than eight groups'],
    ['1:2:3:4:5:6:7', 'fewer than eight groups'],
    ['fd00::12345', 'more than four hex digits'],
    ['1:2:3:4:5:6:7:1.2.3.4', 'after the seventh group'],
    ['::1.2.3.4:5', 'embedded IPv4'],
    ['g::1', 'unexpected character'],
    ['[::1]', 'unexpected character'],
  ])('refuses %s (%s)', (text, reason) => {
    const r = parseIpResult(text);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.reason).toContain(reason);
  });

  it('accepts a zone only when asked, and only on IPv6', () => {
    expect(canon('fe80::1%eth0', true)).toBe('fe80::1%eth0');
    expect(parseIp('fe80::1%eth0', { zone: true })?.zone).toBe('eth0');
    expect(parseIp('fe80::1%', { zone: true })).toBeUndefined();
    expect(parseIp('10.0.0.1%eth0', { zone: true })).toBeUndefined();
  });

  it('agrees with Node (inet_pton-based isIP, zones aside) on every input', () => {
    fc.assert(
      fc.property(addressText, (s) => {
        const want = nodeIsIPv4(s) || (nodeIsIPv6(s) && !s.includes('%'));
        expect(parseIp(s) !== undefined, s).toBe(want);
      }),
      { numRuns: 20_000 },
    );
  });

  it('reads back every address it formats, and formatting is idempotent', () => {
    fc.assert(
      fc.property(fc.oneof(v4Text, v6Text), (s) => {
        const ip = parseIp(s)!;
        expect(ip, s).toBeDefined();
        const text = formatIp(ip);
        expect(parseIp(text)).toEqual(ip);
        expect(formatIp(parseIp(text)!)).toBe(text);
        expect(ipFromBytes(ipToBytes(ip))).toEqual(ip);
      }),
      { numRuns: 5_000 },
    );
  });

  it('formats IPv6 as the WHATWG URL parser does (RFC 5952), mapped addresses aside', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: (1n << 128n) - 1n }), (value) => {
        fc.pre(value >> 32n !== 0xffffn);
        const text = formatIp({ family: 6, value });
        expect(`[${text}]`).toBe(new URL(`http://[${text}]/`).host);
      }),
      { numRuns: 5_000 },
    );
  });
});

describe('parseCidr', () => {
  it.each([
    ['10.0.0.0/8', 'reject', '10.0.0.0/8'],
    ['10.1.2.3/8', 'clear', '10.0.0.0/8'],
    ['10.1.2.3/8', 'keep', '10.1.2.3/8'],
    ['fd00:0::1/64', 'clear', 'fd00::/64'],
    ['0.0.0.0/0', 'reject', '0.0.0.0/0'],
    ['::/0', 'reject', '::/0'],
    ['::ffff:0:0/96', 'reject', '::ffff:0.0.0.0/96'],
  ] as const)('reads %s with host bits %s as %s', (text, hostBits, want) => {
    expect(formatCidr(parseCidr(text, { hostBits })!)).toBe(want);
  });

  it.each([
    ['10.1.2.3/8', 'host bits set (the network is 10.0.0.0/8)'],
    ['010.0.0.0/8', 'leading zero in an IPv4 octet'],
    ['10.0.0.0/08', 'leading zero in the prefix length'],
    ['10.0.0.0/33', 'above 32'],
    ['fd00::/129', 'above 128'],
    ['10.0.0.0/', 'empty prefix length'],
    ['10.0.0.0/ 8', 'unexpected character'],
    ['10.0.0.0/8/8', 'unexpected character'],
    ['10.0.0.0', 'no /prefix-length'],
    ['fe80::%eth0/64', 'zone'],
  ])('refuses %s: %s', (text, reason) => {
    const call = () => mustParseCidr(text, 'spec.cidr', { hostBits: 'reject' });
    expect(call).toThrow(
      `spec.cidr: ${JSON.stringify(text)} is not a network CIDR (address/length, host bits zero) (`,
    );
    expect(call).toThrow(reason);
  });

  it('reads a bare address as a host prefix only when asked', () => {
    expect(formatCidr(parseCidr('fd00::1', { hostBits: 'reject', bare: true })!)).toBe('fd00::1/128');
    expect(parseCidr('10.0.0.1', { hostBits: 'clear' })).toBeUndefined();
  });

  it('clear is keep with the host bits cleared, and reject refuses exactly when they differ', () => {
    fc.assert(
      fc.property(cidrText, (s) => {
        const keep = parseCidr(s, { hostBits: 'keep' });
        const clear = parseCidr(s, { hostBits: 'clear' });
        const reject = parseCidr(s, { hostBits: 'reject' });
        expect(clear === undefined).toBe(keep === undefined);
        if (!keep || !clear) return;
        expect(cidrContains(clear, keep)).toBe(true);
        expect(clear.len).toBe(keep.len);
        expect(reject === undefined).toBe(clear.addr !== keep.addr);
      }),
      { numRuns: 10_000 },
    );
  });

  it('contains and overlaps agree with counting addresses (small IPv4 prefixes)', () => {
    const small = fc
      .tuple(fc.integer({ min: 0, max: 255 }), fc.integer({ min: 24, max: 32 }))
      .map(([last, len]) => parseCidr(`10.0.0.${last}/${len}`, { hostBits: 'clear' })!);
    const addrs = (c: ReturnType<typeof parseCidr> & {}) => {
      const n = 2 ** (32 - c.len);
      return new Set(Array.from({ length: n }, (_, i) => Number(c.addr) + i));
    };
    fc.assert(
      fc.property(small, small, (a, b) => {
        const x = addrs(a);
        const y = addrs(b);
        expect(cidrContains(a, b)).toBe([...y].every((v) => x.has(v)));
        expect(cidrsOverlap(a, b)).toBe([...y].some((v) => x.has(v)));
      }),
    );
    expect(cidrContains(parseCidr('10.0.0.0/8', { hostBits: 'reject' })!, parseIp('10.9.9.9')!)).toBe(true);
    expect(cidrContains(parseCidr('::/0', { hostBits: 'reject' })!, parseIp('10.9.9.9')!)).toBe(false);
  });
});

describe('parseAddrPort', () => {
  const show = (s: string, port: 'optional' | 'required' = 'optional') => {
    const r = parseAddrPort(s, { port });
    return r && { ip: formatIp(r.ip), ...(r.port !== undefined ? { port: r.port } : {}) };
  };
  it.each([
    ['10.0.0.1', { ip: '10.0.0.1' }],
    ['10.0.0.1:179', { ip: '10.0.0.1', port: 179 }],
    ['[FD00::1]:1179', { ip: 'fd00::1', port: 1179 }],
    ['fd00::1', { ip: 'fd00::1' }],
    ['fd00::1:179', { ip: 'fd00::1:179' }],
    ['[::ffff:10.0.0.1]:179', { ip: '::ffff:10.0.0.1', port: 179 }],
    ['[fd00::1]', undefined],
    ['[10.0.0.1]:179', undefined],
    ['10.0.0.1:0', undefined],
    ['10.0.0.1:65536', undefined],
    ['10.0.0.1:0179', undefined],
    ['10.0.0.1:', undefined],
    ['010.0.0.1:179', undefined],
    [' 10.0.0.1:179', undefined],
    ['[fe80::1%eth0]:179', undefined],
    ['router:179', undefined],
  ])('%s', (text, want) => {
    expect(show(text)).toEqual(want);
  });

  it('requires a port when asked, and names the field and the value', () => {
    expect(show('10.0.0.1', 'required')).toBeUndefined();
    expect(() => mustParseAddrPort('fd00::1', '--listen', { port: 'required' })).toThrow(
      '--listen: "fd00::1" is not an ip:port or [ipv6]:port (no port (write [v6]:port))',
    );
  });

  it('reads what it formats: ip:port and [ipv6]:port', () => {
    fc.assert(
      fc.property(addrPortText, (s) => {
        const r = parseAddrPort(s, { port: 'optional' });
        if (!r) return;
        const ip = formatIp(r.ip);
        const text = r.port === undefined ? ip : r.ip.family === 6 ? `[${ip}]:${r.port}` : `${ip}:${r.port}`;
        expect(parseAddrPort(text, { port: 'optional' })).toEqual(r);
      }),
      { numRuns: 5_000 },
    );
  });
});

describe('errors', () => {
  it('a NetError carries code, field, value and reason', () => {
    try {
      mustParseIp('010.0.0.1', 'spec.peerIP');
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(NetError);
      expect(err).toMatchObject({
        code: 'NET_ERR_INVALID',
        field: 'spec.peerIP',
        value: '010.0.0.1',
        reason: 'leading zero in an IPv4 octet',
      });
    }
  });
});
