// Integration tests against the real kernel, in namespaces these tests create. Every check is made
// against what `ip -json` reports.
import { closeSync, openSync } from 'node:fs';
import { cleanupStale, type Netns, NetnsSet, waitFor } from '@podnet/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Request, Rtnl, type RtnlEvent } from './client.js';
import { RTM } from './constants.js';
import { NetlinkError } from './errors.js';

const PROTO = 80;

interface IpRoute {
  dst: string;
  type?: string;
  gateway?: string;
  dev?: string;
  protocol?: string;
  scope?: string;
  metric?: number;
  table?: string;
  nexthops?: { gateway: string; dev: string; weight: number }[];
}

const lab = new NetnsSet();
let ns: Netns;
let peer: Netns;
let nl: Rtnl;
let v0: number;

beforeAll(async () => {
  await cleanupStale();
  ns = await lab.create('rtnl');
  peer = await lab.create('rtnlpeer');
  nl = await Rtnl.open({ netns: ns.path });
  await ns.ip('link', 'add', 'v0', 'type', 'veth', 'peer', 'name', 'v1');
  await ns.ip('link', 'set', 'v0', 'up');
  await ns.ip('link', 'set', 'v1', 'up');
  await ns.ip('addr', 'add', '10.9.0.1/24', 'dev', 'v0');
  await ns.ip('addr', 'add', 'fd00::1/64', 'dev', 'v0', 'nodad');
  v0 = (await ns.ipJson<{ ifindex: number }[]>('link', 'show', 'v0'))[0]!.ifindex;
});

afterAll(async () => {
  nl?.close();
  await lab.destroy();
});

const ipRoutes = (...args: string[]) => ns.ipJson<IpRoute[]>('route', 'show', ...args);

