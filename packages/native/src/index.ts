// @podnet/native: the syscalls Node lacks, as a thin typed wrapper over the N-API addon.
//
// Nothing here has logic beyond argument checks: netlink and packet sockets polled on libuv,
// TCP sockets carrying TCP_MD5SIG keys, and creating any of them inside another network namespace.
//
// Namespaces: every `netns` option is a path (`/var/run/netns/NAME` or `/proc/PID/ns/net`). The
// addon enters that namespace on the calling thread, creates the socket, and returns to its own
// namespace before the call returns. A socket stays bound to the namespace it was created in, so
// everything done with it later happens there. No bare `setns` is exported on purpose.
//
// Errors: every failure throws a NativeError whose `code` is the errno name ('EPERM', 'ENOENT', …),
// with `errno` and the failing `syscall`. Bad arguments throw NativeError with code 'EINVAL' and
// syscall 'argument'. Descriptors opened by a failing call are always closed.
import { createRequire } from 'node:module';

export interface AddonInfo {
  napiVersion: number;
}

/** A failed syscall: `code` is the errno name (EPERM, ENOENT, EADDRINUSE…). */
export class NativeError extends Error {
  readonly code: string;
  readonly errno: number;
  readonly syscall: string;
  constructor(message: string, code: string, errno: number, syscall: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'NativeError';
    this.code = code;
    this.errno = errno;
    this.syscall = syscall;
  }
}

interface RawPoller {
  start(onData: (...args: never[]) => void, onError?: (err: unknown) => void): void;
  stop(): void;
  ref(): void;
  unref(): void;
  close(): void;
  /** Kind 2 only: the buffer frames are received into. */
  sharedBuffer(): Buffer | undefined;
  cacheConfigure(mask: Buffer, capacity: number): void;
  cacheAdd(frame: Buffer, ifindex: number, pktType: number, reply: Buffer): void;
  cacheClear(): void;
  cacheStats(): { hits: number; size: number; dropped: number };
}

interface Binding {
  addonInfo(): AddonInfo;
  mallocTune(arenaMax: number, mmapThreshold: number, trimThreshold: number): boolean;
  mallocTrim(): boolean;
  releaseExecutablePages(): number;
  txCreate(fd: number, address: string, port: number): number;
  txArm(
    id: number,
    packet: Buffer,
    intervalUs: number,
    detectMult: number,
    paced: boolean,
    measure: boolean,
  ): boolean;
  txPause(id: number): void;
  txUpdate(id: number, packet: Buffer): boolean;
  txDestroy(id: number): void;
  txStats(id: number, drain: boolean): PeriodicSenderStats | undefined;
  txPriority(nice: number): number;
  nlOpen(
    protocol: number,
    groups: number[],
    netns: string | undefined,
    rcvbuf: number | undefined,
    adoptFd?: number,
  ): {
    fd: number;
    portId: number;
  };
  recvFds(
    fd: number,
    maxBytes: number,
    maxFds: number,
    timeoutMs: number,
  ): Promise<{ data: Buffer; fds: number[]; truncated: boolean }>;
  nlSetOpt(fd: number, opt: number, value: number): void;
  sendBuf(fd: number, buf: Buffer): number;
  packetOpen(ifindex: number, ethertype: number, netns: string | undefined, ignoreOutgoing?: boolean): number;
  tcpSocket(
    family: number,
    bindAddress: string | undefined,
    bindPort: number | undefined,
    md5: [string, string][],
    reuseAddr: boolean,
    netns: string | undefined,
  ): number;
  setTcpMd5(fd: number, peer: string, key: string | null): void;
  closeFd(fd: number): void;
  udpSocket(
    family: number,
    bindAddress: string | undefined,
    bindPort: number,
    ttl: number,
    netns: string | undefined,
  ): { fd: number; port: number };
  udpSendTo(fd: number, buf: Buffer, address: string, port: number): number;
  Poller: new (fd: number, kind: number, bufferSize: number, threaded?: boolean) => RawPoller;
}

const require = createRequire(import.meta.url);

/**
 * Loads the compiled addon. A concurrent rebuild (node-gyp removes build/ first) or a build-cache
 * restore can hide the file for a moment, so a missing file is retried for up to ~5 s before failing
 * with a message saying how to build it.
 */
