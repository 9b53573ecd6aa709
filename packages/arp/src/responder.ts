// The ARP proxy responder: one AF_PACKET socket per pod interface, answering with the host MAC.
// The decision is the pure `decide`; this shell owns sockets, counters, metrics and logs.
//
// Reply cache: after `decidePrepared` decides to answer a frame, the responder installs that frame's
// key (its DECISION_BYTES, ifindex and packet type) and the reply it sent in the socket's reply
// cache (@podnet/native), so the addon answers the same request again without calling JS. decide
// stays the only place that decides: the cache only repeats its answers, and is cleared whenever
// the interface's addresses or MAC change. See README.md.
import {
  type NativeError,
  openPacket,
  type PacketMeta,
  type PacketOptions,
  type PacketSocket,
} from '@podnet/native';
import { netnsSysctl, procSysctl, Rtnl, type SysctlEntry, type SysctlWriter } from '@podnet/rtnetlink';
import type { Logger } from 'pino';
import { Counter, Gauge, type Registry } from 'prom-client';
import {
  type ArpInterface,
  decidePrepared,
  decisionMask,
  IGNORE_REASONS,
  type IgnoreReason,
  type PreparedInterface,
  prepareInterface,
} from './decide.js';
import { ArpError } from './errors.js';
import { ETH_P_ARP, isIPv4, MALFORMED_REASONS, type MalformedReason, normalizeMac } from './frame.js';

export type ArpMode = 'userspace' | 'kernel';

export interface ArpResponderOptions {
  /** `userspace` (default): our responder answers at once. `kernel`: proxy_arp=1, proxy_delay=0. */
  mode?: ArpMode;
  logger?: Logger;
  /** Metrics are registered here when given (podnet_arp_*). */
  registry?: Registry;
  /** Network namespace of the interfaces (a path); default: the process's own. */
  netns?: string;
  /** How interface sysctls are written; default: /proc/sys, or `nsenter` into `netns`. */
  sysctl?: SysctlWriter;
  /**
   * Stop serving an interface by itself when the kernel deletes it (rtnetlink link events).
   * Default true.
   */
  followLinks?: boolean;
  /**
   * Opens the packet socket; injectable for unit tests. The responder asks for `reuseFrameBuffer`
   * (it keeps nothing from a frame after its callback) and a `replyCache` of replyCacheSize entries.
   */
  openSocket?: (opts: PacketOptions) => PacketSocket;
  /**
   * Entries in each interface's reply cache (1..64; default 8: a pod asks for its gateway, by
   * broadcast and by unicast refresh, and seldom anything else). 0 turns the cache off: every frame
   * is decided in JS.
   */
  replyCacheSize?: number;
  /**
   * Read each socket on a receive thread of the addon (`fastPathThread` of @podnet/native), so a
   * request the reply cache answers never waits for Node's event loop; the rest still reaches JS.
   * Default true. false, or replyCacheSize 0: the socket is polled on the event loop.
   */
  fastPathThread?: boolean;
}

export interface ArpStats {
  mode: ArpMode;
  interfaces: number;
  /** Replies sent, by JS and by the reply cache. */
  replies: number;
  /** Of `replies`, those the sockets' reply caches sent (requests decided before). */
  repliesFromCache: number;
  ignored: Record<IgnoreReason, number>;
  malformed: Record<MalformedReason, number>;
  /** Frames the kernel refused to send, and receive errors. */
  errors: number;
}

interface Served {
  iface: ArpInterface;
  /** The hot-path form of `iface` (with the reusable reply frame). */
  prepared: PreparedInterface;
  socket?: PacketSocket;
}

const IFNAME_RE = /^[^/:\s]{1,15}$/;

/** Checks an interface given by the agent; throws ARP_ERR_INVALID naming the field and value. */
export function checkInterface(i: ArpInterface): ArpInterface {
  const bad = (field: string, value: unknown, why: string) =>
    new ArpError('ARP_ERR_INVALID', `${field}: ${JSON.stringify(value)} ${why}`);
  if (typeof i.ifname !== 'string' || !IFNAME_RE.test(i.ifname))
    throw bad('ifname', i.ifname, 'is not an interface name');
  if (!Number.isInteger(i.ifindex) || i.ifindex < 1)
    throw bad('ifindex', i.ifindex, 'is not an interface index');
  const mac = normalizeMac(i.hostMac ?? '');
  if (!mac) throw bad('hostMac', i.hostMac, 'is not a MAC address');
  i.podIPs.forEach((ip, n) => {
    if (!isIPv4(ip)) throw bad(`podIPs[${n}]`, ip, 'is not an IPv4 address');
  });
  return { ifname: i.ifname, ifindex: i.ifindex, podIPs: [...i.podIPs], hostMac: mac };
}