describe('routes', () => {
  it('adds blackhole, scope-link, ECMP and IPv6 routes that ip reports as given', async () => {
    await nl.routes.add({ dst: '10.1.0.0/26', type: 'blackhole', protocol: PROTO });
    await nl.routes.add({ dst: '10.9.9.9/32', oif: v0, protocol: PROTO, metric: 7 });
    await nl.routes.add({
      dst: '10.2.0.0/24',
      protocol: PROTO,
      multipath: [
        { gateway: '10.9.0.2', oif: v0 },
        { gateway: '10.9.0.3', oif: v0, weight: 3 },
      ],
    });
    await nl.routes.add({ dst: 'fd01::/64', gateway: 'fd00::2', protocol: PROTO });
    await nl.routes.add({
      dst: 'fd02::/64',
      protocol: PROTO,
      multipath: [
        { gateway: 'fd00::2', oif: v0 },
        { gateway: 'fd00::3', oif: v0 },
      ],
    });
    const v4 = await ipRoutes('proto', String(PROTO));
    expect(v4).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ type: 'blackhole', dst: '10.1.0.0/26' }),
        expect.objectContaining({ dst: '10.9.9.9', dev: 'v0', scope: 'link', metric: 7 }),
        expect.objectContaining({
          dst: '10.2.0.0/24',
          nexthops: [
            expect.objectContaining({ gateway: '10.9.0.2', dev: 'v0', weight: 1 }),
            expect.objectContaining({ gateway: '10.9.0.3', dev: 'v0', weight: 3 }),
          ],
        }),
      ]),
    );
    expect(v4).toHaveLength(3);
    const v6 = await ns.ipJson<IpRoute[]>('-6', 'route', 'show', 'proto', String(PROTO));
    expect(v6).toEqual([
      expect.objectContaining({ dst: 'fd01::/64', gateway: 'fd00::2', dev: 'v0' }),
      expect.objectContaining({
        dst: 'fd02::/64',
        nexthops: [
          expect.objectContaining({ gateway: 'fd00::2', dev: 'v0' }),
          expect.objectContaining({ gateway: 'fd00::3', dev: 'v0' }),
        ],
      }),
    ]);
  });

  it('lists only the routes of a protocol and table, filtered by the kernel', async () => {
    await nl.routes.add({ dst: '10.7.0.0/16', oif: v0, protocol: PROTO, table: 1000 });
    await ns.ip('route', 'add', '10.8.0.0/16', 'dev', 'v0', 'proto', 'static');
    const mine = await nl.routes.list({ protocol: PROTO, family: 4 });
    expect(mine.map((r) => r.dst).sort()).toEqual([
      '10.1.0.0/26',
      '10.2.0.0/24',
      '10.7.0.0/16',
      '10.9.9.9/32',
    ]);
    const t1000 = await nl.routes.list({ table: 1000 });
    expect(t1000).toEqual([
      expect.objectContaining({ dst: '10.7.0.0/16', table: 1000, protocol: PROTO, oif: v0 }),
    ]);
    const statics = await nl.routes.list({ protocol: 4 });
    expect(statics.map((r) => r.dst)).toEqual(['10.8.0.0/16']);
    const viaIp = await ns.ipJson<IpRoute[]>('route', 'show', 'table', '1000');
    expect(viaIp).toEqual([expect.objectContaining({ dst: '10.7.0.0/16', dev: 'v0' })]);
    expect(await nl.routes.list({ table: 4242, family: 4 })).toEqual([]); // no such table
    expect(await nl.routes.list({ table: 4242, family: 6 })).toEqual([]);
    const v6 = await nl.routes.list({ family: 6, protocol: PROTO });
    expect(v6).toEqual([
      expect.objectContaining({ dst: 'fd01::/64', gateway: 'fd00::2', family: 6 }),
      expect.objectContaining({
        dst: 'fd02::/64',
        multipath: [
          { gateway: 'fd00::2', oif: v0, weight: 1 },
          { gateway: 'fd00::3', oif: v0, weight: 1 },
        ],
      }),
    ]);
  });

  it('replaces a route in place and deletes only when the owner protocol matches', async () => {
    await nl.routes.replace({ dst: '10.9.9.9/32', gateway: '10.9.0.5', protocol: PROTO, metric: 7 });
    expect(await ipRoutes('10.9.9.9/32')).toEqual([
      expect.objectContaining({ gateway: '10.9.0.5', metric: 7 }),
    ]);
    const foreign = nl.routes.del({ dst: '10.8.0.0/16', protocol: PROTO });
    await expect(foreign).rejects.toMatchObject({ code: 'NL_ERR_KERNEL', errnoName: 'ESRCH' });
    expect(await ipRoutes('10.8.0.0/16')).toHaveLength(1);
    await nl.routes.del({ dst: '10.8.0.0/16', protocol: 4 });
    expect(await ipRoutes('10.8.0.0/16')).toHaveLength(0);
  });

  it('rejects a duplicate add with EEXIST and a bad gateway with the kernel’s extended ACK message', async () => {
    const dup = await nl.routes
      .add({ dst: '10.1.0.0/26', type: 'blackhole', protocol: PROTO })
      .catch((e) => e);
    expect(dup).toBeInstanceOf(NetlinkError);
    expect(dup).toMatchObject({ code: 'NL_ERR_KERNEL', errno: 17, errnoName: 'EEXIST' });
    expect(dup.request).toContain('10.1.0.0/26');
    const unreachable = await nl.routes.add({ dst: '10.4.0.0/24', gateway: '192.168.77.1' }).catch((e) => e);
    expect(unreachable).toMatchObject({ code: 'NL_ERR_KERNEL', errnoName: 'ENETUNREACH' });
    expect(unreachable.extAck).toMatch(/gateway/i);
    await expect(nl.routes.add({ dst: 'not-a-prefix' })).rejects.toMatchObject({ code: 'NL_ERR_INVALID' });
  });
});