function loadBinding(): Binding {
  const path = '../build/Release/podnet_native.node';
  const pause = new Int32Array(new SharedArrayBuffer(4));
  for (let attempt = 0; ; attempt++) {
    try {
      return require(path) as Binding;
    } catch (err) {
      if (attempt >= 25) {
        throw new NativeError(
          `@podnet/native: the compiled addon ${path} could not be loaded (${(err as Error).message}); ` +
            'build it with `npm run build -w @podnet/native` (needs node-gyp, make, g++ and Node headers)',
          'ENOENT',
          2,
          'dlopen',
          { cause: err },
        );
      }
      Atomics.wait(pause, 0, 0, 200);
    }
  }
}

const binding = loadBinding();

/** Converts whatever the addon threw into a NativeError (keeps NativeErrors as they are). */
export function toNativeError(err: unknown): NativeError {
  if (err instanceof NativeError) return err;
  if (err instanceof Error) {
    const e = err as Error & { code?: unknown; errno?: unknown; syscall?: unknown };
    return new NativeError(
      err.message,
      typeof e.code === 'string' ? e.code : 'EUNKNOWN',
      typeof e.errno === 'number' ? e.errno : 0,
      typeof e.syscall === 'string' ? e.syscall : 'unknown',
      { cause: err },
    );
  }
  return new NativeError(String(err), 'EUNKNOWN', 0, 'unknown');
}

function wrap<T>(fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    throw toNativeError(err);
  }
}

function invalid(field: string, value: unknown, why: string): NativeError {
  return new NativeError(`${field}: ${why} (got ${JSON.stringify(value)})`, 'EINVAL', 22, 'argument');
}

function checkInt(field: string, value: unknown, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw invalid(field, value, `must be an integer in ${min}..${max}`);
  }
  return value;
}

export function addonInfo(): AddonInfo {
  return binding.addonInfo();
}

/** glibc malloc settings (mallopt(3)); an unset field is left as it is. */
export interface MallocSettings {
  /** M_ARENA_MAX: arenas threads share (glibc's default: 8 per core). */
  arenaMax?: number;
  /** M_MMAP_THRESHOLD: bytes from which a block gets its own mapping (and fixes the threshold). */
  mmapThreshold?: number;
  /** M_TRIM_THRESHOLD: free bytes at the top of the heap given back at once. */
  trimThreshold?: number;
}

/**
 * Tunes glibc's malloc for a long-lived process with many threads that allocate little: fewer
 * arenas, and large blocks in mappings of their own, so that freed memory goes back to the kernel.
 * False when the C library is not glibc (nothing changed) or a value was refused.
 */
export function mallocTune(s: MallocSettings): boolean {
  const arenaMax = checkInt('arenaMax', s.arenaMax ?? 0, 0, 1024);
  const mmapThreshold = checkInt('mmapThreshold', s.mmapThreshold ?? 0, 0, 32 * 1024 * 1024);
  const trimThreshold = checkInt('trimThreshold', s.trimThreshold ?? 0, 0, 2 ** 30);
  return binding.mallocTune(arenaMax, mmapThreshold, trimThreshold);
}

/** malloc_trim(0): gives free pages of every malloc arena back to the kernel. True when some were. */
export function mallocTrim(): boolean {
  return binding.mallocTrim();
}

/**
 * Unmaps from this process the resident pages of the executable's read-only mappings (its code and
 * constants). The pages used afterwards come back from the page cache by a minor fault; the ones
 * only start-up used stay out. Mappings holding a private copy of a page are left alone. Returns the
 * bytes that were resident. Meant for a long-lived process once its start-up is over.
 */
export function releaseExecutablePages(): number {
  return binding.releaseExecutablePages();
}

// SOL_NETLINK options (linux/netlink.h).
const NETLINK_ADD_MEMBERSHIP = 1;
const NETLINK_DROP_MEMBERSHIP = 2;
const NETLINK_EXT_ACK = 11;
const NETLINK_GET_STRICT_CHK = 12;

/** Netlink protocol numbers (linux/netlink.h). */
export const NETLINK_ROUTE = 0;

export interface NetlinkOptions {
  /** Netlink protocol, e.g. NETLINK_ROUTE = 0. */
  protocol: number;
  /** Multicast group numbers (RTNLGRP_*) joined with NETLINK_ADD_MEMBERSHIP. */
  groups?: number[];
  /** /var/run/netns/NAME or /proc/PID/ns/net: the socket is created inside that namespace. */
  netns?: string;
  /**
   * Receive buffer in bytes, set with SO_RCVBUFFORCE (root) or SO_RCVBUF. When given, the send
   * buffer is raised too, to max(rcvbuf, 1 MiB), so one sendmsg can carry a large batch.
   */
  rcvbuf?: number;
  /**
   * Take over this AF_NETLINK socket instead of creating one (e.g. one another process created
   * inside a pod's namespace and passed over SCM_RIGHTS: a netlink socket stays in the namespace
   * it was made in). It must be unbound and of `protocol`; it is closed with the returned socket,
   * or at once when it is refused. `netns` is then ignored.
   */
  fd?: number;
}

