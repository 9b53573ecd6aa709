import type { PacketMeta, PacketSocket } from '@podnet/native';
import type { SysctlEntry, SysctlWriter } from '@podnet/rtnetlink';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { REQUEST_FOR_GATEWAY } from './__fixtures__/frames.js';
import { PACKET_TYPE } from './decide.js';
import { ArpResponder, checkInterface } from './responder.js';

class FakeSocket implements PacketSocket {
  readonly fd = 99;
  sent: Buffer[] = [];
  closed = false;
  deliver: ((frame: Buffer, meta: PacketMeta) => void) | undefined;
  send(frame: Buffer) {
    this.sent.push(frame);
  }
  onFrame(cb: (frame: Buffer, meta: PacketMeta) => void) {
    this.deliver = cb;
  }
  ref() {}
  unref() {}
  close() {
    this.closed = true;
  }
}

function fixture(mode: 'userspace' | 'kernel' = 'userspace') {
  const sockets: FakeSocket[] = [];
  const writes: SysctlEntry[][] = [];
  const sysctl: SysctlWriter = {
    async apply(entries) {
      writes.push([...entries]);
      return entries.map((e) => e.key);
    },
  };
  const registry = new Registry();
  const arp = new ArpResponder({
    mode,
    registry,
    sysctl,
    followLinks: false,
    openSocket: () => {
      const s = new FakeSocket();
      sockets.push(s);
      return s;
    },
  });
  return { arp, sockets, writes, registry };
}

const pod = { ifname: 'pn0123456789a', ifindex: 7, podIPs: ['10.65.0.7'], hostMac: 'EE:EE:EE:EE:EE:EE' };

describe('ArpResponder', () => {
  it('answers through the interface socket and counts replies, ignores and malformed frames', async () => {
    const { arp, sockets, registry } = fixture();
    await arp.addInterface(pod);
    const s = sockets[0]!;
    s.deliver!(REQUEST_FOR_GATEWAY, { ifindex: 7, pktType: PACKET_TYPE.broadcast });
    s.deliver!(REQUEST_FOR_GATEWAY, { ifindex: 7, pktType: PACKET_TYPE.outgoing });
    s.deliver!(REQUEST_FOR_GATEWAY.subarray(0, 20), { ifindex: 7, pktType: PACKET_TYPE.broadcast });
    expect(s.sent).toHaveLength(1);
    expect(s.sent[0]!.subarray(6, 12).toString('hex')).toBe('eeeeeeeeeeee');
    const st = arp.stats();
    expect(st).toMatchObject({ mode: 'userspace', interfaces: 1, replies: 1, errors: 0 });
    expect(st.ignored.outgoing).toBe(1);
    expect(st.malformed.short).toBe(1);
    const text = await registry.metrics();
    expect(text).toContain('podnet_arp_replies_total 1');
    expect(text).toContain('podnet_arp_malformed_total{reason="short"} 1');
    expect(text).toContain('podnet_arp_interfaces 1');
  });

  it('counts a send the kernel refuses as an error and keeps running', async () => {
    const { arp, sockets } = fixture();
    await arp.addInterface(pod);
    sockets[0]!.send = () => {
      throw new Error('ENOBUFS');
    };
    sockets[0]!.deliver!(REQUEST_FOR_GATEWAY, { ifindex: 7, pktType: PACKET_TYPE.broadcast });
    expect(arp.stats()).toMatchObject({ replies: 0, errors: 1 });
  });

  it('updates pod addresses in place and reopens the socket when the ifindex changes', async () => {
    const { arp, sockets } = fixture();
    await arp.addInterface(pod);
    await arp.addInterface({ ...pod, podIPs: ['10.65.0.7', '10.65.0.8'] });
    expect(sockets).toHaveLength(1);
    expect(arp.interfaces()[0]!.podIPs).toEqual(['10.65.0.7', '10.65.0.8']);
    await arp.addInterface({ ...pod, ifindex: 9 });
    expect(sockets).toHaveLength(2);
    expect(sockets[0]!.closed).toBe(true);
    await arp.removeInterface(pod.ifname);
    await arp.removeInterface(pod.ifname);
    expect(sockets[1]!.closed).toBe(true);
    expect(arp.stats().interfaces).toBe(0);
  });

  it('sets proxy_arp=0 in userspace mode and proxy_arp=1, proxy_delay=0 in kernel mode, with no socket', async () => {
    const u = fixture('userspace');
    await u.arp.addInterface(pod);
    expect(u.writes[0]).toEqual([{ key: 'net/ipv4/conf/pn0123456789a/proxy_arp', value: '0' }]);
    const k = fixture('kernel');
    await k.arp.addInterface(pod);
    expect(k.sockets).toHaveLength(0);
    expect(k.writes[0]).toEqual([
      { key: 'net/ipv4/conf/pn0123456789a/proxy_arp', value: '1' },
      { key: 'net/ipv4/neigh/pn0123456789a/proxy_delay', value: '0' },
      { key: 'net/ipv4/conf/pn0123456789a/forwarding', value: '1' },
    ]);
  });

  it('refuses to work after close', async () => {
    const { arp } = fixture();
    await arp.close();
    await expect(arp.addInterface(pod)).rejects.toMatchObject({ code: 'ARP_ERR_CLOSED' });
  });

  it('rejects an unknown mode naming it', () => {
    expect(() => new ArpResponder({ mode: 'both' as 'kernel' })).toThrow('mode: "both"');
  });
});

describe('checkInterface', () => {
  it.each([
    [{ ...pod, ifname: 'a/b' }, 'ifname: "a/b"'],
    [{ ...pod, ifindex: 0 }, 'ifindex: 0'],
    [{ ...pod, hostMac: 'ee-ee' }, 'hostMac: "ee-ee"'],
    [{ ...pod, podIPs: ['10.65.0.7', 'fd00::1'] }, 'podIPs[1]: "fd00::1"'],
  ])('rejects bad input %#, naming the field and value', (input, message) => {
    expect(() => checkInterface(input)).toThrow(message);
  });

  it('normalises the MAC to lower case', () => {
    expect(checkInterface(pod).hostMac).toBe('ee:ee:ee:ee:ee:ee');
  });
});
