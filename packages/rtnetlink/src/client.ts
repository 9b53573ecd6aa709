// The rtnetlink client: request/ACK with sequence numbers, dumps (filtered in the kernel with
// NETLINK_GET_STRICT_CHK), batches of many requests per sendmsg with per-request results, and
// multicast subscriptions. One client talks to one network namespace.
import { type NativeError, type NetlinkSocket, openNetlink } from '@podnet/native';
import { type Address, type AddressSpec, encodeAddr, encodeAddrDump } from './addr.js';
import { decodeNlError, type NlMsg, parseAttrs, splitMessages, str } from './codec.js';
import { NLM_F, NLMSG, NLMSGERR_ATTR, RTNLGRP } from './constants.js';
import { errnoName, invalid, kernelError, NetlinkError } from './errors.js';
import type { Family } from './ip.js';
import {
  encodeLinkDel,
  encodeLinkDump,
  encodeLinkGet,
  encodeLinkSet,
  encodeVeth,
  type Link,
  type LinkChange,
  type LinkRef,
  type VethOptions,
} from './link.js';
import { decodeMessage, type RtnlMessage } from './messages.js';
import { encodeNeigh, encodeNeighDump, type Neighbour, type NeighbourSpec } from './neigh.js';
import {
  describeRoute,
  encodeRoute,
  encodeRouteDump,
  type Route,
  type RouteFilter,
  type RouteInfo,
  routeMatches,
} from './route.js';
import { Writer } from './writer.js';

export interface RtnlOptions {
  /** Namespace to work in: /var/run/netns/NAME or /proc/PID/ns/net. Default: the caller's. */
  netns?: string;
  /**
   * An unbound NETLINK_ROUTE socket to take over instead of opening one, e.g. one made inside a
   * pod's namespace by another process and passed over a unix socket (it works in the namespace it
   * was created in, so this process needs no setns). The client owns it from here on. subscribe()
   * is not available on such a client (it opens sockets of its own).
   */
  fd?: number;
  /** Socket receive buffer (bytes). Default 32 MiB: a whole batch's replies fit. */
  rcvbuf?: number;
  /** Fail a request that gets no reply in this time. Default 30 s. */
  timeoutMs?: number;
}

/** One request of a batch (a discriminated union keyed by `type`). */
export type Request =
  | { type: 'route.add' | 'route.replace' | 'route.append' | 'route.del'; route: Route }
  | { type: 'addr.add' | 'addr.del'; addr: AddressSpec }
  | { type: 'neigh.add' | 'neigh.del'; neigh: NeighbourSpec }
  | { type: 'link.set'; index: number; change: LinkChange }
  | { type: 'link.del'; link: LinkRef };

/** The outcome of one request of a batch; errors name the request and its index. */
export type BatchResult = { ok: true } | { ok: false; error: NetlinkError };

export interface BatchOptions {
  /**
   * Ask for an ACK for every request (NLM_F_ACK). Default false: the kernel reports errors only,
   * and a barrier at the end of each chunk confirms the rest. Results are the same either way.
   */
  ackEach?: boolean;
  /** Bytes per sendmsg. Default 256 KiB. */
  chunkBytes?: number;
}

export type EventGroup = 'link' | 'addr' | 'route' | 'neigh' | 'route4' | 'route6' | 'addr4' | 'addr6';

/** A decoded event (link/addr/route/neigh message) from a subscription. */
export type RtnlEvent = Extract<RtnlMessage, { type: 'link' | 'addr' | 'route' | 'neigh' }>;

export interface Subscription {
  close(): void;
  /** The subscription no longer keeps the process alive. */
  unref(): void;
  ref(): void;
}

const OK: BatchResult = Object.freeze({ ok: true }) as BatchResult;