export interface NetlinkSocket {
  readonly fd: number;
  /** nl_pid the kernel assigned (getsockname). */
  readonly portId: number;
  /** One send of the whole buffer (may hold many nlmsgs: batching). Throws NativeError (EAGAIN, ENOBUFS…). */
  send(buf: Buffer): void;
  /**
   * Starts polling (uv_poll). Each callback receives one datagram, which may hold several nlmsgs.
   * Reads until EAGAIN (at most 1024 datagrams per loop turn); never blocks the loop. Socket errors
   * go to onError and polling goes on: ENOBUFS means the receive queue overflowed and messages were
   * lost (resync). A polling socket must be closed with close(); it is never garbage-collected.
   * Calling it again replaces the callbacks.
   */
  onMessage(cb: (datagram: Buffer) => void, onError?: (err: NativeError) => void): void;
  addMembership(group: number): void;
  dropMembership(group: number): void;
  /** NETLINK_GET_STRICT_CHK: the kernel validates dump requests and filters by their header. */
  setStrictCheck(on: boolean): void;
  /** NETLINK_EXT_ACK: errors carry the kernel's message and the offending attribute. */
  setExtAck(on: boolean): void;
  /** Stops polling (data stays queued in the kernel). */
  pause(): void;
  /** Restarts polling after pause(). */
  resume(): void;
  /** The socket keeps the process alive while polling (default). */
  ref(): void;
  /** The socket no longer keeps the process alive. */
  unref(): void;
  /** Idempotent: stops polling and closes the fd. */
  close(): void;
}

class NetlinkSocketImpl implements NetlinkSocket {
  private readonly poller: RawPoller;
  private closed = false;
  private handlers: { data: (d: Buffer) => void; error: (e: unknown) => void } | undefined;

  constructor(
    readonly fd: number,
    readonly portId: number,
    bufferSize: number,
  ) {
    try {
      this.poller = new binding.Poller(fd, 0, bufferSize);
    } catch (err) {
      binding.closeFd(fd);
      throw toNativeError(err);
    }
  }

  private assertOpen(what: string): void {
    if (this.closed) throw new NativeError(`${what}: netlink socket is closed`, 'EBADF', 9, what);
  }

  send(buf: Buffer): void {
    this.assertOpen('send');
    wrap(() => binding.sendBuf(this.fd, buf));
  }

  onMessage(cb: (datagram: Buffer) => void, onError?: (err: NativeError) => void): void {
    this.assertOpen('onMessage');
    this.handlers = {
      data: cb,
      error: (e: unknown) => {
        if (onError) onError(toNativeError(e));
      },
    };
    wrap(() => this.poller.start(this.handlers!.data as never, this.handlers!.error));
  }

  addMembership(group: number): void {
    this.assertOpen('addMembership');
    checkInt('group', group, 1, 0xffff_ffff);
    wrap(() => binding.nlSetOpt(this.fd, NETLINK_ADD_MEMBERSHIP, group));
  }

  dropMembership(group: number): void {
    this.assertOpen('dropMembership');
    checkInt('group', group, 1, 0xffff_ffff);
    wrap(() => binding.nlSetOpt(this.fd, NETLINK_DROP_MEMBERSHIP, group));
  }

  setStrictCheck(on: boolean): void {
    this.assertOpen('setStrictCheck');
    wrap(() => binding.nlSetOpt(this.fd, NETLINK_GET_STRICT_CHK, on ? 1 : 0));
  }

  setExtAck(on: boolean): void {
    this.assertOpen('setExtAck');
    wrap(() => binding.nlSetOpt(this.fd, NETLINK_EXT_ACK, on ? 1 : 0));
  }

  pause(): void {
    if (!this.closed) this.poller.stop();
  }

  resume(): void {
    this.assertOpen('resume');
    if (!this.handlers) return;
    wrap(() => this.poller.start(this.handlers!.data as never, this.handlers!.error));
  }

  ref(): void {
    if (!this.closed) this.poller.ref();
  }

  unref(): void {
    if (!this.closed) this.poller.unref();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.poller.close();
  }
}

/**
 * Opens a bound AF_NETLINK socket (non-blocking, close-on-exec, NETLINK_CAP_ACK set so error
 * replies do not echo whole requests).
 */
