// The benchmark table of bench/nft.mjs (see its header): NAT and isolation sets and chains for
// the pools, plus the per-pod policy state of `pods` pods in `pools` pools, in one of three layouts:
// - `flat`: per-pod state only as elements of sets with concatenated keys, checked by fixed rules
//   of `forward` (oifname . ip saddr @in-allow4, iifname . th dport @out-deny, oifname @in-isolated);
// - `shared`: ifname verdict maps as in `perpod`, but every element jumps to one of two fixed
//   chains (np-in, np-out) that check the same concatenated sets;
// - `perpod`: ifname verdict maps jumping to two chains per pod, with two address sets per pod.
// Each gives a pod the same 12 elements and the same verdicts (ingress only from its 4 peers,
// egress tcp/25 dropped).
export const LAYOUTS = ['flat', 'shared', 'perpod'];

export function nftModel(PODS, POOLS, layout = 'flat') {
  if (!LAYOUTS.includes(layout)) throw new Error(`layout ${JSON.stringify(layout)} is not one of ${LAYOUTS}`);
  const poolCidr4 = (p) => `10.${64 + (p >> 6)}.${(p & 63) * 4}.0/22`;
  const poolCidr6 = (p) => `fd00:65:0:${p.toString(16)}::/112`;
  const perPool = Math.ceil(PODS / POOLS);
  const podPool = (i) => Math.floor(i / perPool);
  const podIp4 = (i) =>
    `10.${64 + (podPool(i) >> 6)}.${(podPool(i) & 63) * 4 + ((i % perPool) >> 8)}.${(i % perPool) & 255}`;
  const podIp6 = (i) => `fd00:65:0:${podPool(i).toString(16)}::${((i % perPool) + 1).toString(16)}`;
  const podIf = (i) => `pn${i.toString(16).padStart(8, '0')}`;
  const peers4 = (i) => [1, 2, 3, 4].map((k) => podIp4((i + k * 7) % PODS));
  const peers6 = (i) => [1, 2, 3, 4].map((k) => podIp6((i + k * 7) % PODS));

  /** `absent` pods have no elements (their chains and sets stay). */
  function model(absent = new Set()) {
    const pools = Array.from({ length: POOLS }, (_, p) => p);
    const isolated = pools.filter((p) => p % 10 === 9);
    const natted = pools.filter((p) => p % 10 !== 9);
    const nodes4 = Array.from({ length: 10 }, (_, n) => `172.20.0.${n + 2}`);
    const nodes6 = Array.from({ length: 10 }, (_, n) => `fd00:20::${(n + 2).toString(16)}`);
    const present = Array.from({ length: PODS }, (_, i) => i).filter((i) => !absent.has(i));
    const set = (name, type, elements, interval = false) => ({ name, type, interval, elements });
    const addr = (f, dir, s, negate = false) => ({
      kind: 'addr',
      field: `${f === 4 ? 'ip' : 'ip6'} ${dir}`,
      set: `${s}${f}`,
      negate,
    });
    const cat = (fields, set) => ({ kind: 'concat', fields, set });
    const outDeny = {
      match: [{ kind: 'l4', proto: 'tcp' }, cat(['iifname', 'th dport'], 'out-deny')],
      counter: true,
      action: { kind: 'drop' },
    };
    const inAllow = [4, 6].map((f) => ({
      match: [cat(['oifname', f === 4 ? 'ip saddr' : 'ip6 saddr'], `in-allow${f}`)],
      action: { kind: 'accept' },
    }));
    const chains = [
      {
        name: 'postrouting',
        base: { type: 'nat', hook: 'postrouting', priority: 'srcnat' },
        rules: [4, 6].map((f) => ({
          match: [
            addr(f, 'saddr', 'nat'),
            addr(f, 'daddr', 'pools', true),
            addr(f, 'daddr', 'natexcl', true),
          ],
          counter: true,
          action: { kind: 'masquerade' },
        })),
      },
      {
        name: 'forward',
        base: { type: 'filter', hook: 'forward', priority: 'filter', policy: 'accept' },
        rules: [
          ...[4, 6].flatMap((f) => [
            {
              match: [addr(f, 'saddr', 'isolated'), addr(f, 'daddr', 'cluster', true)],
              counter: true,
              action: { kind: 'drop' },
            },
            {
              match: [addr(f, 'daddr', 'isolated'), addr(f, 'saddr', 'cluster', true)],
              counter: true,
              action: { kind: 'drop' },
            },
          ]),
          { match: [{ kind: 'ct', states: ['established', 'related'] }], action: { kind: 'accept' } },
          ...(layout === 'flat'
            ? [
                outDeny,
                ...inAllow,
                {
                  match: [{ kind: 'ifset', field: 'oifname', set: 'in-isolated' }],
                  counter: true,
                  action: { kind: 'drop' },
                },
              ]
            : [
                { action: { kind: 'vmap', field: 'iifname', map: 'from_pod' } },
                { action: { kind: 'vmap', field: 'oifname', map: 'to_pod' } },
              ]),
        ],
      },
    ];
    if (layout === 'shared') {
      chains.push({ name: 'np-out', rules: [outDeny] });
      chains.push({ name: 'np-in', rules: [...inAllow, { counter: true, action: { kind: 'drop' } }] });
    }
    const sets = [
      set('pools4', 'ipv4_addr', pools.map(poolCidr4), true),
      set('pools6', 'ipv6_addr', pools.map(poolCidr6), true),
      set('nat4', 'ipv4_addr', natted.map(poolCidr4), true),
      set('nat6', 'ipv6_addr', natted.map(poolCidr6), true),
      set('natexcl4', 'ipv4_addr', ['192.168.0.0/16', '198.18.0.0/15'], true),
      set('natexcl6', 'ipv6_addr', ['fd99::/16'], true),
      set('isolated4', 'ipv4_addr', isolated.map(poolCidr4), true),
      set('isolated6', 'ipv6_addr', isolated.map(poolCidr6), true),
      set('cluster4', 'ipv4_addr', [...pools.map(poolCidr4), ...nodes4, '10.96.0.0/12'], true),
      set('cluster6', 'ipv6_addr', [...pools.map(poolCidr6), ...nodes6, 'fd00:96::/108'], true),
      set('pods4', 'ipv4_addr', present.map(podIp4)),
      set('pods6', 'ipv6_addr', present.map(podIp6)),
    ];
    const maps = [];
    if (layout === 'flat' || layout === 'shared') {
      sets.push(
        set(
          'in-allow4',
          'ifname . ipv4_addr',
          present.flatMap((i) => peers4(i).map((a) => `${podIf(i)} . ${a}`)),
        ),
        set(
          'in-allow6',
          'ifname . ipv6_addr',
          present.flatMap((i) => peers6(i).map((a) => `${podIf(i)} . ${a}`)),
        ),
        set(
          'out-deny',
          'ifname . inet_service',
          present.map((i) => `${podIf(i)} . 25`),
        ),
      );
    }
    if (layout === 'flat') sets.push(set('in-isolated', 'ifname', present.map(podIf)));
    if (layout !== 'flat') {
      const target = (i, dir) => (layout === 'shared' ? `np-${dir}` : `p${i}-${dir}`);
      maps.push(
        {
          name: 'to_pod',
          type: 'ifname',
          elements: present.map((i) => ({
            key: podIf(i),
            verdict: { kind: 'jump', chain: target(i, 'in') },
          })),
        },
        {
          name: 'from_pod',
          type: 'ifname',
          elements: present.map((i) => ({
            key: podIf(i),
            verdict: { kind: 'jump', chain: target(i, 'out') },
          })),
        },
      );
    }
    for (let i = 0; layout === 'perpod' && i < PODS; i++) {
      const on = !absent.has(i);
      sets.push(set(`p${i}-in4`, 'ipv4_addr', on ? peers4(i) : []));
      sets.push(set(`p${i}-in6`, 'ipv6_addr', on ? peers6(i) : []));
      chains.push({
        name: `p${i}-in`,
        rules: [
          { match: [{ kind: 'addr', field: 'ip saddr', set: `p${i}-in4` }], action: { kind: 'accept' } },
          { match: [{ kind: 'addr', field: 'ip6 saddr', set: `p${i}-in6` }], action: { kind: 'accept' } },
          { counter: true, action: { kind: 'drop' } },
        ],
      });
      chains.push({
        name: `p${i}-out`,
        rules: [
          { match: [{ kind: 'l4', proto: 'tcp', dport: 25 }], counter: true, action: { kind: 'drop' } },
        ],
      });
    }
    return { chains, sets, maps };
  }

  /** One pod's 12 elements, as update() takes them (`op`: add or delete). */
  function podUpdate(i, op) {
    const del = op === 'delete';
    const ch = (kind, name, elements) => ({ [kind]: name, [del ? 'delete' : 'add']: elements });
    const jump = (dir) => ({
      key: podIf(i),
      verdict: { kind: 'jump', chain: layout === 'shared' ? `np-${dir}` : `p${i}-${dir}` },
    });
    const out = [ch('set', 'pods4', [podIp4(i)]), ch('set', 'pods6', [podIp6(i)])];
    if (layout === 'perpod') {
      out.push(ch('set', `p${i}-in4`, peers4(i)), ch('set', `p${i}-in6`, peers6(i)));
    } else {
      out.push(
        ch(
          'set',
          'in-allow4',
          peers4(i).map((a) => `${podIf(i)} . ${a}`),
        ),
        ch(
          'set',
          'in-allow6',
          peers6(i).map((a) => `${podIf(i)} . ${a}`),
        ),
      );
    }
    if (layout === 'flat') {
      out.push(ch('set', 'in-isolated', [podIf(i)]), ch('set', 'out-deny', [`${podIf(i)} . 25`]));
    } else {
      out.push(
        ch('map', 'to_pod', del ? [podIf(i)] : [jump('in')]),
        ch('map', 'from_pod', del ? [podIf(i)] : [jump('out')]),
      );
    }
    return out;
  }

  return { model, podUpdate, podIf, podIp4, podIp6 };
}