type Pending =
  | {
      kind: 'ack';
      desc: string;
      resolve: () => void;
      reject: (e: NetlinkError) => void;
      timer: NodeJS.Timeout;
    }
  | {
      kind: 'get';
      desc: string;
      resolve: (m: RtnlMessage | undefined) => void;
      reject: (e: NetlinkError) => void;
      timer: NodeJS.Timeout;
    }
  | {
      kind: 'dump';
      desc: string;
      items: RtnlMessage[];
      interrupted: boolean;
      resolve: (r: { items: RtnlMessage[]; interrupted: boolean }) => void;
      reject: (e: NetlinkError) => void;
      timer: NodeJS.Timeout;
    };

interface BatchState {
  base: number;
  n: number;
  results: (BatchResult | undefined)[];
  reqs: Request[];
}

const GROUPS: Record<EventGroup, number[]> = {
  link: [RTNLGRP.LINK],
  addr: [RTNLGRP.IPV4_IFADDR, RTNLGRP.IPV6_IFADDR],
  addr4: [RTNLGRP.IPV4_IFADDR],
  addr6: [RTNLGRP.IPV6_IFADDR],
  route: [RTNLGRP.IPV4_ROUTE, RTNLGRP.IPV6_ROUTE],
  route4: [RTNLGRP.IPV4_ROUTE],
  route6: [RTNLGRP.IPV6_ROUTE],
  neigh: [RTNLGRP.NEIGH],
};

/** A short description of a request for error messages. */
export function describeRequest(r: Request): string {
  if (r === null || typeof r !== 'object') return `not a request: ${String(r)}`;
  switch (r.type) {
    case 'route.add':
    case 'route.replace':
    case 'route.append':
    case 'route.del':
      return describeRoute(r.type, r.route ?? ({} as Route));
    case 'addr.add':
    case 'addr.del':
      return `${r.type} ${r.addr?.address} dev ${r.addr?.index}`;
    case 'neigh.add':
    case 'neigh.del':
      return `${r.type} ${r.neigh?.dst}${r.neigh?.proxy ? ' proxy' : ''} dev ${r.neigh?.index}`;
    case 'link.set':
      return `link.set ${r.index} ${JSON.stringify(r.change)}`;
    case 'link.del':
      return `link.del ${'index' in (r.link ?? {}) ? (r.link as { index: number }).index : (r.link as { name: string })?.name}`;
    default:
      return `unknown request ${JSON.stringify((r as { type?: unknown }).type)}`;
  }
}

/** Encodes one batch request; throws NL_ERR_INVALID for bad input. */
function encodeRequest(w: Writer, r: Request, seq: number, ack: boolean): void {
  switch (r?.type) {
    case 'route.add':
      encodeRoute(w, 'add', r.route, seq, ack);
      return;
    case 'route.replace':
      encodeRoute(w, 'replace', r.route, seq, ack);
      return;
    case 'route.append':
      encodeRoute(w, 'append', r.route, seq, ack);
      return;
    case 'route.del':
      encodeRoute(w, 'del', r.route, seq, ack);
      return;
    case 'addr.add':
      encodeAddr(w, 'add', r.addr, seq, ack);
      return;
    case 'addr.del':
      encodeAddr(w, 'del', r.addr, seq, ack);
      return;
    case 'neigh.add':
      encodeNeigh(w, 'add', r.neigh, seq, ack);
      return;
    case 'neigh.del':
      encodeNeigh(w, 'del', r.neigh, seq, ack);
      return;
    case 'link.set':
      encodeLinkSet(w, r.index, r.change, seq, ack);
      return;
    case 'link.del':
      encodeLinkDel(w, r.link, seq, ack);
      return;
    default:
      throw invalid('request.type', (r as { type?: unknown } | undefined)?.type, 'unknown request type');
  }
}