/** Whether decisions for `a` and `b` (same ifindex) are the same: same pod addresses and MAC. */
function sameAnswers(a: ArpInterface, b: ArpInterface): boolean {
  if (a.hostMac !== b.hostMac || a.podIPs.length !== b.podIPs.length) return false;
  const ips = new Set(a.podIPs);
  return b.podIPs.every((ip) => ips.has(ip));
}

/**
 * Answers pods' ARP for 169.254.1.1 and every other off-link address with the host MAC.
 *
 *   const arp = new ArpResponder({ mode: 'userspace', logger, registry });
 *   await arp.addInterface({ ifname: 'pn0123456789a', ifindex: 7, podIPs: ['10.65.0.7'], hostMac: 'ee:ee:ee:ee:ee:ee' });
 *   await arp.removeInterface('pn0123456789a');
 *   arp.stats(); await arp.close();
 */
export class ArpResponder {
  readonly mode: ArpMode;
  private readonly log: Logger | undefined;
  private readonly netns: string | undefined;
  private readonly sysctl: SysctlWriter;
  private readonly open: NonNullable<ArpResponderOptions['openSocket']>;
  private readonly served = new Map<string, Served>();
  private closed = false;
  private readonly followLinks: boolean;
  private readonly replyCacheSize: number;
  private readonly fastPathThread: boolean;
  /** Cache replies of sockets closed since (a socket's count goes with it). */
  private closedCacheReplies = 0;
  /** Cache replies already added to the replies metric. */
  private cacheRepliesInMetric = 0;
  private linkWatch: Promise<{ rtnl: Rtnl; sub: { close(): void } } | undefined> | undefined;
  /** Counted in JS; replies here are the ones JS sent. */
  private readonly counts: Omit<ArpStats, 'mode' | 'interfaces' | 'repliesFromCache'>;
  private readonly metrics:
    | {
        replies: Counter;
        cacheReplies: Counter;
        ignored: Counter<'reason'>;
        malformed: Counter<'reason'>;
        errors: Counter;
        interfaces: Gauge;
      }
    | undefined;

  constructor(opts: ArpResponderOptions = {}) {
    const mode = opts.mode ?? 'userspace';
    if (mode !== 'userspace' && mode !== 'kernel') {
      throw new ArpError('ARP_ERR_INVALID', `mode: ${JSON.stringify(mode)} is not 'userspace' or 'kernel'`);
    }
    this.mode = mode;
    this.log = opts.logger?.child({ component: 'arp', mode });
    this.netns = opts.netns;
    this.sysctl = opts.sysctl ?? (opts.netns ? netnsSysctl(opts.netns) : procSysctl());
    this.open = opts.openSocket ?? openPacket;
    this.followLinks = opts.followLinks ?? true;
    const cacheSize = opts.replyCacheSize ?? 8;
    if (!Number.isInteger(cacheSize) || cacheSize < 0 || cacheSize > 64) {
      throw new ArpError('ARP_ERR_INVALID', `replyCacheSize: ${JSON.stringify(cacheSize)} is not in 0..64`);
    }
    this.replyCacheSize = cacheSize;
    this.fastPathThread = opts.fastPathThread ?? true;
    this.counts = {
      replies: 0,
      ignored: Object.fromEntries(IGNORE_REASONS.map((r) => [r, 0])) as Record<IgnoreReason, number>,
      malformed: Object.fromEntries(MALFORMED_REASONS.map((r) => [r, 0])) as Record<MalformedReason, number>,
      errors: 0,
    };
    if (opts.registry) {
      const registers = [opts.registry];
      // The reply caches count in the addon; a scrape brings their counts into the replies metric.
      this.metrics = {
        replies: new Counter({
          name: 'podnet_arp_replies_total',
          help: 'ARP replies sent to pods (by JS and by the reply cache)',
          registers,
          collect: () => this.syncCacheReplies(),
        }),
        cacheReplies: new Counter({
          name: 'podnet_arp_cache_replies_total',
          help: 'Of the ARP replies, those sent by the reply cache (requests answered before)',
          registers,
          collect: () => this.syncCacheReplies(),
        }),
        ignored: new Counter({
          name: 'podnet_arp_ignored_total',
          help: 'ARP frames seen on pod interfaces and not answered, by reason',
          labelNames: ['reason'],
          registers,
        }),
        malformed: new Counter({
          name: 'podnet_arp_malformed_total',
          help: 'Malformed ARP frames dropped, by reason',
          labelNames: ['reason'],
          registers,
        }),
        errors: new Counter({
          name: 'podnet_arp_errors_total',
          help: 'ARP socket send/receive errors',
          registers,
        }),
        interfaces: new Gauge({ name: 'podnet_arp_interfaces', help: 'Pod interfaces served', registers }),
      };
    }
  }