export function openNetlink(opts: NetlinkOptions): NetlinkSocket {
  checkInt('protocol', opts.protocol, 0, 31);
  const groups = opts.groups ?? [];
  groups.forEach((g, i) => {
    checkInt(`groups[${i}]`, g, 1, 0xffff_ffff);
  });
  if (opts.rcvbuf !== undefined) checkInt('rcvbuf', opts.rcvbuf, 1, 0x7fff_ffff);
  if (opts.fd !== undefined) checkInt('fd', opts.fd, 0, 0x7fff_ffff);
  const { fd, portId } = wrap(() => binding.nlOpen(opts.protocol, groups, opts.netns, opts.rcvbuf, opts.fd));
  // A dump datagram is at most 32 KiB unless the reader offers more; 1 MiB covers every case.
  return new NetlinkSocketImpl(fd, portId, 1 << 20);
}

/** What recvFds read: the first bytes of the stream and the descriptors passed with them. */
export interface ReceivedFds {
  data: Buffer;
  /** Received close-on-exec; the caller owns them (closeFd). */
  fds: number[];
  /** More descriptors were sent than maxFds: the rest were closed by the kernel. */
  truncated: boolean;
}

/**
 * Reads once from a unix stream socket (e.g. `socket._handle.fd` of a net.Socket accepted with
 * pauseOnConnect, before it is read from): up to maxBytes and the descriptors sent with them
 * (SCM_RIGHTS), which Node's own reads would drop. Waits on a libuv worker thread until data
 * arrives, at most timeoutMs (then NativeError ETIMEDOUT). Data and descriptors that came with
 * them go together: send them in one sendmsg.
 */
export async function recvFds(
  fd: number,
  opts: { maxBytes: number; maxFds: number; timeoutMs: number },
): Promise<ReceivedFds> {
  checkInt('fd', fd, 0, 0x7fff_ffff);
  checkInt('maxBytes', opts.maxBytes, 1, 1 << 20);
  checkInt('maxFds', opts.maxFds, 1, 253);
  checkInt('timeoutMs', opts.timeoutMs, 0, 0x7fff_ffff);
  try {
    return await binding.recvFds(fd, opts.maxBytes, opts.maxFds, opts.timeoutMs);
  } catch (err) {
    throw toNativeError(err);
  }
}

export interface PacketMeta {
  ifindex: number;
  /** PACKET_HOST = 0, PACKET_BROADCAST = 1, PACKET_MULTICAST = 2, PACKET_OTHERHOST = 3, PACKET_OUTGOING = 4. */
  pktType: number;
}

/**
 * A packet socket's reply cache: a fast path in the addon, in front of the JS callback (the slow
 * path), like a flow cache. The caller decides every frame it receives; after deciding to answer
 * one, it may `add` it with the answer it sent. From then on, a received frame equal to it on every
 * byte of the mask, with the same ifindex and packet type, is answered by the addon with the same
 * reply and never reaches onFrame; it is only counted (`hits`). Frames that match no entry, and a
 * cached answer the kernel refuses to send, go to onFrame as before. Bounded: a new entry replaces
 * the oldest once `capacity` are held. `clear()` whenever what the decisions depend on changes.
 */
export interface ReplyCache {
  /** Installs `reply` as the answer to frames equal to `frame` on the mask, with `meta`'s ifindex and pktType. */
  add(frame: Buffer, meta: PacketMeta, reply: Buffer): void;
  /** Drops every entry (hits are kept). */
  clear(): void;
  /** Frames answered by the cache since the socket was opened. */
  readonly hits: number;
  /** Entries held. */
  readonly size: number;
}

export interface ReplyCacheOptions {
  /**
   * The bytes a decision reads: a frame's key is its first `mask.length` bytes ANDed with the mask
   * (1..64 bytes). Frames shorter than the mask never match.
   */
  mask: Buffer;
  /** Entries held at most, 1..64. */
  capacity: number;
}

export interface PacketSocket {
  readonly fd: number;
  /** Present when the socket was opened with `replyCache`. */
  readonly replyCache?: ReplyCache;
  /** Whether the socket is read by its own receive thread (`fastPathThread`). */
  readonly threaded: boolean;
  /**
   * Frames the receive thread read but could not queue for onFrame (the queue holds 256): each
   * was also reported to onError as ENOBUFS. Always 0 without `fastPathThread`.
   */
  readonly dropped: number;
  /** Sends one whole Ethernet frame (header included) on the bound interface. */
  send(frame: Buffer): void;
  /**
   * Starts polling; each callback receives one frame, Ethernet header included. Socket errors go to
   * onError and polling goes on (ENETDOWN when the interface goes down; frames flow again once it
   * is up).
   */
  onFrame(cb: (frame: Buffer, meta: PacketMeta) => void, onError?: (err: NativeError) => void): void;
  ref(): void;
  unref(): void;
  /** Idempotent: stops polling and closes the fd. */
  close(): void;
}

