// The renderer without a kernel: golden transaction text, validation errors naming field and value,
// and the comparison of a model with a parsed `nft -j` listing.
import { describe, expect, it } from 'vitest';
import { natModel } from './__fixtures__/models.js';
import { NftError } from './errors.js';
import type { Rule, Table } from './model.js';
import { parseListing } from './observed.js';
import { compare, renderElements, renderFull, renderRule, structureKey, validate } from './render.js';

const GOLDEN_FULL = `add table inet podnet
flush table inet podnet
add chain inet podnet nat-postrouting { type nat hook postrouting priority srcnat; policy accept; }
add chain inet podnet forward { type filter hook forward priority filter; policy accept; }
add chain inet podnet pod-ingress
add set inet podnet pools4 { type ipv4_addr; flags interval; comment "IPv4 pools"; }
flush set inet podnet pools4
add element inet podnet pools4 { 10.65.0.0/16 }
add set inet podnet pools6 { type ipv6_addr; flags interval; }
flush set inet podnet pools6
add element inet podnet pools6 { fd00:65::/48 }
add set inet podnet dns-ports { type inet_service; }
flush set inet podnet dns-ports
add element inet podnet dns-ports { 53 }
add set inet podnet pod-ifs { type ifname; }
flush set inet podnet pod-ifs
add element inet podnet pod-ifs { "pn0001" }
add map inet podnet pod-policy { type ipv4_addr : verdict; }
flush map inet podnet pod-policy
add element inet podnet pod-policy { 10.65.0.1 : jump pod-ingress }
add rule inet podnet nat-postrouting ip saddr @pools4 ip daddr != @pools4 oifname != "pn*" counter masquerade comment "pods to outside every pool"
add rule inet podnet forward ct state established,related accept
add rule inet podnet forward iifname "pn*" ip saddr vmap @pod-policy
add rule inet podnet pod-ingress udp dport @dns-ports accept
add rule inet podnet pod-ingress tcp dport 22 counter drop
add rule inet podnet pod-ingress return
`;

describe('renderFull', () => {
  it('renders a first sync as add table, flush table, then every chain, set and rule', () => {
    expect(renderFull(validate(natModel()))).toBe(GOLDEN_FULL);
  });

  it('with a kernel listing: flushes kept sets, deletes stale and changed objects, adds nothing twice', () => {
    const observed = parseListing(
      JSON.stringify({
        nftables: [
          { table: { family: 'inet', name: 'podnet' } },
          { chain: { family: 'inet', table: 'podnet', name: 'old-chain' } },
          {
            chain: {
              family: 'inet',
              table: 'podnet',
              name: 'forward',
              type: 'filter',
              hook: 'forward',
              prio: 10,
              policy: 'accept',
            },
          },
          {
            set: {
              family: 'inet',
              table: 'podnet',
              name: 'pools4',
              type: 'ipv4_addr',
              flags: ['interval'],
              comment: 'IPv4 pools',
            },
          },
          { set: { family: 'inet', table: 'podnet', name: 'pools6', type: 'ipv6_addr' } },
          { set: { family: 'inet', table: 'podnet', name: 'gone', type: 'ifname' } },
        ],
      }),
      'podnet',
    );
    const lines = renderFull(validate(natModel()), observed).split('\n');
    expect(lines.slice(0, 6)).toEqual([
      'add table inet podnet',
      'flush table inet podnet',
      'flush set inet podnet pools4',
      'delete set inet podnet pools6', // lost its interval flag: recreated
      'delete set inet podnet gone',
      'delete chain inet podnet old-chain',
    ]);
    expect(lines[6]).toBe('delete chain inet podnet forward'); // priority 10, want 0
    expect(lines).not.toContain('flush set inet podnet dns-ports'); // new: nothing to flush
  });
});

describe('renderRule', () => {
  it.each<[string, Parameters<typeof renderRule>[0], string]>([
    [
      'masquerade fully-random',
      { action: { kind: 'masquerade', fullyRandom: true } },
      'masquerade fully-random',
    ],
    [
      'ip6 daddr in a set, goto',
      { match: [{ kind: 'addr', field: 'ip6 daddr', set: 's6' }], action: { kind: 'goto', chain: 'c' } },
      'ip6 daddr @s6 goto c',
    ],
    [
      'iifname in a set',
      { match: [{ kind: 'ifset', field: 'iifname', set: 'ifs', negate: true }], action: { kind: 'drop' } },
      'iifname != @ifs drop',
    ],
    [
      'l4proto only, counter',
      { match: [{ kind: 'l4', proto: 'sctp' }], counter: true },
      'meta l4proto sctp counter',
    ],
    [
      'a port range',
      { match: [{ kind: 'l4', proto: 'udp', dport: { range: [8000, 8100] } }], action: { kind: 'return' } },
      'udp dport 8000-8100 return',
    ],
    [
      'ct state new, jump',
      { match: [{ kind: 'ct', states: ['new'] }], action: { kind: 'jump', chain: 'x' } },
      'ct state new jump x',
    ],
  ])('%s', (_name, rule, text) => {
    expect(renderRule(rule)).toBe(text);
  });
});