  /** Serves (or re-serves, with new addresses) a pod interface. Idempotent. */
  async addInterface(input: ArpInterface): Promise<void> {
    if (this.closed) throw new ArpError('ARP_ERR_CLOSED', 'addInterface: the ARP responder is closed');
    const iface = checkInterface(input);
    const cur = this.served.get(iface.ifname);
    if (cur && cur.iface.ifindex === iface.ifindex) {
      if (sameAnswers(cur.iface, iface)) return; // the agent re-adds on every resync
      cur.iface = iface; // new pod addresses take effect on the next frame
      cur.prepared = prepareInterface(iface);
      // Answers decided with the old addresses or MAC must not be repeated.
      cur.socket?.replyCache?.clear();
      return;
    }
    if (cur) this.closeServed(cur);
    if (this.followLinks) this.watchLinks();
    const served: Served = { iface, prepared: prepareInterface(iface) };
    if (this.mode === 'kernel') {
      await this.writeSysctls(iface.ifname, '1');
    } else {
      await this.writeSysctls(iface.ifname, '0');
      served.socket = this.openSocketFor(served);
    }
    this.served.set(iface.ifname, served);
    this.metrics?.interfaces.set(this.served.size);
    this.log?.info(
      { ifname: iface.ifname, ifindex: iface.ifindex, podIPs: iface.podIPs },
      'serving pod interface',
    );
  }

  /** Stops serving an interface; an interface that is already gone is not an error. */
  async removeInterface(ifname: string): Promise<void> {
    const cur = this.served.get(ifname);
    if (!cur) return;
    this.served.delete(ifname);
    this.closeServed(cur);
    if (this.mode === 'kernel') {
      await this.writeSysctls(ifname, '0').catch((err: unknown) =>
        this.log?.debug({ ifname, err }, 'interface gone before proxy_arp was cleared'),
      );
    }
    this.metrics?.interfaces.set(this.served.size);
    this.log?.info({ ifname }, 'stopped serving pod interface');
  }

  interfaces(): ArpInterface[] {
    return [...this.served.values()].map((s) => s.iface);
  }

  stats(): ArpStats {
    const fromCache = this.cacheReplies();
    return {
      mode: this.mode,
      interfaces: this.served.size,
      replies: this.counts.replies + fromCache,
      repliesFromCache: fromCache,
      ignored: { ...this.counts.ignored },
      malformed: { ...this.counts.malformed },
      errors: this.counts.errors,
    };
  }

  /** Closes every socket. Kernel-mode sysctls are left as they are (pods keep their gateway). */
  async close(): Promise<void> {
    this.closed = true;
    const w = await this.linkWatch;
    w?.sub.close();
    w?.rtnl.close();
    this.linkWatch = undefined;
    for (const s of this.served.values()) this.closeServed(s);
    this.served.clear();
    this.metrics?.interfaces.set(0);
  }

  /** Replies sent by the sockets' reply caches, closed sockets included. */
  private cacheReplies(): number {
    let n = this.closedCacheReplies;
    for (const s of this.served.values()) n += s.socket?.replyCache?.hits ?? 0;
    return n;
  }

  /** Adds the cache replies not yet counted to the replies metrics (at scrape time). */
  private syncCacheReplies(): void {
    if (!this.metrics) return;
    const n = this.cacheReplies();
    const delta = n - this.cacheRepliesInMetric;
    if (delta <= 0) return;
    this.cacheRepliesInMetric = n;
    this.metrics.replies.inc(delta);
    this.metrics.cacheReplies.inc(delta);
  }

  /** Subscribes once to link events, so a deleted interface stops being served. */
  private watchLinks(): void {
    if (this.linkWatch) return;
    this.linkWatch = (async () => {
      try {
        const rtnl = await Rtnl.open(this.netns ? { netns: this.netns } : {});
        const sub = rtnl.subscribe(['link'], (ev) => {
          if (ev.type !== 'link' || ev.op !== 'del') return;
          const s = this.served.get(ev.link.name);
          if (!s || s.iface.ifindex !== ev.link.index) return;
          this.log?.info({ ifname: ev.link.name, ifindex: ev.link.index }, 'pod interface deleted');
          void this.removeInterface(ev.link.name);
        });
        sub.unref();
        if (this.closed) {
          sub.close();
          rtnl.close();
          return undefined;
        }
        return { rtnl, sub };
      } catch (err) {
        this.log?.warn(
          { err: (err as Error).message },
          'cannot follow link events; the agent removes interfaces',
        );
        return undefined;
      }
    })();
  }