/**
 * An rtnetlink client bound to one network namespace.
 *
 * ```ts
 * const nl = await Rtnl.open({ netns: '/var/run/netns/foo' });
 * await nl.routes.add({ dst: '10.1.0.0/26', type: 'blackhole', protocol: 80 });
 * const mine = await nl.routes.list({ protocol: 80 });
 * const results = await nl.batch(mine.map((route) => ({ type: 'route.del', route })));
 * nl.close();
 * ```
 * An idle client does not keep the process alive; pending requests do.
 */
export class Rtnl {
  private readonly sock: NetlinkSocket;
  // Grows as a request needs (Writer.ensure); a client per namespace or per CNI call stays small.
  private readonly w = new Writer(4096);
  private seq = 1;
  private readonly pending = new Map<number, Pending>();
  private readonly batches = new Set<BatchState>();
  /**
   * The kernel runs one dump per socket at a time (a second gets EBUSY). Dumps queue here, in
   * order: each waits for the one before it to end (DONE, error, timeout or close).
   */
  private dumpTail: Promise<void> = Promise.resolve();
  private dumpsQueued = 0;
  private inflight = 0;
  private closed = false;
  private readonly timeoutMs: number;
  private readonly netns: string | undefined;
  /** The socket was handed over (RtnlOptions.fd): its namespace cannot be reopened here. */
  private readonly adopted: boolean;
  private readonly rcvbuf: number;

  /** Routes: list (kernel-filtered), add/replace/append/del, ECMP, blackhole, IPv4/IPv6. */
  readonly routes = {
    list: (filter: RouteFilter = {}): Promise<RouteInfo[]> => this.listRoutes(filter),
    add: (r: Route): Promise<void> => this.single({ type: 'route.add', route: r }),
    replace: (r: Route): Promise<void> => this.single({ type: 'route.replace', route: r }),
    append: (r: Route): Promise<void> => this.single({ type: 'route.append', route: r }),
    del: (r: Route): Promise<void> => this.single({ type: 'route.del', route: r }),
  };

  /** Links: list, get by name or index, veth creation, changes, delete. */
  readonly links = {
    list: (): Promise<Link[]> => this.listLinks(),
    /** The link, or undefined when there is none with that name/index. */
    get: (ref: string | number | LinkRef): Promise<Link | undefined> => this.getLink(ref),
    /**
     * Creates a veth pair; resolves with the first end as the kernel reports it (undefined when
     * `netnsFd` moved it out of this client's namespace).
     */
    createVeth: async (o: VethOptions): Promise<Link | undefined> => {
      await this.ackRequest(`link.createVeth ${o?.name}`, (seq) => encodeVeth(this.w, o, seq));
      return o.netnsFd === undefined ? this.getLink({ name: o.name }) : undefined;
    },
    set: (ref: string | number | LinkRef, change: LinkChange): Promise<void> => this.setLink(ref, change),
    del: (ref: string | number | LinkRef): Promise<void> =>
      this.single({ type: 'link.del', link: toRef(ref) }),
  };

  /** Interface addresses. */
  readonly addrs = {
    list: (filter: { family?: Family; index?: number } = {}): Promise<Address[]> => this.listAddrs(filter),
    add: (a: AddressSpec): Promise<void> => this.single({ type: 'addr.add', addr: a }),
    del: (a: AddressSpec): Promise<void> => this.single({ type: 'addr.del', addr: a }),
  };

  /** Neighbours: permanent entries (add = create or replace) and proxy entries. */
  readonly neigh = {
    list: (filter: { family?: Family; index?: number; proxy?: boolean } = {}): Promise<Neighbour[]> =>
      this.listNeigh(filter),
    add: (n: NeighbourSpec): Promise<void> => this.single({ type: 'neigh.add', neigh: n }),
    del: (n: NeighbourSpec): Promise<void> => this.single({ type: 'neigh.del', neigh: n }),
  };

  private constructor(sock: NetlinkSocket, opts: RtnlOptions) {
    this.sock = sock;
    this.timeoutMs = opts.timeoutMs ?? 30_000;
    this.netns = opts.netns;
    this.adopted = opts.fd !== undefined;
    this.rcvbuf = opts.rcvbuf ?? 32 << 20;
  }