export interface PacketOptions {
  ifindex: number;
  ethertype: number;
  netns?: string;
  /**
   * Do not receive the frames this host sends on the interface (PACKET_IGNORE_OUTGOING, Linux
   * 4.20+; ignored on older kernels, where `pktType` 4 still marks them). Default false.
   */
  ignoreOutgoing?: boolean;
  /**
   * Receive every frame into one buffer owned by the socket, with no allocation per frame: the
   * `frame` and `meta` handed to onFrame are only valid until the callback returns (copy what you
   * keep). Default false: each frame is a fresh Buffer and a fresh meta object.
   */
  reuseFrameBuffer?: boolean;
  /** Answer known frames in the addon, without calling onFrame (see ReplyCache). */
  replyCache?: ReplyCacheOptions;
  /**
   * Read the socket on a thread of its own instead of Node's event loop (needs `replyCache`): the
   * thread blocks on the socket and answers cache hits itself, so they never wait for the loop;
   * every other frame is queued (at most 256) and onFrame runs on the JS thread as without it,
   * with the same frame, meta and errors. A frame that finds the queue full is dropped, counted in
   * `dropped` and reported to onError as ENOBUFS. ref/unref and close behave as without it.
   * Default false.
   */
  fastPathThread?: boolean;
  /**
   * Bytes of each receive buffer (the socket's, and its thread's with `fastPathThread`): a longer
   * frame is truncated and reported to onError (EMSGSIZE). 4096..65536, default 65536 (a GRO
   * frame). A socket of one small protocol (ARP: 42-byte frames) needs only the minimum; each
   * buffer is resident memory per socket.
   */
  frameBufferSize?: number;
}

/** Frames up to this length get a cached view of the shared buffer (no allocation per frame). */
const VIEW_CACHE_MAX = 2048;

class ReplyCacheImpl implements ReplyCache {
  /** Hits of the poller's cache, kept when the socket closes. */
  private closedHits = 0;
  private poller: RawPoller | undefined;

  constructor(poller: RawPoller, opts: ReplyCacheOptions) {
    this.poller = poller;
    poller.cacheConfigure(opts.mask, opts.capacity);
  }

  add(frame: Buffer, meta: PacketMeta, reply: Buffer): void {
    if (this.poller) wrap(() => this.poller!.cacheAdd(frame, meta.ifindex, meta.pktType, reply));
  }

  clear(): void {
    this.poller?.cacheClear();
  }

  get hits(): number {
    return this.poller ? this.poller.cacheStats().hits : this.closedHits;
  }

  get size(): number {
    return this.poller ? this.poller.cacheStats().size : 0;
  }

  /** The socket is closing: keep the count, forget the poller. */
  detach(): void {
    if (!this.poller) return;
    this.closedHits = this.poller.cacheStats().hits;
    this.poller = undefined;
  }
}

class PacketSocketImpl implements PacketSocket {
  private readonly poller: RawPoller;
  private closed = false;
  private closedDropped = 0;
  private readonly shared: Buffer | undefined;
  readonly replyCache: ReplyCacheImpl | undefined;

  constructor(
    readonly fd: number,
    reuse = false,
    cache?: ReplyCacheOptions,
    readonly threaded = false,
    bufferSize = 65536,
  ) {
    try {
      this.poller = new binding.Poller(fd, reuse ? 2 : 1, bufferSize, threaded);
      this.shared = reuse ? this.poller.sharedBuffer() : undefined;
      if (reuse && !this.shared) throw new NativeError('no shared receive buffer', 'EINVAL', 22, 'argument');
      this.replyCache = cache ? new ReplyCacheImpl(this.poller, cache) : undefined;
    } catch (err) {
      binding.closeFd(fd);
      throw toNativeError(err);
    }
  }

  get dropped(): number {
    return this.closed ? this.closedDropped : this.poller.cacheStats().dropped;
  }

  send(frame: Buffer): void {
    if (this.closed) throw new NativeError('send: packet socket is closed', 'EBADF', 9, 'send');
    try {
      binding.sendBuf(this.fd, frame);
    } catch (err) {
      throw toNativeError(err);
    }
  }