  private async writeSysctls(ifname: string, proxyArp: '0' | '1'): Promise<void> {
    const entries: SysctlEntry[] = [{ key: `net/ipv4/conf/${ifname}/proxy_arp`, value: proxyArp }];
    if (proxyArp === '1') {
      // The kernel answers proxy ARP only on a forwarding interface (arp_process), at once only
      // with proxy_delay 0.
      entries.push({ key: `net/ipv4/neigh/${ifname}/proxy_delay`, value: '0' });
      entries.push({ key: `net/ipv4/conf/${ifname}/forwarding`, value: '1' });
    }
    try {
      const changed = await this.sysctl.apply(entries);
      if (changed.length) this.log?.debug({ ifname, changed }, 'interface sysctls written');
    } catch (err) {
      throw new ArpError('ARP_ERR_SYSCTL', `${ifname}: cannot write proxy_arp sysctls`, { cause: err });
    }
  }

  /**
   * Opens and starts the interface's socket. A receive thread that cannot start (pthread_create
   * failed: thread limit, memory) is not fatal: the socket is opened again and read on the event
   * loop, and a warning says so.
   */
  private openSocketFor(served: Served, thread = this.fastPathThread): PacketSocket {
    const { ifname, ifindex } = served.iface;
    let socket: PacketSocket;
    try {
      socket = this.open({
        ifindex,
        ethertype: ETH_P_ARP,
        ...(this.netns ? { netns: this.netns } : {}),
        // Frames are read into one reused buffer (no allocation per frame). Our own replies do not
        // come back: the kernel hands outgoing frames only to ETH_P_ALL sockets.
        reuseFrameBuffer: true,
        // An ARP frame is 42 bytes (60 padded): the smallest receive buffers, per pod interface.
        frameBufferSize: 4096,
        // The reply cache answers on the socket's receive thread (fastPathThread), or in the poll
        // callback on the event loop.
        ...(this.replyCacheSize > 0
          ? {
              replyCache: { mask: decisionMask(), capacity: this.replyCacheSize },
              fastPathThread: thread,
            }
          : {}),
      });
    } catch (err) {
      throw new ArpError('ARP_ERR_SOCKET', `${ifname}: cannot open a packet socket on ifindex ${ifindex}`, {
        cause: err,
      });
    }
    try {
      socket.onFrame(
        (frame, meta) => this.onFrame(served, socket, frame, meta),
        (err: NativeError) => {
          if (err.code === 'ENETDOWN') {
            // A socket bound to an interface that is (or goes) down says so once, and receives
            // again once it is up: every new pod's veth is served before its plugin brings it up.
            this.log?.debug({ ifname }, 'pod interface down');
            return;
          }
          this.counts.errors++;
          this.metrics?.errors.inc();
          this.log?.warn({ ifname, code: err.code, err: err.message }, 'packet socket receive error');
        },
      );
    } catch (err) {
      socket.close();
      const e = err as Partial<NativeError>;
      if (thread && socket.threaded && e.syscall === 'pthread_create') {
        this.log?.warn(
          { ifname, code: e.code, err: e.message },
          'cannot start the receive thread: reading the socket on the event loop',
        );
        return this.openSocketFor(served, false);
      }
      throw new ArpError('ARP_ERR_SOCKET', `${ifname}: cannot start reading the packet socket`, {
        cause: err,
      });
    }
    return socket;
  }

  private onFrame(served: Served, socket: PacketSocket, frame: Buffer, meta: PacketMeta): void {
    // The reply is served.prepared.reply, sent before the next frame is decided.
    const d = decidePrepared(frame, meta, served.prepared);
    switch (d.type) {
      case 'reply':
        try {
          socket.send(d.frame);
        } catch (err) {
          this.counts.errors++;
          this.metrics?.errors.inc();
          this.log?.warn({ ifname: served.iface.ifname, err: (err as Error).message }, 'ARP reply not sent');
          return;
        }
        this.counts.replies++;
        this.metrics?.replies.inc();
        // The same request again (same DECISION_BYTES, ifindex, packet type) gets this reply from
        // the addon. d.frame is rewritten by the next decision: the addon keeps a copy.
        try {
          socket.replyCache?.add(frame, meta, d.frame);
        } catch (err) {
          this.log?.warn(
            { ifname: served.iface.ifname, err: (err as Error).message },
            'reply cache not updated',
          );
        }
        return;
      case 'ignore':
        this.counts.ignored[d.reason]++;
        this.metrics?.ignored.inc({ reason: d.reason });
        return;
      case 'malformed':
        this.counts.malformed[d.reason]++;
        this.metrics?.malformed.inc({ reason: d.reason });
        this.log?.debug(
          { ifname: served.iface.ifname, reason: d.reason, detail: d.detail },
          'malformed ARP frame dropped',
        );
        return;
    }
  }

  private closeServed(s: Served): void {
    this.closedCacheReplies += s.socket?.replyCache?.hits ?? 0;
    s.socket?.close();
    s.socket = undefined;
  }
}