  /** Opens a client in `opts.netns` (or the caller's namespace). Throws NL_ERR_SOCKET on failure. */
  static async open(opts: RtnlOptions = {}): Promise<Rtnl> {
    let sock: NetlinkSocket;
    try {
      sock = openNetlink({
        protocol: 0,
        netns: opts.netns,
        rcvbuf: opts.rcvbuf ?? 32 << 20,
        ...(opts.fd !== undefined ? { fd: opts.fd } : {}),
      });
    } catch (err) {
      throw socketError('open', err);
    }
    try {
      sock.setExtAck(true);
      sock.setStrictCheck(true);
    } catch (err) {
      sock.close();
      throw socketError('setsockopt', err);
    }
    const nl = new Rtnl(sock, opts);
    sock.onMessage(
      (d) => nl.onDatagram(d),
      (e) => nl.onSocketError(e),
    );
    sock.unref();
    return nl;
  }

  /** Closes the socket; pending requests fail with NL_ERR_CLOSED. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.sock.close();
    const err = new NetlinkError('NL_ERR_CLOSED', 'rtnetlink client closed');
    for (const [seq, p] of this.pending) {
      clearTimeout(p.timer);
      this.pending.delete(seq);
      p.reject(err);
    }
    for (const b of this.batches) this.failBatch(b, err);
  }

  /**
   * Sends many requests in few sendmsg calls (chunks of `chunkBytes`) and returns one result per
   * request, in order. One failing request does not stop the others; its result carries the
   * kernel's errno and extended ACK message and names the request (`error.index`, `error.request`).
   * Invalid input fails only that request (NL_ERR_INVALID).
   */
  async batch(reqs: Request[], opts: BatchOptions = {}): Promise<BatchResult[]> {
    this.assertOpen();
    if (!Array.isArray(reqs)) throw invalid('batch', reqs, 'must be an array of requests');
    const n = reqs.length;
    const results: (BatchResult | undefined)[] = new Array(n);
    if (n === 0) return [];
    const ackEach = opts.ackEach ?? false;
    const chunkBytes = opts.chunkBytes ?? 256 * 1024;
    const base = this.takeSeq(n);
    const state: BatchState = { base, n, results, reqs };
    this.batches.add(state);
    this.hold();
    try {
      const w = new Writer(Math.min(chunkBytes + 4096, 1 << 22));
      let prevBarrier: Promise<void> | undefined;
      let chunkStart = 0;
      for (let i = 0; i < n; i++) {
        if (this.closed) throw new NetlinkError('NL_ERR_CLOSED', 'rtnetlink client closed during the batch');
        try {
          encodeRequest(w, reqs[i]!, base + i, ackEach);
        } catch (err) {
          results[i] = { ok: false, error: annotate(err, describeRequest(reqs[i]!), i, base + i) };
        }
        if (w.length >= chunkBytes || i === n - 1) {
          // Barrier: a NOOP with NLM_F_ACK is answered after every request before it in the chunk.
          const barrierSeq = this.takeSeq(1);
          const m = w.beginMsg(NLMSG.NOOP, NLM_F.REQUEST | NLM_F.ACK, barrierSeq);
          w.endMsg(m);
          const barrier = this.expectAck(barrierSeq, 'batch barrier');
          const from = chunkStart;
          const to = i + 1;
          chunkStart = to;
          try {
            this.sock.send(w.view());
          } catch (err) {
            this.forget(barrierSeq);
            const e = socketError('send', err);
            for (let k = from; k < to; k++)
              if (!results[k])
                results[k] = { ok: false, error: annotate(e, describeRequest(reqs[k]!), k, base + k) };
            w.reset();
            continue;
          }
          w.reset();
          const confirm = barrier.then(() => {
            for (let k = from; k < to; k++) if (!results[k]) results[k] = OK;
          });
          confirm.catch(() => {}); // awaited below; this only marks it handled if we bail out early
          // Keep at most two chunks' replies queued in the socket.
          if (prevBarrier) await prevBarrier;
          prevBarrier = confirm;
        }
      }
      if (prevBarrier) await prevBarrier;
    } catch (err) {
      const e = err instanceof NetlinkError ? err : socketError('batch', err);
      this.failBatch(state, e);
    } finally {
      this.batches.delete(state);
      this.release();
    }
    return results as BatchResult[];
  }