  onFrame(cb: (frame: Buffer, meta: PacketMeta) => void, onError?: (err: NativeError) => void): void {
    if (this.closed) throw new NativeError('onFrame: packet socket is closed', 'EBADF', 9, 'onFrame');
    let data: (...args: never[]) => void;
    const shared = this.shared;
    if (shared) {
      // One meta object and one view per frame length, reused for every frame.
      const views: (Buffer | undefined)[] = [];
      const meta: PacketMeta = { ifindex: 0, pktType: 0 };
      data = ((length: number, ifindex: number, pktType: number) => {
        let view = length <= VIEW_CACHE_MAX ? views[length] : undefined;
        if (!view) {
          view = shared.subarray(0, length);
          if (length <= VIEW_CACHE_MAX) views[length] = view;
        }
        meta.ifindex = ifindex;
        meta.pktType = pktType;
        cb(view, meta);
      }) as (...args: never[]) => void;
    } else {
      data = ((frame: Buffer, ifindex: number, pktType: number) => cb(frame, { ifindex, pktType })) as (
        ...args: never[]
      ) => void;
    }
    wrap(() =>
      this.poller.start(data as never, (e: unknown) => {
        if (onError) onError(toNativeError(e));
      }),
    );
  }

  ref(): void {
    if (!this.closed) this.poller.ref();
  }

  unref(): void {
    if (!this.closed) this.poller.unref();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    // Closed first (a receive thread is joined), so the counts read after it are final.
    this.poller.close();
    this.closedDropped = this.poller.cacheStats().dropped;
    this.replyCache?.detach();
  }
}

/** AF_PACKET SOCK_RAW socket bound to ifindex + ethertype; frames include the Ethernet header. */
export function openPacket(opts: PacketOptions): PacketSocket {
  checkInt('ifindex', opts.ifindex, 1, 0x7fff_ffff);
  checkInt('ethertype', opts.ethertype, 0, 0xffff);
  if (opts.replyCache) {
    const { mask, capacity } = opts.replyCache;
    if (!Buffer.isBuffer(mask) || mask.length < 1 || mask.length > 64)
      throw invalid('replyCache.mask', mask?.length, 'must be a Buffer of 1..64 bytes');
    checkInt('replyCache.capacity', capacity, 1, 64);
  }
  if (opts.frameBufferSize !== undefined) checkInt('frameBufferSize', opts.frameBufferSize, 4096, 65536);
  const threaded = opts.fastPathThread === true;
  if (threaded && !opts.replyCache)
    throw invalid('fastPathThread', true, 'needs replyCache (the thread answers from the reply cache)');
  const fd = wrap(() =>
    binding.packetOpen(opts.ifindex, opts.ethertype, opts.netns, opts.ignoreOutgoing === true),
  );
  return new PacketSocketImpl(
    fd,
    opts.reuseFrameBuffer === true,
    opts.replyCache,
    threaded,
    opts.frameBufferSize,
  );
}

export interface TcpSocketOptions {
  family: 4 | 6;
  /** Local address to bind (default: any address, when bindPort is given). */
  bindAddress?: string;
  /** Local port to bind; 0 picks one. Without bindAddress and bindPort the socket is not bound. */
  bindPort?: number;
  /** TCP_MD5SIG keys (RFC 2385), one per peer address, set before connect/listen. Keys are 1..80 bytes. */
  md5?: { peer: string; key: string }[];
  /** SO_REUSEADDR (set it for listening sockets). */
  reuseAddr?: boolean;
  /** Create the socket inside this network namespace (/var/run/netns/NAME or /proc/PID/ns/net). */
  netns?: string;
}

/**
 * Creates a non-blocking TCP socket with TCP_MD5SIG set per peer, optionally bound. Returns the fd.
 *
 * How Node uses it (tested in addon.test.ts on Node 24):
 * - client: `const s = new net.Socket({ fd }); s.connect(port, host)` — Node adopts the fd
 *   (uv_tcp_open) and connects it; the kernel signs every segment with the peer's key.
 * - server: create with `bindAddress`/`bindPort` and `reuseAddr: true`, then
 *   `net.createServer(onConn).listen({ fd })` — Node calls listen(2) on it. Keys set on the
 *   listening socket (here or later with setTcpMd5) are copied to each accepted connection;
 *   a SYN without the right signature is dropped silently by the kernel, so a mismatched key
 *   shows up as a connect timeout on the client.
 * Once handed to Node, Node owns the fd and closes it on destroy()/close(). An fd never handed
 * to Node must be closed with closeFd(fd) (or fs.closeSync).
 */
