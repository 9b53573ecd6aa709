import type { PacketMeta, PacketOptions, PacketSocket, ReplyCache } from '@podnet/native';
import type { SysctlEntry, SysctlWriter } from '@podnet/rtnetlink';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { REQUEST_FOR_GATEWAY } from './__fixtures__/frames.js';
import { decisionMask, PACKET_TYPE } from './decide.js';
import { ArpResponder, type ArpResponderOptions, checkInterface } from './responder.js';

/** Records what the responder installs; `hits` is set by the test (the addon counts them). */
class FakeReplyCache implements ReplyCache {
  entries: { frame: Buffer; meta: PacketMeta; reply: Buffer }[] = [];
  clears = 0;
  hits = 0;
  get size() {
    return this.entries.length;
  }
  add(frame: Buffer, meta: PacketMeta, reply: Buffer) {
    this.entries.push({ frame: Buffer.from(frame), meta: { ...meta }, reply: Buffer.from(reply) });
  }
  clear() {
    this.entries = [];
    this.clears++;
  }
}

class FakeSocket implements PacketSocket {
  readonly fd = 99;
  readonly threaded: boolean;
  readonly dropped = 0;
  replyCache: FakeReplyCache | undefined;
  constructor(readonly opts?: PacketOptions) {
    if (opts?.replyCache) this.replyCache = new FakeReplyCache();
    this.threaded = opts?.fastPathThread === true;
  }
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

function fixture(
  mode: 'userspace' | 'kernel' = 'userspace',
  replyCacheSize?: number,
  extra: Partial<ArpResponderOptions> = {},
) {
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
    ...(replyCacheSize === undefined ? {} : { replyCacheSize }),
    ...extra,
    openSocket: (opts) => {
      const s = new FakeSocket(opts);
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

  it('reads the socket on the event loop when its receive thread cannot start', async () => {
    // A threaded socket fails to start, as on EAGAIN from pthread_create.
    const opened: FakeSocket[] = [];
    const failing = new ArpResponder({
      followLinks: false,
      sysctl: { apply: async (entries) => entries.map((e) => e.key) },
      openSocket: (opts) => {
        const s = new FakeSocket(opts);
        if (s.threaded)
          s.onFrame = () => {
            throw Object.assign(new Error('pthread_create: EAGAIN'), {
              code: 'EAGAIN',
              syscall: 'pthread_create',
            });
          };
        opened.push(s);
        return s;
      },
    });
    await failing.addInterface(pod);
    expect(opened.map((s) => [s.threaded, s.closed])).toEqual([
      [true, true],
      [false, false],
    ]);
    opened[1]!.deliver!(REQUEST_FOR_GATEWAY, { ifindex: 7, pktType: PACKET_TYPE.broadcast });
    expect(opened[1]!.sent).toHaveLength(1);
    expect(failing.stats().replies).toBe(1);
    // Any other failure to start is an error of addInterface, and the socket is closed.
    const broken = new ArpResponder({
      followLinks: false,
      sysctl: { apply: async (entries) => entries.map((e) => e.key) },
      openSocket: (opts) => {
        const s = new FakeSocket(opts);
        s.onFrame = () => {
          throw Object.assign(new Error('EBADF'), { code: 'EBADF', syscall: 'poll' });
        };
        opened.push(s);
        return s;
      },
    });
    await expect(broken.addInterface(pod)).rejects.toMatchObject({ code: 'ARP_ERR_SOCKET' });
    expect(opened.at(-1)!.closed).toBe(true);
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

describe('ArpResponder with reply caches', () => {
  const broadcast = { ifindex: 7, pktType: PACKET_TYPE.broadcast };

  it('opens each socket with a cache keyed on the bytes decide reads, and installs each reply it sends', async () => {
    const { arp, sockets } = fixture();
    await arp.addInterface(pod);
    const s = sockets[0]!;
    expect(s.opts?.replyCache).toEqual({ mask: decisionMask(), capacity: 8 });
    s.deliver!(REQUEST_FOR_GATEWAY, broadcast);
    s.deliver!(REQUEST_FOR_GATEWAY, { ifindex: 7, pktType: PACKET_TYPE.outgoing });
    s.deliver!(REQUEST_FOR_GATEWAY.subarray(0, 20), broadcast);
    // Only the answered request is installed, with the frame actually sent.
    expect(s.replyCache!.entries).toHaveLength(1);
    const e = s.replyCache!.entries[0]!;
    expect(e.frame.equals(REQUEST_FOR_GATEWAY)).toBe(true);
    expect(e.meta).toEqual(broadcast);
    expect(e.reply.equals(s.sent[0]!)).toBe(true);
  });

  it('does not install a reply the kernel refused to send', async () => {
    const { arp, sockets } = fixture();
    await arp.addInterface(pod);
    sockets[0]!.send = () => {
      throw new Error('ENOBUFS');
    };
    sockets[0]!.deliver!(REQUEST_FOR_GATEWAY, broadcast);
    expect(sockets[0]!.replyCache!.entries).toHaveLength(0);
  });

  it('counts the replies the caches sent in stats and metrics, also after their socket closed', async () => {
    const { arp, sockets, registry } = fixture();
    await arp.addInterface(pod);
    sockets[0]!.deliver!(REQUEST_FOR_GATEWAY, broadcast);
    sockets[0]!.replyCache!.hits = 5;
    expect(arp.stats()).toMatchObject({ replies: 6, repliesFromCache: 5 });
    let text = await registry.metrics();
    expect(text).toContain('podnet_arp_replies_total 6');
    expect(text).toContain('podnet_arp_cache_replies_total 5');
    sockets[0]!.replyCache!.hits = 7;
    await arp.removeInterface(pod.ifname);
    expect(arp.stats()).toMatchObject({ replies: 8, repliesFromCache: 7 });
    text = await registry.metrics();
    expect(text).toContain('podnet_arp_replies_total 8');
    expect(text).toContain('podnet_arp_cache_replies_total 7');
  });

  it('clears the cache when the pod addresses or the host MAC change, not when nothing does', async () => {
    const { arp, sockets } = fixture();
    await arp.addInterface(pod);
    const cache = sockets[0]!.replyCache!;
    sockets[0]!.deliver!(REQUEST_FOR_GATEWAY, broadcast);
    expect(cache.size).toBe(1);
    await arp.addInterface({ ...pod });
    expect(cache.size).toBe(1);
    await arp.addInterface({ ...pod, podIPs: ['10.65.0.7', '169.254.1.1'] });
    expect(cache.size).toBe(0);
    // 169.254.1.1 is now the pod's own: decide ignores it, and nothing is installed.
    sockets[0]!.deliver!(REQUEST_FOR_GATEWAY, broadcast);
    expect(cache.size).toBe(0);
    expect(arp.stats().ignored['own-address']).toBe(1);
    await arp.addInterface({ ...pod, hostMac: '02:aa:bb:cc:dd:ee' });
    expect(cache.clears).toBe(2);
    sockets[0]!.deliver!(REQUEST_FOR_GATEWAY, broadcast);
    expect(cache.entries[0]!.reply.subarray(6, 12).toString('hex')).toBe('02aabbccddee');
  });

  it('opens sockets without a cache when replyCacheSize is 0, and rejects sizes out of 1..64', async () => {
    const { arp, sockets } = fixture('userspace', 0);
    await arp.addInterface(pod);
    expect(sockets[0]!.opts?.replyCache).toBeUndefined();
    sockets[0]!.deliver!(REQUEST_FOR_GATEWAY, broadcast);
    expect(arp.stats()).toMatchObject({ replies: 1, repliesFromCache: 0 });
    expect(() => new ArpResponder({ replyCacheSize: 65 })).toThrow('replyCacheSize: 65');
  });

  it('reads each socket on a receive thread by default, and on the event loop when told or without a cache', async () => {
    const byDefault = fixture();
    await byDefault.arp.addInterface(pod);
    expect(byDefault.sockets[0]!.opts?.fastPathThread).toBe(true);
    const off = fixture('userspace', undefined, { fastPathThread: false });
    await off.arp.addInterface(pod);
    expect(off.sockets[0]!.opts?.fastPathThread).toBe(false);
    expect(off.sockets[0]!.opts?.replyCache).toBeDefined();
    const noCache = fixture('userspace', 0);
    await noCache.arp.addInterface(pod);
    expect(noCache.sockets[0]!.opts?.fastPathThread).toBeUndefined();
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