  /**
   * Subscribes to link/addr/route/neigh events on a separate socket in the same namespace.
   * `onError` receives NL_ERR_OVERRUN when events were lost (resync then) and socket errors.
   */
  subscribe(
    groups: EventGroup[],
    cb: (ev: RtnlEvent) => void,
    onError?: (err: NetlinkError) => void,
    opts: {
      rcvbuf?: number;
      /**
       * Only messages whose nlmsg_type this accepts (RTM_*) are decoded and delivered; e.g.
       * `(t) => t !== RTM.NEWROUTE` skips the cost of decoding route additions nobody reads.
       * `body` is the message after the nlmsghdr (e.g. the rtmsg header, to filter on protocol).
       */
      types?: (nlmsgType: number, body: Buffer) => boolean;
    } = {},
  ): Subscription {
    this.assertOpen();
    const nums = new Set<number>();
    for (const g of groups) {
      const list = GROUPS[g];
      if (!list) throw invalid('groups', g, `unknown group (one of ${Object.keys(GROUPS).join(', ')})`);
      for (const x of list) nums.add(x);
    }
    if (this.adopted) {
      throw invalid(
        'subscribe',
        'fd',
        'a client over a handed-over socket cannot open another in its namespace',
      );
    }
    let sock: NetlinkSocket;
    try {
      sock = openNetlink({
        protocol: 0,
        netns: this.netns,
        groups: [...nums],
        rcvbuf: opts.rcvbuf ?? this.rcvbuf,
      });
    } catch (err) {
      throw socketError('subscribe', err);
    }
    sock.onMessage(
      (d) => {
        const { msgs, error } = splitMessages(d);
        const types = opts.types;
        for (const m of msgs) {
          if (types && !types(m.type, m.body)) continue;
          const ev = decodeMessage(m);
          if (ev.type === 'link' || ev.type === 'addr' || ev.type === 'route' || ev.type === 'neigh') cb(ev);
          else if (ev.type === 'malformed' && onError) onError(ev.error);
        }
        if (error && onError) onError(error);
      },
      (e) => {
        if (!onError) return;
        if (e.code === 'ENOBUFS')
          onError(new NetlinkError('NL_ERR_OVERRUN', 'events were lost (ENOBUFS): resync', { cause: e }));
        else onError(socketError('recv', e));
      },
    );
    return {
      close: () => sock.close(),
      unref: () => sock.unref(),
      ref: () => sock.ref(),
    };
  }

  // ---- internals ----------------------------------------------------------------------------

  private assertOpen(): void {
    if (this.closed) throw new NetlinkError('NL_ERR_CLOSED', 'rtnetlink client is closed');
  }

  private takeSeq(n: number): number {
    if (this.seq + n >= 0xffff_ffff) this.seq = 1;
    const s = this.seq;
    this.seq += n;
    return s;
  }

  private hold(): void {
    if (this.inflight++ === 0 && !this.closed) this.sock.ref();
  }

  private release(): void {
    if (--this.inflight === 0 && !this.closed) this.sock.unref();
  }

  private forget(seq: number): void {
    const p = this.pending.get(seq);
    if (!p) return;
    clearTimeout(p.timer);
    this.pending.delete(seq);
    this.release();
  }