describe('batches', () => {
  it('reports the failure of the one bad request in the middle against that request', async () => {
    for (const ackEach of [false, true]) {
      const base = ackEach ? 20 : 30;
      const reqs: Request[] = [
        { type: 'route.add', route: { dst: `10.${base}.0.0/24`, oif: v0, protocol: PROTO } },
        { type: 'route.add', route: { dst: `10.${base}.1.0/24`, oif: v0, protocol: PROTO } },
        { type: 'route.add', route: { dst: '10.1.0.0/26', type: 'blackhole', protocol: PROTO } }, // exists
        { type: 'route.add', route: { dst: `10.${base}.3.0/24`, oif: v0, protocol: PROTO } },
        { type: 'route.add', route: { dst: `10.${base}.4.0/24`, gateway: '192.168.1.1', protocol: PROTO } }, // unreachable
        { type: 'route.add', route: { dst: 'garbage', protocol: PROTO } }, // invalid input
        { type: 'route.add', route: { dst: `10.${base}.6.0/24`, oif: v0, protocol: PROTO } },
      ];
      const results = await nl.batch(reqs, { ackEach });
      expect(results.map((r) => r.ok)).toEqual([true, true, false, true, false, false, true]);
      const e2 = results[2]!.ok ? undefined : results[2]!.error;
      expect(e2).toMatchObject({ code: 'NL_ERR_KERNEL', errnoName: 'EEXIST', index: 2 });
      expect(e2?.request).toContain('10.1.0.0/26');
      const e4 = results[4]!.ok ? undefined : results[4]!.error;
      expect(e4).toMatchObject({ code: 'NL_ERR_KERNEL', errnoName: 'ENETUNREACH', index: 4 });
      const e5 = results[5]!.ok ? undefined : results[5]!.error;
      expect(e5).toMatchObject({ code: 'NL_ERR_INVALID', index: 5 });
      const got = (await ipRoutes('proto', String(PROTO))).map((r) => r.dst);
      expect(got).toEqual(
        expect.arrayContaining([
          `10.${base}.0.0/24`,
          `10.${base}.1.0/24`,
          `10.${base}.3.0/24`,
          `10.${base}.6.0/24`,
        ]),
      );
      expect(got).not.toContain(`10.${base}.4.0/24`);
    }
  });

  it('installs, dumps and deletes 20,000 routes across many sendmsg chunks', async () => {
    const n = 20_000;
    const dst = (i: number) => `10.${100 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}/32`;
    const adds: Request[] = Array.from({ length: n }, (_, i) => ({
      type: 'route.add',
      route: { dst: dst(i), oif: v0, protocol: 81, table: 2000 },
    }));
    const added = await nl.batch(adds, { chunkBytes: 64 * 1024 });
    expect(added.filter((r) => !r.ok)).toEqual([]);
    const out = await ns.ip('route', 'show', 'table', '2000');
    expect(out.trim().split('\n')).toHaveLength(n);
    const listed = await nl.routes.list({ table: 2000, protocol: 81 });
    expect(listed).toHaveLength(n);
    expect(new Set(listed.map((r) => r.dst))).toEqual(
      new Set(adds.map((r) => (r.type === 'route.add' ? `${r.route.dst}` : ''))),
    );
    const deleted = await nl.batch(listed.map((route) => ({ type: 'route.del', route })));
    expect(deleted.filter((r) => !r.ok)).toEqual([]);
    expect((await ns.ip('route', 'show', 'table', '2000')).trim()).toBe('');
  });

  it('keeps results apart when batches and single requests run at the same time', async () => {
    const mk = (third: number, n: number): Request[] =>
      Array.from({ length: n }, (_, i) => ({
        type: 'route.add',
        route: { dst: `10.${third}.${i >> 8}.${i & 255}/32`, oif: v0, protocol: 84 },
      }));
    const a = mk(150, 2000);
    const b = mk(151, 2000);
    // b's 1000th request duplicates a's 10th: exactly one of the two fails, whichever runs second.
    b[1000] = a[10]!;
    const [ra, rb, single, listed] = await Promise.all([
      nl.batch(a, { chunkBytes: 8192 }),
      nl.batch(b, { chunkBytes: 8192, ackEach: true }),
      nl.routes.add({ dst: '10.152.0.0/24', oif: v0, protocol: 84 }),
      nl.routes.list({ protocol: 84 }),
    ]);
    expect(single).toBeUndefined();
    expect(Array.isArray(listed)).toBe(true);
    const failedA = ra.flatMap((r, i) => (r.ok ? [] : [i]));
    const failedB = rb.flatMap((r, i) => (r.ok ? [] : [i]));
    expect([...failedA, ...failedB.map((i) => i + 10_000)].sort((x, y) => x - y)).toHaveLength(1);
    expect(failedA.length ? failedA : failedB).toEqual(failedA.length ? [10] : [1000]);
    const installed = (await ns.ip('route', 'show', 'proto', '84')).trim().split('\n');
    expect(installed).toHaveLength(2000 + 1999 + 1);
    await nl.batch((await nl.routes.list({ protocol: 84 })).map((route) => ({ type: 'route.del', route })));
  });

  it('queues concurrent dumps on one client: every routes/links/addrs/neigh list resolves with the full table', async () => {
    const n = 3000; // large enough that each route dump spans many datagrams
    const adds: Request[] = Array.from({ length: n }, (_, i) => ({
      type: 'route.add',
      route: { dst: `10.160.${i >> 8}.${i & 255}/32`, oif: v0, protocol: 85 },
    }));
    expect((await nl.batch(adds)).filter((r) => !r.ok)).toEqual([]);
    const links = (await ns.ipJson<{ ifname: string }[]>('link', 'show')).map((l) => l.ifname).sort();
    const calls = Array.from({ length: 12 }, (_, i) => {
      switch (i % 4) {
        case 0:
          return nl.routes.list({ protocol: 85 }).then((r) => ({ kind: 'routes' as const, n: r.length }));
        case 1:
          return nl.links
            .list()
            .then((l) => ({ kind: 'links' as const, names: l.map((x) => x.name).sort() }));
        case 2:
          return nl.addrs.list({ index: v0 }).then((a) => ({ kind: 'addrs' as const, n: a.length }));
        default:
          return nl.neigh.list({ family: 4 }).then((x) => ({ kind: 'neigh' as const, ok: Array.isArray(x) }));
      }
    });
    // A single request and a batch issued meanwhile are not held up behind the dumps.
    const single = nl.routes.add({ dst: '10.161.0.0/24', oif: v0, protocol: 86 });
    expect(nl.queuedDumps).toBe(12);
    const results = await Promise.all([...calls, single]);
    expect(nl.queuedDumps).toBe(0);
    for (const r of results.slice(0, 12)) {
      if (!r) throw new Error('missing result');
      if (r.kind === 'routes') expect(r).toEqual({ kind: 'routes', n });
      if (r.kind === 'links') expect(r).toEqual({ kind: 'links', names: links });
      if (r.kind === 'addrs') expect(r.n).toBeGreaterThanOrEqual(2); // 10.9.0.1/24, fd00::1/64 (+ link-local)
      if (r.kind === 'neigh') expect(r).toEqual({ kind: 'neigh', ok: true });
    }
    expect(await ipRoutes('proto', '86')).toHaveLength(1);
    const mine = await nl.routes.list({ protocol: 85 });
    await Promise.all([
      nl.batch(mine.map((route) => ({ type: 'route.del', route }))),
      nl.routes.del({ dst: '10.161.0.0/24', oif: v0, protocol: 86 }),
      nl.routes.list({ protocol: 85 }),
    ]);
    expect(await ipRoutes('proto', '85')).toEqual([]);
  });

  it('fails only the malformed entries of a batch: null, an unknown type, a missing route', async () => {
    const results = await nl.batch([
      null as unknown as Request,
      { type: 'route.frobnicate' } as unknown as Request,
      { type: 'route.add' } as unknown as Request,
      { type: 'route.replace', route: { dst: '10.9.5.0/24', oif: v0, protocol: PROTO } },
    ]);
    expect(results.map((r) => (r.ok ? 'ok' : r.error.code))).toEqual([
      'NL_ERR_INVALID',
      'NL_ERR_INVALID',
      'NL_ERR_INVALID',
      'ok',
    ]);
    expect(results[1]!.ok ? '' : results[1]!.error.message).toMatch(/route\.frobnicate/);
  });

  it('mixes requests of every kind in one batch', async () => {
    const results = await nl.batch([
      { type: 'addr.add', addr: { index: v0, address: '10.9.1.1/32' } },
      { type: 'neigh.add', neigh: { index: v0, dst: '10.9.0.44', lladdr: '02:00:00:00:00:44' } },
      { type: 'route.add', route: { dst: '10.9.2.0/24', gateway: '10.9.0.44', protocol: PROTO } },
      { type: 'link.set', index: v0, change: { mtu: 1450 } },
      { type: 'neigh.del', neigh: { index: v0, dst: '10.9.0.99' } }, // no such entry
    ]);
    expect(results.map((r) => r.ok)).toEqual([true, true, true, true, false]);
    expect((await ns.ipJson<{ mtu: number }[]>('link', 'show', 'v0'))[0]!.mtu).toBe(1450);
    expect(await ipRoutes('10.9.2.0/24')).toEqual([expect.objectContaining({ gateway: '10.9.0.44' })]);
  });
});

