// The route programmer against the real kernel: a node namespace with two (then three) pod
// namespaces on veths and an uplink; the programmer runs from this process against the node
// namespace, and sysctls are written inside it (never in the namespace the test runs in).
import { type Netns, waitFor } from '@podnet/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { backends, fileNamespaces, nodeWithUplink } from './__fixtures__/netns.js';
import { computeDesired, type RouteInputs } from './desired.js';
import { PODNET_PROTO } from './model.js';
import { RouteProgrammer } from './programmer.js';

interface IpRoute {
  dst: string;
  gateway?: string;
  dev?: string;
  protocol?: string;
  type?: string;
  nexthops?: { gateway: string }[];
  /** With -N, the number: 255 is the local table. */
  table?: string;
}

const lab = fileNamespaces();
let node: Netns;
const pods: Netns[] = [];
let rp: RouteProgrammer;

const PODS = [
  { ifname: 'pn00000000001', ip: '10.65.0.1' },
  { ifname: 'pn00000000002', ip: '10.65.0.2' },
  { ifname: 'pn00000000003', ip: '10.65.0.3' },
];

async function addPod(i: number): Promise<Netns> {
  const p = PODS[i]!;
  const pod = await lab.create(`rtpod${i}`);
  await node.ip('link', 'add', p.ifname, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', pod.name);
  await node.ip('link', 'set', p.ifname, 'address', 'ee:ee:ee:ee:ee:ee', 'up');
  // The test stands in for the ARP responder with the kernel's proxy ARP (answers only when the
  // interface forwards, which the programmer's sysctls turn on).
  await node.sysctl(`net.ipv4.conf.${p.ifname}.proxy_arp`, 1);
  await node.sysctl(`net.ipv4.neigh.${p.ifname}.proxy_delay`, 0);
  await pod.ip('link', 'set', 'eth0', 'up');
  await pod.ip('addr', 'add', `${p.ip}/32`, 'dev', 'eth0');
  await pod.ip('route', 'add', '169.254.1.1', 'dev', 'eth0', 'scope', 'link');
  await pod.ip('route', 'add', 'default', 'via', '169.254.1.1', 'dev', 'eth0');
  pods[i] = pod;
  return pod;
}

const routes = (...args: string[]) => node.ipJson<IpRoute[]>('-N', 'route', 'show', ...args);
const ours = () => routes('proto', String(PODNET_PROTO));
const find = async (dst: string) => (await routes()).find((r) => r.dst === dst);

const inputs = (over: Partial<RouteInputs> = {}): RouteInputs => ({
  localPods: [0, 1].map((i) => ({ ifname: PODS[i]!.ifname, ips: [PODS[i]!.ip] })),
  ownedBlocks: ['10.65.0.0/26'],
  remote: [
    { prefix: '10.65.1.0/26', nextHops: ['172.20.0.2', '172.20.0.3'] },
    { prefix: '10.65.2.0/26', nextHops: ['172.20.0.2'] },
  ],
  ...over,
});

describe.each(backends)('route programmer in a namespace, on %s', (_name, makeKernel) => {
  beforeAll(async () => {
    node = await nodeWithUplink(lab, 'rtnode', { dev: 'up0', peer: 'up1', address: '172.20.0.1/24' });
    await node.ip('route', 'add', 'default', 'via', '172.20.0.254', 'dev', 'up0');
    await addPod(0);
    await addPod(1);
    // A route another protocol owns, on a prefix podnet will also want.
    await node.ip('route', 'add', '10.65.2.0/26', 'via', '172.20.0.9', 'proto', 'static');
    rp = new RouteProgrammer({
      kernel: makeKernel(node.path),
      netns: node.path,
      resyncIntervalMs: 2000,
      families: [4],
    });
    await rp.setDesired(computeDesired(inputs()).routes);
    await rp.start();
  });

  afterAll(async () => {
    await rp?.stop();
  });

  it('installs pod routes, the block blackhole and ECMP remote routes with podnet protocol', async () => {
    const r = await ours();
    const by = new Map(r.map((x) => [x.dst, x]));
    expect(by.get('10.65.0.1')).toMatchObject({ dev: PODS[0]!.ifname });
    expect(by.get('10.65.0.2')).toMatchObject({ dev: PODS[1]!.ifname });
    expect(by.get('10.65.0.0/26')?.type).toBe('6'); // RTN_BLACKHOLE
    expect(
      by
        .get('10.65.1.0/26')
        ?.nexthops?.map((n) => n.gateway)
        .sort(),
    ).toEqual(['172.20.0.2', '172.20.0.3']);
    expect(rp.status()).toMatchObject({ desired: 5, installed: 4, failed: [] });
    // Resyncing a kernel that already matches changes nothing.
    const ops = rp.status().ops;
    await rp.resync();
    expect(rp.status().ops).toEqual(ops);
  });

  it('writes forwarding sysctls inside the node namespace', async () => {
    expect(await node.run('cat', ['/proc/sys/net/ipv4/ip_forward'])).toBe('1\n');
    expect(await node.run('cat', [`/proc/sys/net/ipv4/conf/${PODS[0]!.ifname}/forwarding`])).toBe('1\n');
  });

  it('keeps a permanent neighbour entry per pod, restores one deleted by hand and drops one no longer wanted', async () => {
    const macs = await Promise.all(
      [0, 1].map(
        async (i) => (await pods[i]!.ipJson<{ address: string }[]>('link', 'show', 'eth0'))[0]!.address,
      ),
    );
    const withMacs = (n: number) =>
      computeDesired({
        localPods: [0, 1]
          .slice(0, n)
          .map((i) => ({ ifname: PODS[i]!.ifname, ips: [PODS[i]!.ip], mac: macs[i]! })),
      }).neighbours;
    const neigh = async (i: number) =>
      (
        await node.ipJson<{ dst: string; lladdr?: string; state?: string[] }[]>(
          'neigh',
          'show',
          'dev',
          PODS[i]!.ifname,
        )
      ).find((n) => n.dst === PODS[i]!.ip);
    await rp.setDesiredNeighbours(withMacs(2));
    for (const i of [0, 1]) expect(await neigh(i)).toMatchObject({ lladdr: macs[i], state: ['PERMANENT'] });
    await node.ip('neigh', 'del', PODS[0]!.ip, 'dev', PODS[0]!.ifname);
    await rp.resync();
    expect(await neigh(0)).toMatchObject({ lladdr: macs[0], state: ['PERMANENT'] });
    await rp.setDesiredNeighbours(withMacs(1));
    expect((await neigh(1))?.state).not.toEqual(['PERMANENT']);
    expect(rp.status().neighbours).toEqual({ desired: 1, installed: 1, pending: 0 });
  });

  it('lets two pods on the node reach each other through the host routes', async () => {
    const r = await pods[0]!.exec('ping', ['-c', '1', '-W', '3', PODS[1]!.ip]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
  });

  it('leaves a route of another protocol on the same prefix alone and reports the conflict', async () => {
    const foreign = await find('10.65.2.0/26');
    expect(foreign).toMatchObject({ gateway: '172.20.0.9', protocol: '4' });
    expect(rp.status().conflicts.map((c) => c.desired.dst)).toEqual(['10.65.2.0/26']);
  });

  it('restores a route deleted by hand with the next resync', async () => {
    // `ip route del` fails unless the route was there and is now gone. Reading the table back here
    // would race the programmer, which hears the deletion on netlink and may already have put it back.
    await node.ip('route', 'del', '10.65.0.2/32', 'dev', PODS[1]!.ifname);
    await waitFor('10.65.0.2/32 to be back', () => find('10.65.0.2'), { timeoutMs: 15_000 });
    const r = await pods[0]!.exec('ping', ['-c', '1', '-W', '3', PODS[1]!.ip]);
    expect(r.code).toBe(0);
  });

  it('puts pod routes back when their interface comes up again after going down', async () => {
    await node.ip('link', 'set', PODS[1]!.ifname, 'down');
    await waitFor('the route on the down interface to be pending', () =>
      rp.status().pending.some((p) => p.route.dst === '10.65.0.2/32' && p.reason === 'interface-down'),
    );
    expect(await find('10.65.0.2')).toBeUndefined();
    await node.ip('link', 'set', PODS[1]!.ifname, 'up');
    await waitFor('10.65.0.2/32 to be back after link up', () => find('10.65.0.2'), { timeoutMs: 15_000 });
    expect(rp.status().pending).toEqual([]);
    const r = await pods[0]!.exec('ping', ['-c', '1', '-W', '3', PODS[1]!.ip]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
  });

  it('replaces a changed next hop in place', async () => {
    await rp.setDesired(
      computeDesired(
        inputs({
          remote: [
            { prefix: '10.65.1.0/26', nextHops: ['172.20.0.3'] },
            { prefix: '10.65.2.0/26', nextHops: ['172.20.0.2'] },
          ],
        }),
      ).routes,
    );
    expect(await find('10.65.1.0/26')).toMatchObject({
      gateway: '172.20.0.3',
      protocol: String(PODNET_PROTO),
    });
  });

  it('removes a route that is no longer desired, and nothing else', async () => {
    // Every table but local: the kernel adds a local route for an interface's IPv6 link-local
    // address whenever its DAD ends, which can fall between the two reads (the programmer never
    // writes the local table).
    const notLocal = async () => (await routes('table', 'all')).filter((r) => r.table !== '255');
    const before = await notLocal();
    expect(before.some((r) => r.dst === '10.65.1.0/26')).toBe(true);
    await rp.setDesired(
      computeDesired(inputs({ remote: [{ prefix: '10.65.2.0/26', nextHops: ['172.20.0.2'] }] })).routes,
    );
    const after = await notLocal();
    expect(after).toEqual(before.filter((r) => r.dst !== '10.65.1.0/26'));
  });

  it('gives an interface that appears later its route, and drops it quietly when it vanishes', async () => {
    const withThird = inputs({
      localPods: PODS.map((p) => ({ ifname: p.ifname, ips: [p.ip] })),
      remote: [],
    });
    await rp.setDesired(computeDesired(withThird).routes);
    expect(rp.status().pending.map((p) => `${p.route.dst} ${p.reason}`)).toEqual([
      '10.65.0.3/32 interface-missing',
    ]);
    await addPod(2);
    await waitFor('the route of the late interface', () => find('10.65.0.3'), { timeoutMs: 15_000 });
    const r = await pods[2]!.exec('ping', ['-c', '1', '-W', '3', PODS[0]!.ip]);
    expect(r.code, r.stdout + r.stderr).toBe(0);

    await node.ip('link', 'del', PODS[2]!.ifname);
    await waitFor(
      'the vanished interface to show as pending',
      () => rp.status().pending.some((p) => p.route.dst === '10.65.0.3/32'),
      { timeoutMs: 15_000 },
    );
    expect(await find('10.65.0.3')).toBeUndefined();
    expect(rp.status().failed).toEqual([]);
  });

  it('keeps its routes on a graceful stop and removes only its own when asked to', async () => {
    await rp.stop({ keepRoutes: true });
    expect((await ours()).length).toBeGreaterThan(0);
    const other = new RouteProgrammer({ kernel: makeKernel(node.path), sysctl: false });
    await other.stop({ keepRoutes: false });
    expect(await ours()).toEqual([]);
    expect(await find('10.65.2.0/26')).toMatchObject({ gateway: '172.20.0.9' });
    expect(await find('default')).toMatchObject({ gateway: '172.20.0.254' });
  });
});

describe.each(backends)('neighbour ownership across a restart, on %s', (_name, makeKernel) => {
  let nnode: Netns;
  const A = { ifname: 'pn0000000000a', ip: '10.67.0.1', mac: '02:00:00:00:00:0a' };
  const B = { ifname: 'pn0000000000b', ip: '10.67.0.2', mac: '02:00:00:00:00:0b' };
  const desiredOf = (...ps: (typeof A)[]) => ps.map((p) => ({ ...p, family: 4 as const }));
  const programmer = () =>
    new RouteProgrammer({ kernel: makeKernel(nnode.path), sysctl: false, resyncIntervalMs: 0 });
  const entries = async () =>
    new Map(
      (
        await nnode.ipJson<
          { dst: string; dev: string; lladdr?: string; state?: string[]; protocol?: string }[]
        >('-N', 'neigh', 'show', 'nud', 'permanent')
      ).map((n) => [`${n.dst}@${n.dev}`, `${n.lladdr} ${n.protocol ?? '-'}`]),
    );

  beforeAll(async () => {
    nnode = await lab.create('rtneigh');
    for (const p of [A, B]) {
      await nnode.ip('link', 'add', p.ifname, 'type', 'veth', 'peer', 'name', `${p.ifname}p`);
      await nnode.ip('link', 'set', p.ifname, 'up');
      await nnode.ip('link', 'set', `${p.ifname}p`, 'up');
    }
  });

  it('a new programmer instance (simulated restart) cleans up a stale neighbour it owned and leaves a foreign one; uninstall removes only its own', async () => {
    const first = programmer();
    await first.setDesiredNeighbours(desiredOf(A, B));
    await first.start();
    expect(await entries()).toEqual(
      new Map([
        [`${A.ip}@${A.ifname}`, `${A.mac} ${PODNET_PROTO}`],
        [`${B.ip}@${B.ifname}`, `${B.mac} ${PODNET_PROTO}`],
      ]),
    );
    await first.stop({ keepRoutes: true });
    // Foreign permanent entries on a pod interface: one without an owner, one of another protocol.
    await nnode.ip(
      'neigh',
      'replace',
      '10.67.0.8',
      'lladdr',
      '02:00:00:00:00:08',
      'dev',
      B.ifname,
      'nud',
      'permanent',
    );
    await nnode.ip(
      'neigh',
      'replace',
      '10.67.0.9',
      'lladdr',
      '02:00:00:00:00:09',
      'dev',
      B.ifname,
      'nud',
      'permanent',
      'protocol',
      '4',
    );
    const before = await entries();
    expect(before.size).toBe(4);

    // The restarted programmer touches nothing until it is told which neighbours it wants...
    const second = programmer();
    await second.start();
    expect(await entries()).toEqual(before);
    expect(second.status().neighbours).toEqual({ desired: 0, installed: 2, pending: 0 });
    // ...then removes its own stale entry (B, now gone from the desired set) and nothing else.
    await second.setDesiredNeighbours(desiredOf(A));
    const after = await entries();
    expect(after).toEqual(
      new Map([
        [`${A.ip}@${A.ifname}`, `${A.mac} ${PODNET_PROTO}`],
        [`10.67.0.8@${B.ifname}`, '02:00:00:00:00:08 -'],
        [`10.67.0.9@${B.ifname}`, '02:00:00:00:00:09 4'],
      ]),
    );
    expect(second.status()).toMatchObject({
      failed: [],
      neighbours: { desired: 1, installed: 1, pending: 0 },
    });
    // A desired address held by a foreign entry is taken over: podnet's MAC and protocol.
    await second.setDesiredNeighbours(desiredOf(A, { ...B, ip: '10.67.0.8' }));
    expect((await entries()).get(`10.67.0.8@${B.ifname}`)).toBe(`${B.mac} ${PODNET_PROTO}`);
    // Uninstall (stop without keepRoutes): podnet's entries go, the foreign one stays.
    await second.stop({ keepRoutes: false });
    expect(await entries()).toEqual(new Map([[`10.67.0.9@${B.ifname}`, '02:00:00:00:00:09 4']]));
  });
});

describe.each(backends)('IPv6 routes in a namespace, on %s', (_name, makeKernel) => {
  let v6node: Netns;
  let v6: RouteProgrammer;
  const v6routes = (...args: string[]) => v6node.ipJson<IpRoute[]>('-N', '-6', 'route', 'show', ...args);

  beforeAll(async () => {
    v6node = await nodeWithUplink(lab, 'rtnode6', { dev: 'up0', peer: 'up1', address: 'fd00:ff::1/64' });
    await v6node.ip('link', 'add', 'pn0000000006a', 'type', 'veth', 'peer', 'name', 'pod6');
    await v6node.ip('link', 'set', 'pn0000000006a', 'up');
    await v6node.ip('link', 'set', 'pod6', 'up');
    v6 = new RouteProgrammer({ kernel: makeKernel(v6node.path), netns: v6node.path, resyncIntervalMs: 0 });
    await v6.setDesired(
      computeDesired({
        localPods: [{ ifname: 'pn0000000006a', ips: ['fd00:10::6'] }],
        ownedBlocks: ['fd00:10::/122'],
        remote: [{ prefix: 'fd00:20::/122', nextHops: ['fd00:ff::3', 'fd00:ff::2'] }],
      }).routes,
    );
    await v6.start();
  });

  afterAll(async () => {
    await v6?.stop();
  });

  it('installs /128 pod routes, a blackhole and ECMP via routes, and leaves them be on resync', async () => {
    const r = new Map((await v6routes('proto', String(PODNET_PROTO))).map((x) => [x.dst, x]));
    expect(r.get('fd00:10::6')).toMatchObject({ dev: 'pn0000000006a' });
    expect(r.get('fd00:10::/122')?.type).toBe('6');
    expect(
      r
        .get('fd00:20::/122')
        ?.nexthops?.map((n) => n.gateway)
        .sort(),
    ).toEqual(['fd00:ff::2', 'fd00:ff::3']);
    expect(v6.status()).toMatchObject({ installed: 3, failed: [], conflicts: [] });
    const ops = v6.status().ops;
    await v6.resync();
    await v6.resync();
    expect(v6.status().ops).toEqual(ops);
    expect(await v6node.run('cat', ['/proc/sys/net/ipv6/conf/pn0000000006a/forwarding'])).toBe('1\n');
    expect(await v6node.run('cat', ['/proc/sys/net/ipv6/conf/pn0000000006a/accept_ra'])).toBe('0\n');
  });
});