  private timer(seq: number, desc: string): NodeJS.Timeout {
    return setTimeout(() => {
      const p = this.pending.get(seq);
      if (!p) return;
      this.pending.delete(seq);
      this.release();
      p.reject(
        new NetlinkError('NL_ERR_TIMEOUT', `${desc}: no reply within ${this.timeoutMs} ms`, {
          request: desc,
          seq,
        }),
      );
    }, this.timeoutMs);
  }

  private expectAck(seq: number, desc: string): Promise<void> {
    if (this.closed)
      return Promise.reject(new NetlinkError('NL_ERR_CLOSED', `${desc}: rtnetlink client closed`));
    return new Promise<void>((resolve, reject) => {
      this.pending.set(seq, { kind: 'ack', desc, resolve, reject, timer: this.timer(seq, desc) });
      this.hold();
    });
  }

  /** Encodes one request with NLM_F_ACK, sends it and waits for its ACK. */
  private async ackRequest(desc: string, encode: (seq: number) => void): Promise<void> {
    this.assertOpen();
    const seq = this.takeSeq(1);
    this.w.reset();
    encode(seq);
    const done = this.expectAck(seq, desc);
    this.sendOrFail(seq, desc);
    return done;
  }

  private single(r: Request): Promise<void> {
    return this.ackRequest(describeRequest(r), (seq) => encodeRequest(this.w, r, seq, true));
  }

  private sendOrFail(seq: number, desc: string): void {
    try {
      this.sock.send(this.w.view());
    } catch (err) {
      const p = this.pending.get(seq);
      this.forget(seq);
      const e = socketError('send', err, desc);
      if (p) p.reject(e);
      else throw e;
    }
  }

  /** Number of dumps waiting for or running on this socket (for tests and diagnostics). */
  get queuedDumps(): number {
    return this.dumpsQueued;
  }

  /**
   * Runs one dump after every dump issued before it has finished: callers may start dumps
   * concurrently. Single requests and batches do not conflict with a dump and are not queued.
   */
  private async dump(desc: string, encode: (seq: number) => void): Promise<RtnlMessage[]> {
    this.assertOpen();
    const prev = this.dumpTail;
    let done!: () => void;
    this.dumpTail = new Promise<void>((resolve) => {
      done = resolve;
    });
    this.dumpsQueued++;
    this.hold(); // a queued dump keeps the process alive like a running one
    try {
      await prev;
      return await this.dumpNow(desc, encode);
    } finally {
      this.dumpsQueued--;
      this.release();
      done();
    }
  }

  private async dumpNow(desc: string, encode: (seq: number) => void): Promise<RtnlMessage[]> {
    for (let attempt = 0; ; attempt++) {
      this.assertOpen();
      const seq = this.takeSeq(1);
      this.w.reset();
      encode(seq);
      const done = new Promise<{ items: RtnlMessage[]; interrupted: boolean }>((resolve, reject) => {
        this.pending.set(seq, {
          kind: 'dump',
          desc,
          items: [],
          interrupted: false,
          resolve,
          reject,
          timer: this.timer(seq, desc),
        });
        this.hold();
      });
      this.sendOrFail(seq, desc);
      const r = await done;
      // NLM_F_DUMP_INTR: the table changed during the dump; the result may be inconsistent.
      if (!r.interrupted || attempt >= 4) return r.items;
    }
  }

  private async listRoutes(filter: RouteFilter): Promise<RouteInfo[]> {
    let items: RtnlMessage[];
    try {
      items = await this.dump('route.list', (seq) => encodeRouteDump(this.w, filter, seq));
    } catch (err) {
      // A filtered dump of one family fails with ENOENT when the table does not exist: no routes.
      if (err instanceof NetlinkError && err.errnoName === 'ENOENT' && filter.table !== undefined) return [];
      throw err;
    }
    const out: RouteInfo[] = [];
    for (const m of items) if (m.type === 'route' && routeMatches(m.route, filter)) out.push(m.route);
    return out;
  }