describe('links', () => {
  it('creates a veth with its peer in another namespace, with MTU and MACs, like a CNI plugin', async () => {
    const fd = openSync(peer.path, 'r');
    let created: Awaited<ReturnType<typeof nl.links.createVeth>>;
    try {
      created = await nl.links.createVeth({
        name: 'pnabc',
        peerName: 'eth0',
        peerNetnsFd: fd,
        mtu: 1400,
        mac: 'ee:ee:ee:ee:ee:ee',
        peerMac: '02:42:0a:00:00:05',
      });
    } finally {
      closeSync(fd);
    }
    const host = (
      await ns.ipJson<{ ifname: string; mtu: number; address: string; linkinfo?: unknown }[]>(
        'link',
        'show',
        'pnabc',
      )
    )[0]!;
    expect(host).toMatchObject({ ifname: 'pnabc', mtu: 1400, address: 'ee:ee:ee:ee:ee:ee' });
    const pod = (
      await peer.ipJson<{ ifname: string; mtu: number; address: string }[]>('link', 'show', 'eth0')
    )[0]!;
    expect(pod).toMatchObject({ ifname: 'eth0', mtu: 1400, address: '02:42:0a:00:00:05' });
    const got = await nl.links.get('pnabc');
    expect(created).toEqual(got);
    expect(got).toMatchObject({
      name: 'pnabc',
      kind: 'veth',
      mtu: 1400,
      mac: 'ee:ee:ee:ee:ee:ee',
      up: false,
    });
    // The pod end is managed by a client in the pod's namespace.
    const podNl = await Rtnl.open({ netns: peer.path });
    try {
      await podNl.links.set('eth0', { up: true });
      expect((await podNl.links.get('eth0'))?.up).toBe(true);
      const podLinks = await podNl.links.list();
      expect(podLinks.map((l) => l.name).sort()).toEqual(['eth0', 'lo']);
    } finally {
      podNl.close();
    }
  });

  it('sets a link up and down, changes MTU and MAC, renames and deletes it', async () => {
    await nl.links.set('pnabc', { up: true, mtu: 1380, mac: 'ee:ee:ee:ee:ee:01' });
    let l = (
      await ns.ipJson<{ flags: string[]; mtu: number; address: string }[]>('link', 'show', 'pnabc')
    )[0]!;
    expect(l.flags).toContain('UP');
    expect(l).toMatchObject({ mtu: 1380, address: 'ee:ee:ee:ee:ee:01' });
    await nl.links.set('pnabc', { up: false });
    const idx = (await nl.links.get('pnabc'))!.index;
    await nl.links.set(idx, { name: 'pnren' });
    l = (await ns.ipJson<{ flags: string[]; mtu: number; address: string }[]>('link', 'show', 'pnren'))[0]!;
    expect(l.flags).not.toContain('UP');
    expect(await nl.links.get('pnabc')).toBeUndefined();
    await nl.links.del('pnren');
    expect((await ns.exec('ip', ['link', 'show', 'pnren'])).code).not.toBe(0);
    // The peer in the other namespace went with it.
    expect((await peer.exec('ip', ['link', 'show', 'eth0'])).code).not.toBe(0);
  });

  it('fails clearly for a link that does not exist', async () => {
    expect(await nl.links.get('nosuch0')).toBeUndefined();
    await expect(nl.links.set('nosuch0', { up: true })).rejects.toMatchObject({
      code: 'NL_ERR_KERNEL',
      errnoName: 'ENODEV',
    });
    await expect(nl.links.del(99_999)).rejects.toMatchObject({ code: 'NL_ERR_KERNEL', errnoName: 'ENODEV' });
  });
});

