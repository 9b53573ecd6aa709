// fast-check arbitraries of address text, valid and invalid, for the parsers' property tests here and
// in test/ (every podnet parser, bgp-ts's included, must agree with @podnet/net on them).
import fc from 'fast-check';

const octet = fc.integer({ min: 0, max: 255 });
const group = fc.integer({ min: 0, max: 0xffff });
/** Mostly small groups, so that zero runs (and `::`) are common. */
const sparseGroup = fc.oneof(fc.constant(0), fc.constant(0), group, fc.integer({ min: 0, max: 15 }));

export const v4Text = fc.tuple(octet, octet, octet, octet).map((o) => o.join('.'));

/** IPv4 text that is almost right: leading zeros, out of range, wrong octet count, signs, hex. */
export const badV4Text = fc.oneof(
  fc
    .tuple(fc.array(octet, { minLength: 4, maxLength: 4 }), fc.nat(3), fc.constantFrom('0', '00'))
    .map(([o, i, z]) => o.map((x, k) => (k === i ? `${z}${x}` : String(x))).join('.')),
  fc
    .tuple(fc.array(octet, { minLength: 4, maxLength: 4 }), fc.nat(3), fc.integer({ min: 256, max: 9999 }))
    .map(([o, i, big]) => o.map((x, k) => (k === i ? big : x)).join('.')),
  fc.array(octet, { minLength: 1, maxLength: 6 }).map((o) => o.join('.')),
  fc.tuple(v4Text, fc.constantFrom('+', '-', '0x', ' ', '\t', '.')).map(([t, p]) => `${p}${t}`),
  fc.tuple(v4Text, fc.constantFrom(' ', '\n', '.', '.0', '/')).map(([t, p]) => `${t}${p}`),
  fc.tuple(octet, octet, octet).map((o) => `${o.join('.')}.`),
  fc.tuple(octet, octet, octet).map((o) => `${o.join('..')}`),
  fc.integer({ min: 0, max: 0xffffffff }).map(String),
);

function hex(g: number, pad: boolean, upper: boolean): string {
  const h = pad ? g.toString(16).padStart(4, '0') : g.toString(16);
  return upper ? h.toUpperCase() : h;
}

/** Renders 8 groups: compressing any run of zeros (not only the longest), padded, upper case, or with a dotted tail. */
const v6Render = fc
  .record({
    groups: fc.array(sparseGroup, { minLength: 8, maxLength: 8 }),
    pad: fc.boolean(),
    upper: fc.boolean(),
    dotted: fc.boolean(),
    compress: fc.boolean(),
    runStart: fc.nat(7),
    runLen: fc.integer({ min: 1, max: 8 }),
  })
  .map(({ groups, pad, upper, dotted, compress, runStart, runLen }) => {
    const parts = groups.map((g) => hex(g, pad, upper));
    if (dotted) {
      const [a, b] = [groups[6]!, groups[7]!];
      parts.splice(6, 2, `${a >> 8}.${a & 255}.${b >> 8}.${b & 255}`);
    }
    if (compress) {
      // Zero the run first, so `::` always stands for zeros.
      const end = Math.min(8, runStart + runLen);
      const n = dotted ? Math.min(end, 6) : end;
      if (n > runStart) {
        for (let i = runStart; i < n; i++) parts[i] = '0';
        return `${parts.slice(0, runStart).join(':')}::${parts.slice(n).join(':')}`;
      }
    }
    return parts.join(':');
  });

export const v6Text = fc.oneof(
  v6Render,
  fc.constantFrom('::', '::1', '1::', '::ffff:0.0.0.0', '::ffff:10.0.0.1', '::FFFF:192.168.1.1', '::1.2.3.4'),
  fc.constantFrom('1:2:3:4:5:6:7::', '::2:3:4:5:6:7:8', '64:ff9b::192.0.2.33', 'fe80::1', '2001:DB8::1'),
  v4Text.map((t) => `::ffff:${t}`),
);