  private async listLinks(): Promise<Link[]> {
    const items = await this.dump('link.list', (seq) => encodeLinkDump(this.w, seq));
    const out: Link[] = [];
    for (const m of items) if (m.type === 'link') out.push(m.link);
    return out;
  }

  private async listAddrs(filter: { family?: Family; index?: number }): Promise<Address[]> {
    const items = await this.dump('addr.list', (seq) => encodeAddrDump(this.w, filter.family, seq));
    const out: Address[] = [];
    for (const m of items) {
      if (m.type !== 'addr') continue;
      if (filter.index !== undefined && m.addr.index !== filter.index) continue;
      if (filter.family !== undefined && m.addr.family !== filter.family) continue;
      out.push(m.addr);
    }
    return out;
  }

  private async listNeigh(filter: {
    family?: Family;
    index?: number;
    proxy?: boolean;
  }): Promise<Neighbour[]> {
    const proxy = filter.proxy ?? false;
    const items = await this.dump('neigh.list', (seq) =>
      encodeNeighDump(this.w, filter.family, proxy, filter.index, seq),
    );
    const out: Neighbour[] = [];
    for (const m of items) {
      if (m.type !== 'neigh') continue;
      if (filter.index !== undefined && m.neigh.index !== filter.index) continue;
      if (filter.family !== undefined && m.neigh.family !== filter.family) continue;
      if (m.neigh.proxy !== proxy) continue;
      out.push(m.neigh);
    }
    return out;
  }

  private async getLink(ref: string | number | LinkRef): Promise<Link | undefined> {
    this.assertOpen();
    const r = toRef(ref);
    const desc = `link.get ${'index' in r ? r.index : r.name}`;
    const seq = this.takeSeq(1);
    this.w.reset();
    encodeLinkGet(this.w, r, seq);
    const reply = new Promise<RtnlMessage | undefined>((resolve, reject) => {
      this.pending.set(seq, { kind: 'get', desc, resolve, reject, timer: this.timer(seq, desc) });
      this.hold();
    });
    this.sendOrFail(seq, desc);
    try {
      const m = await reply;
      return m?.type === 'link' ? m.link : undefined;
    } catch (err) {
      if (err instanceof NetlinkError && err.errnoName === 'ENODEV') return undefined;
      throw err;
    }
  }

  private async setLink(ref: string | number | LinkRef, change: LinkChange): Promise<void> {
    const r = toRef(ref);
    let index: number;
    if ('index' in r) index = r.index;
    else {
      const link = await this.getLink(r);
      if (!link) {
        throw new NetlinkError('NL_ERR_KERNEL', `link.set ${r.name}: ENODEV (no such link)`, {
          errno: 19,
          errnoName: 'ENODEV',
          request: `link.set ${r.name}`,
        });
      }
      index = link.index;
    }
    return this.single({ type: 'link.set', index, change });
  }

  private failBatch(b: BatchState, e: NetlinkError): void {
    for (let k = 0; k < b.n; k++) {
      if (!b.results[k])
        b.results[k] = { ok: false, error: annotate(e, describeRequest(b.reqs[k]!), k, b.base + k) };
    }
  }

  private onSocketError(e: NativeError): void {
    if (e.code !== 'ENOBUFS') return;
    // Replies were lost: nothing pending can be trusted to complete.
    const err = new NetlinkError(
      'NL_ERR_OVERRUN',
      'netlink receive queue overflowed (ENOBUFS): replies were lost',
      {
        cause: e,
      },
    );
    for (const [seq, p] of this.pending) {
      clearTimeout(p.timer);
      this.pending.delete(seq);
      this.release();
      p.reject(err);
    }
  }

  private onDatagram(d: Buffer): void {
    const { msgs } = splitMessages(d);
    for (const m of msgs) this.onMsg(m);
  }