describe('addresses', () => {
  it('adds, lists and deletes IPv4 and IPv6 addresses as ip sees them', async () => {
    await nl.addrs.add({ index: v0, address: '10.9.3.1/32' });
    await nl.addrs.add({ index: v0, address: 'fd00::33/128', nodad: true });
    const viaIp = (
      await ns.ipJson<{ addr_info: { local: string; prefixlen: number }[] }[]>('addr', 'show', 'dev', 'v0')
    )[0]!.addr_info.map((a) => `${a.local}/${a.prefixlen}`);
    const mine = (await nl.addrs.list({ index: v0 })).map((a) => a.address);
    expect(mine.sort()).toEqual(viaIp.sort());
    expect(mine).toEqual(expect.arrayContaining(['10.9.3.1/32', 'fd00::33/128', '10.9.0.1/24']));
    await nl.addrs.del({ index: v0, address: '10.9.3.1/32' });
    await nl.addrs.del({ index: v0, address: 'fd00::33/128' });
    const after = (await nl.addrs.list({ index: v0 })).map((a) => a.address);
    expect(after).not.toContain('10.9.3.1/32');
    expect(after).not.toContain('fd00::33/128');
    await expect(nl.addrs.del({ index: v0, address: '10.9.3.1/32' })).rejects.toMatchObject({
      code: 'NL_ERR_KERNEL',
    });
  });
});

