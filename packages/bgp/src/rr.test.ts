// Route reflection with real BIRD 2 peers on one L2 segment (a bridge in its own namespace):
// bgp-ts reflects between two BIRD clients, and is itself a client of a BIRD route reflector.
import { rmSync } from 'node:fs';
import { cleanupStale, type Netns, NetnsSet, ProcessGroup, vethPair } from '@podnet/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Bird, birdEstablished, startBird, wait } from './__fixtures__/daemons.js';
import { SpeakerProc } from './__fixtures__/proc.js';

const lab = new NetnsSet();
const procs = new ProcessGroup();
const birds: Bird[] = [];
let us: SpeakerProc;
let us2: SpeakerProc;
let c1: Bird;
let c2: Bird;
let rr: Bird;

const timers =
  'hold time 3; keepalive time 1; connect retry time 1; connect delay time 1; error wait time 1, 2;';
const clientConf = (id: string, route: string) => `
router id ${id};
protocol device { }
protocol static s4 { ipv4; route ${route} blackhole; }
protocol bgp rr1 {
  local ${id} as 65000; neighbor 10.41.0.1 as 65000; direct; ${timers}
  ipv4 { import all; export where source = RTS_STATIC; };
}
`;
const rrConf = `
router id 10.41.0.4;
protocol device { }
template bgp C {
  local 10.41.0.4 as 65000; direct; rr client; rr cluster id 10.41.0.4; ${timers}
  ipv4 { import all; export all; };
}
protocol bgp pus from C { neighbor 10.41.0.1 as 65000; }
protocol bgp pus2 from C { neighbor 10.41.0.5 as 65000; }
`;

async function node(br: Netns, name: string, addr: string): Promise<Netns> {
  const ns = await lab.create(`rr${name}`);
  await vethPair(ns, 'eth0', br, `p-${name}`);
  await br.ip('link', 'set', `p-${name}`, 'master', 'br0');
  await ns.ip('addr', 'add', `${addr}/24`, 'dev', 'eth0');
  return ns;
}

beforeAll(async () => {
  await cleanupStale();
  const br = await lab.create('rrbr');
  await br.ip('link', 'add', 'br0', 'type', 'bridge');
  await br.ip('link', 'set', 'br0', 'up');
  const nsUs = await node(br, 'us', '10.41.0.1');
  const nsC1 = await node(br, 'c1', '10.41.0.2');
  const nsC2 = await node(br, 'c2', '10.41.0.3');
  const nsRr = await node(br, 'rr', '10.41.0.4');
  const nsUs2 = await node(br, 'us2', '10.41.0.5');
  c1 = await startBird(nsC1, procs, clientConf('10.41.0.2', '10.51.1.0/24'));
  c2 = await startBird(nsC2, procs, clientConf('10.41.0.3', '10.51.2.0/24'));
  rr = await startBird(nsRr, procs, rrConf);
  birds.push(c1, c2, rr);
  us = new SpeakerProc(nsUs, procs, {
    asn: 65000,
    routerId: '10.41.0.1',
    clusterId: '10.41.0.1',
    listen: { port: 179 },
  });
  for (const a of ['10.41.0.2', '10.41.0.3'])
    await us.addPeer({ address: a, asn: 65000, holdTime: 3, connectRetry: 1, routeReflectorClient: true });
  await us.addPeer({ address: '10.41.0.4', asn: 65000, holdTime: 3, connectRetry: 1 });
  await us.originate('10.53.0.0/24');
  await us.start();
  us2 = new SpeakerProc(nsUs2, procs, { asn: 65000, routerId: '10.41.0.5', listen: { port: 179 } });
  await us2.addPeer({ address: '10.41.0.4', asn: 65000, holdTime: 3, connectRetry: 1 });
  await us2.originate('10.52.0.0/24');
  await us2.start();
}, 60_000);

afterAll(async () => {
  await us?.close(procs).catch(() => {});
  await us2?.close(procs).catch(() => {});
  await procs.stopAll();
  await lab.destroy();
  for (const b of birds) rmSync(b.dir, { recursive: true, force: true });
});

describe('route reflection with BIRD 2', { timeout: 90_000 }, () => {
  it('establishes every iBGP session', async () => {
    await wait(
      'clients up',
      async () => (await birdEstablished(c1, 'rr1')) && (await birdEstablished(c2, 'rr1')),
      { timeoutMs: 20_000 },
    );
    await wait(
      'BIRD RR up',
      async () => (await birdEstablished(rr, 'pus')) && (await birdEstablished(rr, 'pus2')),
      { timeoutMs: 20_000 },
    );
  });

  it('reflects each client route to the other client with ORIGINATOR_ID and our CLUSTER_LIST', async () => {
    const at2 = await wait('c1 route at c2', async () => {
      const out = await c2.route('10.51.1.0/24');
      return out.includes('via 10.41.0.2 ') ? out : undefined;
    });
    expect(at2).toMatch(/BGP\.originator_id: 10\.41\.0\.2/);
    expect(at2).toMatch(/BGP\.cluster_list: 10\.41\.0\.1/);
    const at1 = await wait('c2 route at c1', async () => {
      const out = await c1.route('10.51.2.0/24');
      return out.includes('via 10.41.0.3 ') ? out : undefined;
    });
    expect(at1).toMatch(/BGP\.originator_id: 10\.41\.0\.3/);
    // Our own route reaches both clients with us as next hop.
    await wait('our route at c1', async () => (await c1.route('10.53.0.0/24')).includes('via 10.41.0.1 '));
  });

  it('learns, as a client of the BIRD reflector, the route of the other client', async () => {
    const r = await wait('us2 route in our Loc-RIB', () => us.lookup('10.52.0.0/24'));
    expect(r.nextHops).toEqual(['10.41.0.5']);
    expect(r.attrs.originatorId).toBe('10.41.0.5');
    expect(r.attrs.clusterList).toEqual(['10.41.0.4']);
    const back = await wait('our route at us2 via the reflector', () => us2.lookup('10.53.0.0/24'));
    expect(back.nextHops).toEqual(['10.41.0.1']);
    expect(back.attrs.originatorId).toBe('10.41.0.1');
  });

  it('drops a reflected route that carries our own CLUSTER_ID (loop prevention)', async () => {
    // c1's route goes us -> BIRD RR -> us2 with CLUSTER_LIST [10.41.0.4, 10.41.0.1]; BIRD also
    // reflects it back to us, and we must keep the path we learned directly from c1.
    const at2 = await wait('c1 route at us2', () => us2.lookup('10.51.1.0/24'));
    expect(at2.attrs.clusterList).toEqual(['10.41.0.4', '10.41.0.1']);
    const ours = await us.call<{ prefix: string }[]>('adjRibIn', '10.41.0.4');
    expect(ours.map((r) => r.prefix)).not.toContain('10.51.1.0/24');
    expect((await us.lookup('10.51.1.0/24'))?.from).toBe('10.41.0.2');
  });
});