  private onMsg(m: NlMsg): void {
    if (m.type === NLMSG.ERROR) {
      const e = decodeNlError(m);
      if (e instanceof Error) return;
      const seq = e.reqSeq;
      const p = this.pending.get(seq);
      if (p) {
        clearTimeout(p.timer);
        this.pending.delete(seq);
        this.release();
        if (e.errno === 0) {
          if (p.kind === 'ack') p.resolve();
          else if (p.kind === 'get') p.resolve(undefined);
          else p.resolve({ items: p.items, interrupted: p.interrupted });
        } else {
          p.reject(kernelError(e.errno, e.extAck, e.extAckOffset, p.desc, seq));
        }
        return;
      }
      for (const b of this.batches) {
        const i = seq - b.base;
        if (i >= 0 && i < b.n) {
          if (e.errno === 0) b.results[i] = OK;
          else
            b.results[i] = {
              ok: false,
              error: kernelError(e.errno, e.extAck, e.extAckOffset, describeRequest(b.reqs[i]!), seq, i),
            };
          return;
        }
      }
      return;
    }
    const p = this.pending.get(m.seq);
    if (!p) return;
    if (p.kind === 'dump') {
      if (m.flags & NLM_F.DUMP_INTR) p.interrupted = true;
      if (m.type === NLMSG.DONE) {
        clearTimeout(p.timer);
        this.pending.delete(m.seq);
        this.release();
        // With NLM_F_ACK_TLVS a DONE may carry an error code (a failed dump).
        const code = m.body.length >= 4 ? m.body.readInt32LE(0) : 0;
        if (code < 0) {
          let extAck: string | undefined;
          if (m.flags & NLM_F.ACK_TLVS) {
            const tlv = parseAttrs(m.body, 4);
            if (!(tlv instanceof Error)) extAck = str(tlv[NLMSGERR_ATTR.MSG]);
          }
          p.reject(kernelError(-code, extAck, undefined, p.desc, m.seq));
        } else p.resolve({ items: p.items, interrupted: p.interrupted });
        return;
      }
      p.items.push(decodeMessage(m));
      return;
    }
    if (p.kind === 'get') {
      clearTimeout(p.timer);
      this.pending.delete(m.seq);
      this.release();
      p.resolve(decodeMessage(m));
    }
  }
}

function toRef(ref: string | number | LinkRef): LinkRef {
  if (typeof ref === 'number') return { index: ref };
  if (typeof ref === 'string') return { name: ref };
  if (ref && typeof ref === 'object' && ('index' in ref || 'name' in ref)) return ref;
  throw invalid('link', ref, 'must be a name, an index, { index } or { name }');
}

function socketError(what: string, err: unknown, request?: string): NetlinkError {
  const e = err as Partial<NativeError> | undefined;
  const code = typeof e?.code === 'string' ? e.code : undefined;
  const errno = typeof e?.errno === 'number' ? e.errno : undefined;
  if (err instanceof NetlinkError) return err;
  return new NetlinkError(
    code === 'ENOBUFS' ? 'NL_ERR_OVERRUN' : 'NL_ERR_SOCKET',
    `${request ? `${request}: ` : ''}${what}: ${err instanceof Error ? err.message : String(err)}`,
    {
      errno,
      errnoName: code ?? (errno ? errnoName(errno) : undefined),
      request,
      cause: err,
    },
  );
}

/** Copies a shared error onto one request of a batch (index, seq, request named). */
function annotate(err: unknown, request: string, index: number, seq: number): NetlinkError {
  if (err instanceof NetlinkError) {
    return new NetlinkError(err.code, `${request}: ${err.message}`, {
      errno: err.errno,
      errnoName: err.errnoName,
      extAck: err.extAck,
      extAckOffset: err.extAckOffset,
      request,
      index,
      seq,
      cause: err.cause ?? undefined,
    });
  }
  return new NetlinkError('NL_ERR_SOCKET', `${request}: ${String(err)}`, { request, index, seq, cause: err });
}