describe('neighbours', () => {
  it('tags an entry with an owner protocol (NDA_PROTOCOL) that ip neigh reports', async () => {
    await nl.neigh.add({ index: v0, dst: '10.9.0.60', lladdr: '02:00:00:00:00:60', protocol: PROTO });
    const ipN = await ns.ipJson<{ dst: string; protocol?: string }[]>(
      'neigh',
      'show',
      '10.9.0.60',
      'dev',
      'v0',
    );
    expect(ipN).toEqual([expect.objectContaining({ dst: '10.9.0.60', protocol: String(PROTO) })]);
    const mine = (await nl.neigh.list({ index: v0 })).find((n) => n.dst === '10.9.0.60');
    expect(mine).toMatchObject({ protocol: PROTO, state: 0x80, lladdr: '02:00:00:00:00:60' });
    await nl.neigh.del({ index: v0, dst: '10.9.0.60' });
  });

  it('adds permanent and proxy entries that ip neigh reports, and deletes them', async () => {
    await nl.neigh.add({ index: v0, dst: '10.9.0.50', lladdr: '02:00:00:00:00:50' });
    await nl.neigh.add({ index: v0, dst: '10.9.0.51', proxy: true });
    await nl.neigh.add({ index: v0, dst: 'fd00::50', lladdr: '02:00:00:00:00:51' });
    const ipN = await ns.ipJson<{ dst: string; lladdr?: string; state?: string[] }[]>(
      'neigh',
      'show',
      'dev',
      'v0',
    );
    expect(ipN).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ dst: '10.9.0.50', lladdr: '02:00:00:00:00:50', state: ['PERMANENT'] }),
        expect.objectContaining({ dst: 'fd00::50', lladdr: '02:00:00:00:00:51', state: ['PERMANENT'] }),
      ]),
    );
    const ipProxy = await ns.ipJson<{ dst: string }[]>('neigh', 'show', 'proxy');
    expect(ipProxy.map((p) => p.dst)).toContain('10.9.0.51');
    const mine = await nl.neigh.list({ index: v0 });
    expect(mine).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ dst: '10.9.0.50', lladdr: '02:00:00:00:00:50', state: 0x80, proxy: false }),
        expect.objectContaining({ dst: 'fd00::50', family: 6 }),
      ]),
    );
    expect(await nl.neigh.list({ proxy: true })).toEqual([
      expect.objectContaining({ dst: '10.9.0.51', index: v0, proxy: true }),
    ]);
    await nl.neigh.del({ index: v0, dst: '10.9.0.50' });
    await nl.neigh.del({ index: v0, dst: '10.9.0.51', proxy: true });
    expect(
      (await ns.ipJson<{ dst: string }[]>('neigh', 'show', 'dev', 'v0')).map((n) => n.dst),
    ).not.toContain('10.9.0.50');
    expect(await ns.ipJson('neigh', 'show', 'proxy')).toEqual([]);
  });
});