export function createTcpSocket(opts: TcpSocketOptions): number {
  if (opts.family !== 4 && opts.family !== 6) throw invalid('family', opts.family, 'must be 4 or 6');
  if (opts.bindPort !== undefined) checkInt('bindPort', opts.bindPort, 0, 65535);
  const md5 = (opts.md5 ?? []).map((m, i): [string, string] => {
    if (typeof m.peer !== 'string' || m.peer === '')
      throw invalid(`md5[${i}].peer`, m.peer, 'must be an address');
    if (typeof m.key !== 'string' || m.key.length === 0 || Buffer.byteLength(m.key) > 80) {
      throw invalid(`md5[${i}].key`, m.key === undefined ? m.key : '<redacted>', 'must be 1..80 bytes');
    }
    return [m.peer, m.key];
  });
  return wrap(() =>
    binding.tcpSocket(opts.family, opts.bindAddress, opts.bindPort, md5, opts.reuseAddr ?? false, opts.netns),
  );
}

/**
 * Adds or replaces (key) or removes (null) the TCP_MD5SIG key for a peer on any TCP fd, including
 * a listening one (e.g. `server._handle.fd`, or the fd given to listen({ fd })). Removing a key that
 * is not set fails with ENOENT.
 */
export function setTcpMd5(fd: number, peer: string, key: string | null): void {
  checkInt('fd', fd, 0, 0x7fff_ffff);
  if (key !== null && (key.length === 0 || Buffer.byteLength(key) > 80)) {
    throw invalid('key', '<redacted>', 'must be 1..80 bytes or null');
  }
  wrap(() => binding.setTcpMd5(fd, peer, key));
}

/** Closes a descriptor returned by this package that was never handed to Node. */
export function closeFd(fd: number): void {
  checkInt('fd', fd, 0, 0x7fff_ffff);
  wrap(() => binding.closeFd(fd));
}

/** Where a UDP datagram came from, and the TTL (IPv4) or hop limit (IPv6) it arrived with. */
export interface UdpMeta {
  address: string;
  port: number;
  /** IP_RECVTTL / IPV6_RECVHOPLIMIT; -1 when the kernel reported none. */
  ttl: number;
}

export interface UdpOptions {
  family: 4 | 6;
  /** Local address to bind (default: any). */
  bindAddress?: string;
  /** Local port; 0 lets the kernel pick. */
  port: number;
  /** TTL / hop limit of every datagram sent (IP_TTL / IPV6_UNICAST_HOPS), 1..255. */
  ttl: number;
  netns?: string;
}

export interface UdpSocket {
  readonly fd: number;
  /** The bound local port. */
  readonly port: number;
  send(buf: Buffer, address: string, port: number): void;
  /** Starts polling on Node's loop; each callback is one datagram with its source and received TTL. */
  onDatagram(cb: (data: Buffer, meta: UdpMeta) => void, onError?: (err: NativeError) => void): void;
  ref(): void;
  unref(): void;
  /** Idempotent. */
  close(): void;
}

class UdpSocketImpl implements UdpSocket {
  private poller: RawPoller | undefined;
  private closed = false;
  constructor(
    readonly fd: number,
    readonly port: number,
  ) {}

  send(buf: Buffer, address: string, port: number): void {
    if (this.closed) throw new NativeError('send: udp socket is closed', 'EBADF', 9, 'sendto');
    wrap(() => binding.udpSendTo(this.fd, buf, address, port));
  }

  onDatagram(cb: (data: Buffer, meta: UdpMeta) => void, onError?: (err: NativeError) => void): void {
    if (this.closed) throw new NativeError('onDatagram: udp socket is closed', 'EBADF', 9, 'onDatagram');
    if (!this.poller) this.poller = wrap(() => new binding.Poller(this.fd, 3, 65536));
    const data = ((buf: Buffer, address: string, port: number, ttl: number) =>
      cb(buf, { address, port, ttl })) as (...args: never[]) => void;
    wrap(() =>
      this.poller!.start(data, (e: unknown) => {
        if (onError) onError(toNativeError(e));
      }),
    );
  }

  ref(): void {
    if (!this.closed) this.poller?.ref();
  }

  unref(): void {
    if (!this.closed) this.poller?.unref();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.poller) this.poller.close();
    else binding.closeFd(this.fd);
  }
}

/**
 * A non-blocking UDP socket that sends with the given TTL / hop limit and reports the TTL / hop
 * limit of every datagram received (IP_RECVTTL, IPV6_RECVHOPLIMIT, read with recvmsg): what BFD's
 * single-hop check (RFC 5881 §5) needs and Node's dgram cannot give. IPv6 sockets are V6ONLY.
 */