describe('validate', () => {
  const withSet = (elements: string[], interval = true): Table => {
    const m = natModel();
    m.sets![0] = { ...m.sets![0]!, elements, interval };
    return m;
  };
  it.each<[string, Table, string]>([
    [
      'a keyword as chain name',
      { chains: [{ name: 'fwd', rules: [] }] },
      'chains[0].name: "fwd" is an nft keyword',
    ],
    [
      'a name with a space',
      { chains: [{ name: 'my chain', rules: [] }] },
      'chains[0].name: "my chain" is not a name',
    ],
    ['a table name with a quote', { name: 'po"d', chains: [] }, 'table.name: "po\\"d" is not a name'],
    [
      'a comment with a quote',
      { chains: [{ name: 'c', rules: [{ action: { kind: 'accept' }, comment: 'a "b"' }] }] },
      'chains[0].rules[0].comment: "a \\"b\\"" is not a comment',
    ],
    [
      'an IPv6 element in an IPv4 set',
      withSet(['fd00::1']),
      'sets[0].elements[0]: "fd00::1" is not a ipv4_addr element: not an IPv4 address',
    ],
    [
      'host bits under the prefix',
      withSet(['10.65.0.5/16']),
      'sets[0].elements[0]: "10.65.0.5/16" is not a ipv4_addr element: host bits set',
    ],
    [
      'a prefix without interval',
      withSet(['10.65.0.0/16'], false),
      'sets[0].elements[0]: "10.65.0.0/16" is not a ipv4_addr element: a prefix in a set without `interval`',
    ],
    [
      'overlapping prefixes',
      withSet(['10.0.0.0/8', '10.65.0.0/16']),
      'sets[0].elements: "10.65.0.0/16" overlaps 10.0.0.0/8',
    ],
    [
      'a jump to a missing chain',
      { chains: [{ name: 'c', rules: [{ action: { kind: 'jump', chain: 'nope' } }] }] },
      'chains[0].rules[0].action.chain: "nope" is not a chain of the table',
    ],
    [
      'a match on a set of another type',
      {
        chains: [{ name: 'c', rules: [{ match: [{ kind: 'addr', field: 'ip6 saddr', set: 's' }] }] }],
        sets: [{ name: 's', type: 'ipv4_addr', elements: [] }],
      },
      'chains[0].rules[0].match[0].set: "s" is a set of ipv4_addr, not ipv6_addr',
    ],
    [
      'a rule that does nothing',
      { chains: [{ name: 'c', rules: [{}] }] },
      'chains[0].rules[0]: {} does nothing',
    ],
    [
      'an interface name too long',
      {
        chains: [
          {
            name: 'c',
            rules: [{ match: [{ kind: 'ifname', field: 'iifname', name: 'a-very-long-ifname*' }] }],
          },
        ],
      },
      'chains[0].rules[0].match[0].name: "a-very-long-ifname*" is not an interface name',
    ],
    [
      'a port out of range',
      { chains: [], sets: [{ name: 'p', type: 'inet_service', elements: ['70000'] }] },
      'sets[0].elements[0]: "70000" is not a inet_service element',
    ],
    [
      'a port range ending below its start',
      {
        chains: [
          { name: 'c', rules: [{ match: [{ kind: 'l4', proto: 'tcp', dport: { range: [90, 80] } }] }] },
        ],
      },
      'chains[0].rules[0].match[0].dport.range: [90,80] is not a port range',
    ],
  ])('refuses %s, naming the field and the value', (_name, model, message) => {
    let caught: unknown;
    try {
      validate(model);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(NftError);
    expect((caught as NftError).code).toBe('NFT_ERR_INVALID');
    expect((caught as NftError).message).toContain(message);
  });

  it('canonicalises and deduplicates elements', () => {
    const t = validate({
      chains: [],
      sets: [
        {
          name: 's',
          type: 'ipv6_addr',
          interval: true,
          elements: ['FD00:0::1/128', 'fd00::1', 'fd01:0:0::/64'],
        },
      ],
    });
    expect(t.sets[0]!.elements).toEqual(['fd00::1', 'fd01::/64']);
  });
});

describe('validate with frozen element arrays', () => {
  const model = (elements: string[]): Table => ({
    name: 't',
    chains: [],
    sets: [{ name: 'peers', type: 'ipv4_addr', interval: true, elements }],
  });

  it('checks a frozen array once and hands back the same canonical array', () => {
    const elements = Object.freeze(['10.0.0.0/24', '10.0.1.7']) as string[];
    const a = validate(model(elements));
    const b = validate(model(elements));
    expect(a.sets[0]!.elements).toEqual(['10.0.0.0/24', '10.0.1.7']);
    expect(b.sets[0]!.elements).toBe(a.sets[0]!.elements);
  });

  it('still rejects a bad element or an overlap in a frozen array, every time, naming it', () => {
    const bad = Object.freeze(['10.0.0.0/24', '10.0.0.300']) as string[];
    expect(() => validate(model(bad))).toThrow(/sets\[0\]\.elements\[1\].*10\.0\.0\.300/);
    expect(() => validate(model(bad))).toThrow(/10\.0\.0\.300/);
    const overlap = Object.freeze(['10.0.0.0/24', '10.0.0.9']) as string[];
    expect(() => validate(model(overlap))).toThrow(/overlaps 10\.0\.0\.0\/24/);
    expect(() => validate(model(overlap))).toThrow(/overlaps/);
  });

  it('checks an array that is not frozen on every call (it may have changed)', () => {
    const elements = ['10.0.0.1'];
    const a = validate(model(elements));
    elements.push('10.0.0.0/24');
    expect(() => validate(model(elements))).toThrow(/overlaps/);
    expect(a.sets[0]!.elements).toEqual(['10.0.0.1']);
  });
});

describe('validate and structureKey with frozen rules arrays', () => {
  const chain = (rules: Rule[]): Table => ({
    name: 't',
    chains: [
      { name: 'c', rules },
      { name: 'd', rules: [{ action: { kind: 'return' } }] },
    ],
    sets: [{ name: 'peers', type: 'ipv4_addr', elements: [] }],
  });
  const allow: Rule = {
    match: [{ kind: 'addr', field: 'ip saddr', set: 'peers' }],
    action: { kind: 'jump', chain: 'd' },
  };

  it('checks what a frozen array refers to against every table, naming the field', () => {
    const rules = Object.freeze([allow]) as Rule[];
    validate(chain(rules));
    const noSet: Table = { ...chain(rules), sets: [] };
    expect(() => validate(noSet)).toThrow(
      /chains\[0\]\.rules\[0\]\.match\[0\]\.set: "peers" is not a set of the table/,
    );
    const noChain: Table = { ...chain(rules), chains: [{ name: 'c', rules }] };
    expect(() => validate(noChain)).toThrow(/chains\[0\]\.rules\[0\]\.action\.chain: "d" is not a chain/);
  });

  it('still rejects a frozen array with a bad rule, every time', () => {
    const rules = Object.freeze([{ match: [{ kind: 'l4', proto: 'tcp', dport: 70000 }] }]) as Rule[];
    expect(() => validate(chain(rules))).toThrow(/chains\[0\]\.rules\[0\]\.match\[0\]\.dport: 70000/);
    expect(() => validate(chain(rules))).toThrow(/70000/);
  });

  it('keys a frozen array by identity and one that is not frozen by its content', () => {
    const rules = Object.freeze([allow]) as Rule[];
    const key = structureKey(validate(chain(rules)));
    expect(structureKey(validate(chain(rules)))).toBe(key);
    expect(key).not.toContain('saddr'); // the frozen rules stand as their id
    const other = Object.freeze([{ ...allow, comment: 'x' }]) as Rule[];
    expect(structureKey(validate(chain(other)))).not.toBe(key);
    const open = [allow];
    const before = structureKey(validate(chain(open)));
    open.push({ action: { kind: 'drop' } });
    expect(structureKey(validate(chain(open)))).not.toBe(before);
  });
});

describe('compare and renderElements', () => {
  const listing = (pools: unknown[], ports: unknown[], rulesInForward: number) =>
    JSON.stringify({
      nftables: [
        { metainfo: { version: '1.0.6' } },
        { table: { family: 'inet', name: 'podnet' } },
        {
          chain: {
            family: 'inet',
            table: 'podnet',
            name: 'nat-postrouting',
            type: 'nat',
            hook: 'postrouting',
            prio: 100,
            policy: 'accept',
          },
        },
        {
          chain: {
            family: 'inet',
            table: 'podnet',
            name: 'forward',
            type: 'filter',
            hook: 'forward',
            prio: 0,
            policy: 'accept',
          },
        },
        { chain: { family: 'inet', table: 'podnet', name: 'pod-ingress' } },
        {
          set: {
            family: 'inet',
            table: 'podnet',
            name: 'pools4',
            type: 'ipv4_addr',
            flags: ['interval'],
            comment: 'IPv4 pools',
            elem: pools,
          },
        },
        {
          set: {
            family: 'inet',
            table: 'podnet',
            name: 'pools6',
            type: 'ipv6_addr',
            flags: ['interval'],
            elem: [{ prefix: { addr: 'fd00:65::', len: 48 } }],
          },
        },
        { set: { family: 'inet', table: 'podnet', name: 'dns-ports', type: 'inet_service', elem: ports } },
        { set: { family: 'inet', table: 'podnet', name: 'pod-ifs', type: 'ifname', elem: ['pn0001'] } },
        {
          map: {
            family: 'inet',
            table: 'podnet',
            name: 'pod-policy',
            type: 'ipv4_addr',
            map: 'verdict',
            elem: [['10.65.0.1', { jump: { target: 'pod-ingress' } }]],
          },
        },
        // Another table's objects are never podnet's.
        {
          chain: {
            family: 'inet',
            table: 'other',
            name: 'input',
            type: 'filter',
            hook: 'input',
            prio: 0,
            policy: 'drop',
          },
        },
        { rule: { family: 'inet', table: 'podnet', chain: 'nat-postrouting', handle: 9, expr: [] } },
        ...Array.from({ length: rulesInForward }, (_, i) => ({
          rule: { family: 'inet', table: 'podnet', chain: 'forward', handle: 10 + i, expr: [] },
        })),
        ...[1, 2, 3].map((h) => ({
          rule: { family: 'inet', table: 'podnet', chain: 'pod-ingress', handle: 20 + h, expr: [] },
        })),
      ],
    });

  it('sees no drift when the kernel holds the model', () => {
    const t = validate(natModel());
    expect(
      compare(t, parseListing(listing([{ prefix: { addr: '10.65.0.0', len: 16 } }], [53], 2), 'podnet')),
    ).toEqual({
      structural: [],
      elements: [],
    });
  });

  it('reports a missing rule as structural drift and element differences per set', () => {
    const t = validate(natModel(['10.65.0.0/16', '10.66.0.0/16'], ['53']));
    const d = compare(
      t,
      parseListing(
        listing([{ prefix: { addr: '10.65.0.0', len: 16 } }, '192.0.2.1'], [53, 5353], 1),
        'podnet',
      ),
    );
    expect(d.structural).toEqual(['chain forward has 1 rules, want 2']);
    expect(d.elements).toEqual([
      { set: 'pools4', add: ['10.66.0.0/16'], delete: ['192.0.2.1'] },
      { set: 'dns-ports', add: [], delete: ['5353'] },
    ]);
    expect(renderElements(t, d.elements)).toBe(
      'delete element inet podnet pools4 { 192.0.2.1 }\n' +
        'delete element inet podnet dns-ports { 5353 }\n' +
        'add element inet podnet pools4 { 10.66.0.0/16 }\n',
    );
  });

  it('reports a missing table', () => {
    expect(compare(validate(natModel()), null).structural).toEqual(['table inet podnet is missing']);
  });
});

describe('concatenated keys', () => {
  /** Per-pod policy state as elements of sets keyed by `ifname . address` / `ifname . port`. */
  const concatModel = (allow4: string[], deny: string[] = ['pn0001 . 25']): Table => ({
    chains: [
      {
        name: 'forward',
        base: { type: 'filter', hook: 'forward', priority: 'filter' },
        rules: [
          {
            match: [{ kind: 'concat', fields: ['oifname', 'ip saddr'], set: 'in-allow4' }],
            action: { kind: 'accept' },
          },
          {
            match: [
              { kind: 'l4', proto: 'tcp' },
              { kind: 'concat', fields: ['iifname', 'th dport'], set: 'out-deny' },
            ],
            counter: true,
            action: { kind: 'drop' },
          },
        ],
      },
    ],
    sets: [
      { name: 'in-allow4', type: 'ifname . ipv4_addr', elements: allow4 },
      { name: 'out-deny', type: 'ifname . inet_service', elements: deny },
    ],
  });

  it('renders the set type, quoted ifname fields of elements and the concatenated match', () => {
    const t = validate(concatModel(['pn0001 . 10.65.0.2', 'pn0001 . 10.65.0.2']));
    expect(t.sets[0]!.elements).toEqual(['pn0001 . 10.65.0.2']);
    const text = renderFull(t);
    expect(text).toContain('add set inet podnet in-allow4 { type ifname . ipv4_addr; }\n');
    expect(text).toContain('add element inet podnet in-allow4 { "pn0001" . 10.65.0.2 }\n');
    expect(text).toContain('add element inet podnet out-deny { "pn0001" . 25 }\n');
    expect(text).toContain('add rule inet podnet forward oifname . ip saddr @in-allow4 accept\n');
    expect(text).toContain(
      'add rule inet podnet forward meta l4proto tcp iifname . th dport @out-deny counter drop\n',
    );
    expect(renderElements(t, [{ set: 'in-allow4', add: ['pn0002 . 10.65.0.3'], delete: [] }])).toBe(
      'add element inet podnet in-allow4 { "pn0002" . 10.65.0.3 }\n',
    );
  });

  it.each<[string, Table, string]>([
    [
      'an element with one value too few',
      concatModel(['pn0001']),
      'sets[0].elements[0]: "pn0001" is not a ifname . ipv4_addr element: not 2 values joined by " . "',
    ],
    [
      'an IPv6 address in an ipv4_addr field',
      concatModel(['pn0001 . fd00::1']),
      'sets[0].elements[0]: "pn0001 . fd00::1" is not a ifname . ipv4_addr element: value 2: not an IPv4 address',
    ],
    [
      'a prefix (concatenations have no interval)',
      concatModel(['pn0001 . 10.65.0.0/24']),
      'is not a ifname . ipv4_addr element: value 2: a prefix in a set without `interval`',
    ],
    [
      'a type of unknown fields',
      { ...concatModel([]), sets: [{ name: 'in-allow4', type: 'ifname . mac' as 'ifname', elements: [] }] },
      'sets[0].type: "ifname . mac" is not one of',
    ],
    [
      'an interval concatenation',
      {
        ...concatModel([]),
        sets: [{ name: 'in-allow4', type: 'ifname . ipv4_addr', interval: true, elements: [] }],
      },
      'sets[0].interval: true is only for address sets',
    ],
    [
      'a match whose fields are not the set type',
      {
        ...concatModel([]),
        sets: [
          { name: 'in-allow4', type: 'ifname . ipv6_addr', elements: [] },
          { name: 'out-deny', type: 'ifname . inet_service', elements: [] },
        ],
      },
      'chains[0].rules[0].match[0].set: "in-allow4" is a set of ifname . ipv6_addr, not ifname . ipv4_addr',
    ],
  ])('refuses %s naming the field and the value', (_why, model, msg) => {
    expect(() => validate(model)).toThrow(NftError);
    expect(() => validate(model)).toThrow(msg);
  });

  it("reads nft's listing of concatenations back in the model's text: no drift", () => {
    const t = validate(concatModel(['pn0001 . 10.65.0.2']));
    const listing = JSON.stringify({
      nftables: [
        {
          chain: {
            family: 'inet',
            table: 'podnet',
            name: 'forward',
            type: 'filter',
            hook: 'forward',
            prio: 0,
            policy: 'accept',
          },
        },
        {
          set: {
            family: 'inet',
            table: 'podnet',
            name: 'in-allow4',
            type: ['ifname', 'ipv4_addr'],
            elem: [{ concat: ['pn0001', '10.65.0.2'] }],
          },
        },
        {
          set: {
            family: 'inet',
            table: 'podnet',
            name: 'out-deny',
            type: ['ifname', 'inet_service'],
            elem: [{ concat: ['pn0001', 25] }, { concat: ['pn0009', 53] }],
          },
        },
        { rule: { family: 'inet', table: 'podnet', chain: 'forward', expr: [] } },
        { rule: { family: 'inet', table: 'podnet', chain: 'forward', expr: [] } },
      ],
    });
    expect(compare(t, parseListing(listing, 'podnet'))).toEqual({
      structural: [],
      elements: [{ set: 'out-deny', add: [], delete: ['pn0009 . 53'] }],
    });
  });
});