describe('events', () => {
  it('delivers decoded link, address, route and neighbour events made by ip', async () => {
    const seen: RtnlEvent[] = [];
    const sub = nl.subscribe(['link', 'addr', 'route', 'neigh'], (ev) => seen.push(ev));
    try {
      await ns.ip('link', 'add', 'ev0', 'type', 'veth', 'peer', 'name', 'ev1');
      await ns.ip('addr', 'add', '10.66.0.1/24', 'dev', 'ev0');
      await ns.ip('link', 'set', 'ev0', 'up');
      await ns.ip('route', 'add', '10.67.0.0/16', 'via', '10.9.0.9', 'proto', '99');
      await ns.ip('neigh', 'add', '10.9.0.88', 'lladdr', '02:00:00:00:00:88', 'dev', 'v0');
      await ns.ip('route', 'del', '10.67.0.0/16', 'proto', '99');
      await waitFor(
        'link, addr, route (new and del) and neigh events',
        () =>
          seen.some((e) => e.type === 'link' && e.link.name === 'ev0') &&
          seen.some((e) => e.type === 'addr' && e.addr.address === '10.66.0.1/24') &&
          seen.some(
            (e) =>
              e.type === 'route' &&
              e.op === 'new' &&
              e.route.dst === '10.67.0.0/16' &&
              e.route.protocol === 99,
          ) &&
          seen.some((e) => e.type === 'route' && e.op === 'del' && e.route.dst === '10.67.0.0/16') &&
          seen.some((e) => e.type === 'neigh' && e.neigh.dst === '10.9.0.88'),
        { timeoutMs: 10_000 },
      );
    } finally {
      sub.close();
    }
  });

  it('skips, before decoding, the message types a subscriber filters out', async () => {
    const seen: RtnlEvent[] = [];
    const sub = nl.subscribe(['route'], (ev) => seen.push(ev), undefined, {
      types: (t) => t !== RTM.NEWROUTE,
    });
    try {
      await ns.ip('route', 'add', '10.68.0.0/16', 'via', '10.9.0.9', 'proto', '99');
      await ns.ip('route', 'del', '10.68.0.0/16', 'proto', '99');
      await waitFor(
        'the route deletion event',
        () => seen.some((e) => e.type === 'route' && e.op === 'del' && e.route.dst === '10.68.0.0/16'),
        { timeoutMs: 10_000 },
      );
      expect(seen.filter((e) => e.type === 'route' && e.op === 'new')).toEqual([]);
    } finally {
      sub.close();
    }
  });

  it('reports lost events as NL_ERR_OVERRUN when the subscriber falls behind, and keeps delivering', async () => {
    const errors: NetlinkError[] = [];
    let events = 0;
    const sub = nl.subscribe(
      ['route'],
      () => events++,
      (e) => errors.push(e),
      { rcvbuf: 4096 },
    );
    try {
      // One sendmsg makes the kernel emit thousands of events before this process reads any.
      const reqs: Request[] = Array.from({ length: 3000 }, (_, i) => ({
        type: 'route.add',
        route: { dst: `10.210.${i >> 8}.${i & 255}/32`, oif: v0, protocol: 83 },
      }));
      expect((await nl.batch(reqs)).every((r) => r.ok)).toBe(true);
      await waitFor('an overrun report', () => errors.some((e) => e.code === 'NL_ERR_OVERRUN'), {
        timeoutMs: 10_000,
      });
      expect(events).toBeLessThan(3000);
      const before = events;
      await nl.routes.add({ dst: '10.211.0.0/24', oif: v0, protocol: 83 });
      await waitFor('an event after the overrun', () => events > before, { timeoutMs: 10_000 });
    } finally {
      sub.close();
      await nl.batch((await nl.routes.list({ protocol: 83 })).map((route) => ({ type: 'route.del', route })));
    }
  });

  it('refuses an unknown event group', () => {
    expect(() => nl.subscribe(['bogus' as 'link'], () => {})).toThrow(/unknown group/);
  });
});