export function openUdp(opts: UdpOptions): UdpSocket {
  if (opts.family !== 4 && opts.family !== 6) throw invalid('family', opts.family, 'must be 4 or 6');
  checkInt('port', opts.port, 0, 65535);
  checkInt('ttl', opts.ttl, 1, 255);
  const { fd, port } = wrap(() =>
    binding.udpSocket(opts.family, opts.bindAddress, opts.port, opts.ttl, opts.netns),
  );
  return new UdpSocketImpl(fd, port);
}

/** What a periodic sender did (PeriodicSender.stats). */
export interface PeriodicSenderStats {
  sent: number;
  /** sendto failures, and the errno name of the last one (null before any). */
  errors: number;
  lastError: string | null;
  /**
   * With `measure`, from drain() only: the time between consecutive packets since the last drain
   * (ms, at most 4096 kept).
   */
  gapsMs: number[];
  /** With `measure`, from drain() only: the longest a packet went out after its due time (ms). */
  maxLateMs: number;
}

/**
 * A datagram sent at intervals by the addon's sending thread, not Node's event loop (BFD's periodic
 * Control packets, RFC 5880 §6.8.7): a busy loop delays none of them. The caller decides the bytes
 * and the timing; `update` replaces the packet without touching the schedule.
 */
export interface PeriodicSender {
  /**
   * Sends `packet` every `intervalUs` less a random 0–25% (10–25% when `detectMult` is 1), the first
   * at once, or with `paced` 75% of the interval after the previous one (at once if that is past).
   */
  arm(packet: Buffer, intervalUs: number, detectMult: number, paced: boolean): void;
  /** The packet sent from the next one on. */
  update(packet: Buffer): void;
  /** No more packets until the next `arm`. */
  pause(): void;
  /** Counters (gapsMs empty, maxLateMs 0). */
  stats(): PeriodicSenderStats;
  /** Counters, and the measurements since the last drain (`measure`). */
  drain(): PeriodicSenderStats;
  /** Stops for good; nothing is sent after it returns. Idempotent. */
  close(): void;
}

class PeriodicSenderImpl implements PeriodicSender {
  private closed = false;
  constructor(
    private readonly id: number,
    private readonly measure: boolean,
  ) {}

  arm(packet: Buffer, intervalUs: number, detectMult: number, paced: boolean): void {
    if (this.closed) throw new NativeError('arm: periodic sender is closed', 'EBADF', 9, 'txArm');
    checkInt('detectMult', detectMult, 1, 255);
    // Up to BFD's largest interval: a 32-bit field of microseconds (a hold-over's Desired Min TX).
    if (!Number.isFinite(intervalUs) || intervalUs < 1000 || intervalUs > 0xffff_ffff)
      throw invalid('intervalUs', intervalUs, 'must be 1000..4294967295');
    wrap(() => binding.txArm(this.id, packet, intervalUs, detectMult, paced, this.measure));
  }

  update(packet: Buffer): void {
    if (!this.closed) binding.txUpdate(this.id, packet);
  }

  pause(): void {
    if (!this.closed) binding.txPause(this.id);
  }

  stats(): PeriodicSenderStats {
    return this.read(false);
  }

  drain(): PeriodicSenderStats {
    return this.read(true);
  }

  private read(drain: boolean): PeriodicSenderStats {
    return (
      (this.closed ? undefined : binding.txStats(this.id, drain)) ?? {
        sent: 0,
        errors: 0,
        lastError: null,
        gapsMs: [],
        maxLateMs: 0,
      }
    );
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    binding.txDestroy(this.id);
  }
}

/**
 * A periodic sender to `address`:`port` from `socket` (its TTL and source port; the sender holds a
 * duplicate of the descriptor, so closing the socket first is safe). `measure` keeps the gaps
 * between packets for stats().
 */
export function periodicSender(
  socket: UdpSocket,
  address: string,
  port: number,
  opts: { measure?: boolean } = {},
): PeriodicSender {
  checkInt('port', port, 1, 65535);
  const id = wrap(() => binding.txCreate(socket.fd, address, port));
  return new PeriodicSenderImpl(id, opts.measure === true);
}

/**
 * Sets the nice value of the periodic senders' thread alone (setpriority on its thread id), so a
 * busy host delays its packets less. Returns the thread id, or 0 when no sender was made yet
 * (then nothing is set). Lowering the value needs CAP_SYS_NICE (NativeError EACCES).
 */
export function setPeriodicSenderPriority(nice: number): number {
  checkInt('nice', nice, -20, 19);
  return wrap(() => binding.txPriority(nice));
}