/** IPv6 text that is almost right: zones, two `::`, long groups, bad tails, stray colons, spaces. */
export const badV6Text = fc.oneof(
  fc.tuple(v6Text, fc.constantFrom('%eth0', '%1', '%', '%lo%x')).map(([t, z]) => `${t}${z}`),
  fc.tuple(v6Text, fc.constantFrom(':', '::', ':0', ' ', '\n', '/', ']', '.1')).map(([t, s]) => `${t}${s}`),
  fc.tuple(v6Text, fc.constantFrom(':', ' ', '[', '0:')).map(([t, p]) => `${p}${t}`),
  badV4Text.map((t) => `::ffff:${t}`),
  fc.array(group, { minLength: 9, maxLength: 10 }).map((g) => g.map((x) => x.toString(16)).join(':')),
  fc.array(group, { minLength: 2, maxLength: 7 }).map((g) => g.map((x) => x.toString(16)).join(':')),
  fc.array(group, { minLength: 8, maxLength: 8 }).map((g) => `${g.map((x) => x.toString(16)).join(':')}::`),
  fc
    .tuple(fc.array(group, { minLength: 1, maxLength: 3 }), fc.array(group, { minLength: 1, maxLength: 3 }))
    .map(
      ([a, b]) => `${a.map((x) => x.toString(16)).join(':')}::${b[0]!.toString(16)}::${b.slice(1).join(':')}`,
    ),
  fc.integer({ min: 0x10000, max: 0xfffff }).map((g) => `fd00::${g.toString(16)}`),
  fc.constantFrom(':::', '1:::2', ':1::', '1:2:3:4:5:6:7:8:1.2.3.4', '::1.2.3', 'g::1', '::-1', '[::1]'),
  fc.constantFrom('fe80::1%eth0', '::ffff:010.0.0.1', '1:2:3:4:5:6:1.2.3.4:5', '0x1::', ' ::1', '::1 '),
);

const alphabet = fc.constantFrom(...'0123456789abcdefABCDEF:.%/[] x-+'.split(''));
/** Short strings over the characters of addresses: mostly invalid, some valid by chance. */
export const noise = fc.array(alphabet, { maxLength: 20 }).map((a) => a.join(''));

/** Any address text, valid or not. */
export const addressText = fc.oneof(v4Text, badV4Text, v6Text, badV6Text, noise);

const lenText = fc.oneof(
  fc.integer({ min: 0, max: 130 }).map(String),
  fc.constantFrom('', '08', '00', '032', '-1', '+8', ' 8', '8 ', '1e1', '0x8', '999999'),
);

/** CIDR text: any address text with any length text, or none. */
export const cidrText = fc.oneof(
  fc.tuple(addressText, lenText).map(([a, l]) => `${a}/${l}`),
  fc.tuple(v4Text, fc.integer({ min: 0, max: 33 })).map(([a, l]) => `${a}/${l}`),
  fc.tuple(v6Text, fc.integer({ min: 0, max: 129 })).map(([a, l]) => `${a}/${l}`),
  addressText,
  fc.tuple(addressText, lenText, lenText).map(([a, l, m]) => `${a}/${l}/${m}`),
);

const portText = fc.oneof(
  fc.integer({ min: 0, max: 70000 }).map(String),
  fc.constantFrom('', '0179', '00', '+179', ' 179', '179 ', '1e3', 'bgp'),
);

/** `ip:port` text in every shape: bare, v4:port, [v6]:port, [v4]:port, unbracketed v6:port, junk. */
export const addrPortText = fc.oneof(
  addressText,
  fc.tuple(fc.oneof(v4Text, badV4Text), portText).map(([a, p]) => `${a}:${p}`),
  fc.tuple(fc.oneof(v6Text, badV6Text, v4Text), portText).map(([a, p]) => `[${a}]:${p}`),
  fc.oneof(v6Text, v4Text).map((a) => `[${a}]`),
  fc.tuple(v6Text, portText).map(([a, p]) => `${a}:${p}`),
  fc.tuple(fc.constantFrom('fe80::1%eth0', 'fe80::1%'), portText).map(([a, p]) => `[${a}]:${p}`),
);