describe('client lifecycle', () => {
  it('fails to open in a namespace that does not exist with NL_ERR_SOCKET naming ENOENT', async () => {
    await expect(Rtnl.open({ netns: '/var/run/netns/pnt-none-0-0' })).rejects.toMatchObject({
      code: 'NL_ERR_SOCKET',
      errnoName: 'ENOENT',
    });
  });

  it('rejects requests after close with NL_ERR_CLOSED', async () => {
    const c = await Rtnl.open({ netns: ns.path });
    c.close();
    c.close();
    await expect(c.routes.list()).rejects.toMatchObject({ code: 'NL_ERR_CLOSED' });
    await expect(c.batch([])).rejects.toMatchObject({ code: 'NL_ERR_CLOSED' });
  });

  it('fails pending requests with NL_ERR_CLOSED when closed mid-flight', async () => {
    const c = await Rtnl.open({ netns: ns.path });
    const p = c.routes.list();
    c.close();
    await expect(p).rejects.toMatchObject({ code: 'NL_ERR_CLOSED' });
  });

  it('ends a batch cut short by close with NL_ERR_CLOSED for every unconfirmed request', async () => {
    const c = await Rtnl.open({ netns: ns.path });
    const reqs: Request[] = Array.from({ length: 3000 }, (_, i) => ({
      type: 'route.replace',
      route: { dst: `10.200.${i >> 8}.${i & 255}/32`, oif: v0, protocol: 82 },
    }));
    const pending = c.batch(reqs, { chunkBytes: 4096 });
    setImmediate(() => c.close());
    const results = await pending;
    expect(results).toHaveLength(3000);
    const failed = results.filter((r) => !r.ok);
    expect(failed.length).toBeGreaterThan(0);
    for (const r of failed) expect(r.ok ? '' : r.error.code).toBe('NL_ERR_CLOSED');
    // Everything reported ok is really in the kernel.
    const installed = (await nl.routes.list({ protocol: 82 })).length;
    expect(installed).toBeGreaterThanOrEqual(results.filter((r) => r.ok).length);
    await nl.batch((await nl.routes.list({ protocol: 82 })).map((route) => ({ type: 'route.del', route })));
  });
});
