// The speaker: peers, the RIBs and policy, glued to one Session per peer. This is the API the
// node agent uses (see index.ts for the documented surface).
import { EventEmitter } from 'node:events';
import { createServer, type Server, type Socket } from 'node:net';
import { longLivedFamilies, MAX_LONG_LIVED_STALE_TIME, markLongLivedStale } from './llgr.js';
import type { Logger } from './logger.js';
import { silentLogger } from './logger.js';
import { containsAs, fromWire, normaliseCommunity, type RouteAttrs, toWire } from './rib/attrs.js';
import {
  applyAttrs,
  type CompiledPolicy,
  compilePolicy,
  type Policy,
  prefixAllowed,
  prefixAllowedV4,
} from './rib/policy.js';
import { PrefixMap } from './rib/prefix-map.js';
import {
  type AttrSet,
  AttrTable,
  addressOrder,
  keyFamily,
  keyToPrefix,
  multipath,
  nextHopUsable,
  type PathSource,
  type PathUsable,
  type PrefixKey,
  pathOf,
  sameAttrs,
  selectBest,
} from './rib/rib.js';
import type { FsmState } from './session/fsm.js';
import { setListenerMd5 } from './session/md5.js';
import {
  type Clock,
  type Conn,
  type Negotiated,
  Session,
  systemClock,
  type Transport,
  tcpTransport,
} from './session/session.js';
import { Afi, CeaseSubcode, ErrorCode, Safi, UpdateSubcode } from './wire/constants.js';
import { BgpConfigError, BgpError, updateError } from './wire/errors.js';
import { addressFamily, formatIpv6, parseIpv4, parseIpv6, parsePrefix, v4Key } from './wire/ip.js';
import {
  decodeUpdate,
  encodeMessage,
  endOfRib,
  isEndOfRib,
  updateLayout,
  validateAttributes,
} from './wire/messages.js';
import { encodeAnnounceAttrs, packAnnounceEncoded, packWithdraw } from './wire/pack.js';

export interface SpeakerOptions {
  /** Our AS number (1..4294967295). */
  asn: number;
  /** Our BGP Identifier (an IPv4 address). */
  routerId: string;
  /** Accept incoming sessions here (e.g. `{ port: 179 }`); omit for outgoing-only. */
  /**
   * Accept sessions on this port. `backlog`: connections the kernel queues before they are
   * accepted (default LISTEN_BACKLOG, capped by net.core.somaxconn), room for the clients of a
   * route reflector that all connect at once.
   */
  listen?: { port: number; address?: string | undefined; backlog?: number | undefined } | undefined;
  logger?: Logger | undefined;
  /** Route reflector CLUSTER_ID (default: routerId). Reflection happens for peers marked `routeReflectorClient`. */
  clusterId?: string | undefined;
  /**
   * We are coming back from a graceful stop: the Restart State (R) bit is set in our Graceful
   * Restart capability, for each peer until its first session after the restart is Established.
   */
  restarting?: boolean | undefined;
  /**
   * Whether a NEXT_HOP can be resolved (e.g. the kernel has a route to it). Paths whose next hop
   * cannot are left out of best-path selection (RFC 4271 §9.1.2.1); call nextHopsChanged() when
   * the answer may have changed. Default: every next hop is reachable.
   */
  nextHopReachable?: ((addr: string) => boolean) | undefined;
  /**
   * AFIs (1 IPv4, 2 IPv6) whose forwarding state survived our restart: the F bit is set for them,
   * and only while `restarting` (default: every family, when restarting).
   */
  forwardingPreserved?: number[] | undefined;
  /**
   * Bytes each peer's cache of raw attribute lists may take (default 4 MiB). The cache saves
   * decoding the attributes of an UPDATE seen before; the oldest entries go first.
   */
  attrCacheBytes?: number | undefined;
  /**
   * Connections from an address with no peer are refused with Cease/Connection Rejected and a log
   * line at most this many times a minute per source address (default 10); past that they are
   * closed at once, silently.
   */
  refusalsPerMinute?: number | undefined;
  /**
   * Receive limit of a peer whose config has no `maxPrefixes` (default 1,000,000; 0: none).
   */
  defaultMaxPrefixes?: number | undefined;
  /** Injected for tests. */
  clock?: Clock | undefined;
  transport?: Transport | undefined;
}

export interface PeerConfig {
  address: string;
  /** TCP port of the peer (default 179). */
  port?: number | undefined;
  asn: number;
  /** Wait for the peer to connect; never connect out (default false). */
  passive?: boolean | undefined;
  /** Proposed hold time in seconds: 0 or >= 3 (default 90). */
  holdTime?: number | undefined;
  /** Keepalive interval in seconds (default hold/3). */
  keepalive?: number | undefined;
  /** TCP MD5 signature password (RFC 2385), through @podnet/native. */
  md5Password?: string | undefined;
  /** Local address to connect from. */
  sourceAddress?: string | undefined;
  /** Reflect iBGP routes to and from this peer (we are its route reflector, RFC 4456). */
  routeReflectorClient?: boolean | undefined;
  /** Use our address as NEXT_HOP towards this (iBGP) peer. eBGP peers always get next-hop-self. */
  nextHopSelf?: boolean | undefined;
  /** IPv6 next hop to advertise when we are next hop and the session runs over IPv4. */
  nextHopIpv6?: string | undefined;
  /**
   * Tear the session down with Cease/Maximum Number of Prefixes Reached (RFC 4486) when more
   * prefixes than this are accepted from the peer (default: SpeakerOptions.defaultMaxPrefixes).
   */
  maxPrefixes?: number | undefined;
  /**
   * Advertise Graceful Restart with this restart time (seconds, <= 4095). `notification` sets the
   * N bit (RFC 8538): when the peer sets it too, a NOTIFICATION (other than Cease/Hard Reset) or a
   * Hold Timer expiry keeps the routes stale as a restart does, and our Cease for shutdown,
   * deconfiguration, reset, maximum prefixes or BFD Down goes out as a Hard Reset.
   */
  gracefulRestart?: { restartTime: number; notification?: boolean | undefined } | undefined;
  /**
   * Longest time (seconds) we keep this peer's routes stale while it restarts, whatever restart
   * time it announces (RFC 4724 helper). Default: the peer's own restart time.
   */
  maxRestartTime?: number | undefined;
  /**
   * Advertise Long-Lived Graceful Restart (RFC 9494) with this stale time (seconds,
   * 1..16777215): a peer that negotiates it keeps our routes as LLGR_STALE for that long past our
   * restart time, and we keep its routes likewise for its stale time. Needs `gracefulRestart`
   * (whose restartTime may then be 0: straight to the long-lived phase).
   */
  longLivedGracefulRestart?: { staleTime: number } | undefined;
  /** Longest time (seconds) we keep this peer's routes LLGR_STALE, whatever stale time it announces. */
  maxLongLivedStaleTime?: number | undefined;
  import?: Policy | undefined;
  export?: Policy | undefined;
  /** Seconds between connection attempts (default 5). */
  connectRetry?: number | undefined;
  description?: string | undefined;
}

/** A Loc-RIB best-path change. */
export interface RibChange {
  type: 'added' | 'changed' | 'removed';
  prefix: string;
  afi: 1 | 2;
  /** ECMP set: the next hops of the best path and of every multipath-equal path. Empty on removal. */
  nextHops: string[];
  /** Attributes of the best path (absent on removal). */
  attrs?: RouteAttrs | undefined;
  /** Where the best path came from: a peer address, or `local`. */
  from?: string | undefined;
}

export interface RibEntry {
  prefix: string;
  nextHops: string[];
  attrs: RouteAttrs;
  from: string;
  stale: boolean;
}

export interface PeerStatus {
  /** The peer's key (see `peerKey`): address and port. */
  key: string;
  address: string;
  port: number;
  asn: number;
  type: 'ibgp' | 'ebgp';
  state: FsmState;
  /** When the state last changed (ms since epoch). */
  since: number;
  routerId?: string | undefined;
  holdTime?: number | undefined;
  prefixesReceived: number;
  prefixesAdvertised: number;
  staleRoutes: number;
  /** Estimated bytes held by this peer's raw-attribute cache (bounded by SpeakerOptions.attrCacheBytes). */
  attrCacheBytes: number;
  /** Receive limit in force (maxPrefixes, or the speaker's default; undefined: none). */
  maxPrefixes?: number | undefined;
  /** Times the session was reset because the peer went over its receive limit. */
  maxPrefixesExceeded: number;
  messagesIn: number;
  messagesOut: number;
  updatesIn: number;
  updatesOut: number;
  lastError?: string | undefined;
  routeReflectorClient: boolean;
  description?: string | undefined;
}

interface Peer {
  /** `peerKey(address, port)`. */
  key: string;
  config: Required<Pick<PeerConfig, 'address' | 'port' | 'asn' | 'passive' | 'holdTime'>> & PeerConfig;
  src: PathSource & { adjIn: PrefixMap<AttrSet> };
  session: Session;
  importP?: CompiledPolicy | undefined;
  exportP?: CompiledPolicy | undefined;
  /**
   * Raw attribute bytes -> imported set, for this peer's codec context: only sets that an
   * accepted prefix took (interned when cached; they may have been released since). Bounded by
   * `cacheBytes`.
   */
  cache: Map<string, AttrSet | null>;
  /** Estimated bytes held by `cache`. */
  cacheBytes: number;
  /**
   * Export transformation cache: `${src.id}:${set.id}:${afi}` -> outgoing set, shared by every
   * peer with the same export context (Speaker.outCacheOf); undefined until first used.
   */
  outCache?: Map<string, AttrSet | null> | undefined;
  out: PrefixMap<AttrSet>;
  negotiated?: Negotiated | undefined;
  grTimer?: unknown;
  /** Per AFI: the Long-lived Stale Time timer running for this peer's LLGR_STALE routes. */
  llgrTimers: Map<number, unknown>;
  established: boolean;
  sending: boolean;
  /** Keys waiting to be re-evaluated for this peer's Adj-RIB-Out. */
  dirty: Set<PrefixKey>;
  /** End-of-RIB markers owed once the initial advertisement is out (sent when `dirty` empties). */
  eorPending?: Buffer[] | undefined;
  treatAsWithdraw: number;
  /** Our next OPEN to this peer carries the R bit: no session with it since our restart. */
  restarting: boolean;
  /** Sessions reset because the peer went over its receive limit. */
  maxPrefixesExceeded: number;
  /** Why a liveness detector (BFD) holds this peer down; the session stays stopped until it clears. */
  unreachable?: string | undefined;
}

/** A NEXT_HOP we could forward to: not 0.0.0.0, multicast, broadcast or unspecified. */
function usableNextHop(nh: string): boolean {
  const v4 = parseIpv4(nh);
  if (v4 !== undefined) return v4 !== 0 && v4 < 0xe0000000;
  const v6 = parseIpv6(nh);
  return v6 !== undefined && v6[0] !== 0xff && v6.some((b) => b !== 0);
}

/** One spelling per address, so configured and accepted addresses compare equal. */
function canonicalAddress(a: string): string {
  const v6 = a.includes(':') ? parseIpv6(a) : undefined;
  if (v6) {
    const text = formatIpv6(v6);
    return text.startsWith('::ffff:') && a.includes('.') ? a.slice(a.lastIndexOf(':') + 1) : text;
  }
  return a;
}

function validatePeer(c: PeerConfig): Peer['config'] {
  if (!addressFamily(c.address)) throw new BgpConfigError('address', c.address, 'not an IP address');
  c = { ...c, address: canonicalAddress(c.address) };
  if (!Number.isInteger(c.asn) || c.asn < 1 || c.asn > 0xffffffff)
    throw new BgpConfigError('asn', c.asn, 'must be 1..4294967295');
  const port = c.port ?? 179;
  if (!Number.isInteger(port) || port < 1 || port > 65535)
    throw new BgpConfigError('port', c.port, 'must be 1..65535');
  const holdTime = c.holdTime ?? 90;
  if (!Number.isInteger(holdTime) || holdTime < 0 || holdTime > 65535 || holdTime === 1 || holdTime === 2)
    throw new BgpConfigError('holdTime', c.holdTime, 'must be 0 or 3..65535');
  if (c.keepalive !== undefined && (!Number.isInteger(c.keepalive) || c.keepalive < 1))
    throw new BgpConfigError('keepalive', c.keepalive, 'must be a positive integer');
  if (c.sourceAddress !== undefined && !addressFamily(c.sourceAddress))
    throw new BgpConfigError('sourceAddress', c.sourceAddress, 'not an IP address');
  if (c.nextHopIpv6 !== undefined && addressFamily(c.nextHopIpv6) !== Afi.IPV6)
    throw new BgpConfigError('nextHopIpv6', c.nextHopIpv6, 'not an IPv6 address');
  if (c.maxPrefixes !== undefined && (!Number.isInteger(c.maxPrefixes) || c.maxPrefixes < 1))
    throw new BgpConfigError('maxPrefixes', c.maxPrefixes, 'must be a positive integer');
  if (c.maxRestartTime !== undefined && (!Number.isInteger(c.maxRestartTime) || c.maxRestartTime < 0))
    throw new BgpConfigError('maxRestartTime', c.maxRestartTime, 'must be a non-negative integer');
  const rt = c.gracefulRestart?.restartTime;
  const minRt = c.longLivedGracefulRestart ? 0 : 1;
  if (rt !== undefined && (!Number.isInteger(rt) || rt < minRt || rt > 4095))
    throw new BgpConfigError('gracefulRestart.restartTime', rt, `must be ${minRt}..4095`);
  const st = c.longLivedGracefulRestart?.staleTime;
  if (st !== undefined && (!Number.isInteger(st) || st < 1 || st > MAX_LONG_LIVED_STALE_TIME))
    throw new BgpConfigError('longLivedGracefulRestart.staleTime', st, 'must be 1..16777215');
  if (st !== undefined && !c.gracefulRestart)
    throw new BgpConfigError('longLivedGracefulRestart', c.longLivedGracefulRestart, 'needs gracefulRestart');
  const mst = c.maxLongLivedStaleTime;
  if (mst !== undefined && (!Number.isInteger(mst) || mst < 0))
    throw new BgpConfigError('maxLongLivedStaleTime', mst, 'must be a non-negative integer');
  return { ...c, port, holdTime, passive: c.passive ?? false };
}

/** Per-peer budget of the raw-attribute cache (SpeakerOptions.attrCacheBytes). */
export const DEFAULT_ATTR_CACHE_BYTES = 4 * 1024 * 1024;
/** Entries of a peer's export-transformation cache before it is emptied. */
const OUT_CACHE_ENTRIES = 65_536;
/** Export contexts whose caches are kept (a context is shared by every peer exported to alike). */
const OUT_CACHE_CONTEXTS = 1024;
/** Keys one flushPeer call re-evaluates before it yields to the event loop. */
const FLUSH_SLICE = 20_000;

/** The export prefix list on a Loc-RIB key: IPv4 keys (numbers) without a string per prefix. */
function exportAllowed(p: CompiledPolicy, k: PrefixKey): boolean {
  if (typeof k !== 'number') return prefixAllowed(p, k);
  const len = k >= 2 ** 32 ? 32 : 31 - Math.clz32(k);
  return prefixAllowedV4(p, (k - 2 ** len) * 2 ** (32 - len), len);
}

/**
 * Estimated bytes one raw-attribute cache entry holds: the key string and the map slot, plus for
 * a set the decoded attributes and their canonical key (measured about 3x the key's length).
 */
function cacheCost(raw: string, set: AttrSet | null): number {
  return 64 + raw.length + (set ? 200 + 3 * set.key.length : 0);
}

/** Receive limit of a peer configured without maxPrefixes (SpeakerOptions.defaultMaxPrefixes). */
export const DEFAULT_MAX_PREFIXES = 1_000_000;
/** Refusals per source address and minute answered with a NOTIFICATION (SpeakerOptions.refusalsPerMinute). */
export const DEFAULT_REFUSALS_PER_MINUTE = 10;
/** Source addresses whose refusal rate is tracked (the least recently seen are forgotten). */
const REFUSAL_SOURCES = 4096;
const REJECTED = encodeMessage({
  type: 'notification',
  code: ErrorCode.CEASE,
  subcode: CeaseSubcode.CONNECTION_REJECTED,
  data: new Uint8Array(0),
});

const FAMILIES = [
  { afi: Afi.IPV4, safi: Safi.UNICAST },
  { afi: Afi.IPV6, safi: Safi.UNICAST },
];

/**
 * The one key of a peer, used by the speaker and its callers alike: canonical address and TCP
 * port, `10.0.0.1:179` or `[fd00::1]:179`.
 */
export function peerKey(address: string, port = 179): string {
  const a = canonicalAddress(address);
  return a.includes(':') ? `[${a}]:${port}` : `${a}:${port}`;
}

function normaliseAddr(a: string | undefined): string {
  if (!a) return '';
  return a.startsWith('::ffff:') && a.includes('.') ? a.slice(7) : canonicalAddress(a);
}

/**
 * The attributes of an interned outgoing attribute set, encoded once per family and AS-number
 * width: every peer sent the same set (a reflector's clients, a mesh) shares the bytes.
 */
const encodedAttrs = new WeakMap<AttrSet, Map<number, Buffer>>();
function wireAttrs(set: AttrSet, afi: number, ctx: { as4: boolean }): Buffer {
  let m = encodedAttrs.get(set);
  if (!m) {
    m = new Map();
    encodedAttrs.set(set, m);
  }
  const k = afi * 2 + (ctx.as4 ? 1 : 0);
  let b = m.get(k);
  if (!b) {
    const enc = encodeAnnounceAttrs(afi, toWire(set.attrs, ctx.as4, afi === Afi.IPV4), ctx);
    // Kept as long as the set: in a buffer of its own. A small Buffer is a slice of Node's shared
    // pool (64 KiB in Node 24), which it would keep alive whole: at 1,000 reflector clients that
    // was 61 MB of pool slabs held for a few bytes of attributes each.
    b = Buffer.allocUnsafeSlow(enc.length);
    enc.copy(b);
    m.set(k, b);
  }
  return b;
}

/** Default Speaker listen backlog (Node's own is 511). */
export const LISTEN_BACKLOG = 4096;

/**
 * A BGP speaker. Events:
 * - `'bestpath'` (RibChange): a Loc-RIB best path was added, changed or removed.
 * - `'peer'` ({ address, from, to, reason }): a session changed state.
 */
export class Speaker extends EventEmitter {
  readonly asn: number;
  readonly routerId: string;
  readonly clusterId: string;
  private readonly log: Logger;
  private readonly clock: Clock;
  private readonly transport: Transport;
  private readonly attrs = new AttrTable();
  private readonly peersByKey = new Map<string, Peer>();
  /**
   * Export caches by export context: a reflector's clients (or a mesh) share one, so the outgoing
   * set of each route is found once, not once per peer (a million entries at 1,000 clients).
   */
  private readonly outCaches = new Map<string, Map<string, AttrSet | null>>();
  private readonly peerBySource = new Map<number, Peer>();
  private readonly sources: PathSource[] = [];
  private readonly local: PathSource;
  private readonly loc = new PrefixMap<PathSource>();
  /** Last emitted state per prefix (only while someone listens to 'bestpath'). */
  private readonly emitted = new Map<PrefixKey, string>();
  private server?: Server | undefined;
  private started = false;
  private nextSourceId = 1;
  private flushScheduled = false;
  private establishedCount = 0;
  private readonly attrCacheBytes: number;
  private readonly refusalsPerMinute: number;
  private readonly defaultMaxPrefixes: number;
  private readonly refusals = new Map<string, { tokens: number; at: number; suppressed: number }>();
  /** Refused connections not closed yet (stop() closes them). */
  private readonly refused = new Set<Conn>();

  constructor(private readonly opts: SpeakerOptions) {
    super();
    if (!Number.isInteger(opts.asn) || opts.asn < 1 || opts.asn > 0xffffffff)
      throw new BgpConfigError('asn', opts.asn, 'must be 1..4294967295');
    if (parseIpv4(opts.routerId) === undefined || opts.routerId === '0.0.0.0')
      throw new BgpConfigError('routerId', opts.routerId, 'must be a non-zero IPv4 address');
    if (opts.clusterId !== undefined && parseIpv4(opts.clusterId) === undefined)
      throw new BgpConfigError('clusterId', opts.clusterId, 'must be an IPv4 address');
    this.asn = opts.asn;
    this.routerId = opts.routerId;
    this.clusterId = opts.clusterId ?? opts.routerId;
    const cacheBytes = opts.attrCacheBytes ?? DEFAULT_ATTR_CACHE_BYTES;
    if (!Number.isInteger(cacheBytes) || cacheBytes < 0)
      throw new BgpConfigError('attrCacheBytes', opts.attrCacheBytes, 'must be a non-negative integer');
    this.attrCacheBytes = cacheBytes;
    const rpm = opts.refusalsPerMinute ?? DEFAULT_REFUSALS_PER_MINUTE;
    if (!Number.isFinite(rpm) || rpm < 0)
      throw new BgpConfigError('refusalsPerMinute', opts.refusalsPerMinute, 'must be a non-negative number');
    this.refusalsPerMinute = rpm;
    const dmp = opts.defaultMaxPrefixes ?? DEFAULT_MAX_PREFIXES;
    if (!Number.isInteger(dmp) || dmp < 0)
      throw new BgpConfigError(
        'defaultMaxPrefixes',
        opts.defaultMaxPrefixes,
        'must be a non-negative integer',
      );
    this.defaultMaxPrefixes = dmp;
    this.log = (opts.logger ?? silentLogger).child({ component: 'bgp' });
    this.clock = opts.clock ?? systemClock;
    this.transport = opts.transport ?? tcpTransport;
    this.local = this.newSource('local', 'local', false);
    this.usable = nextHopUsable(opts.nextHopReachable);
    this.on('newListener', (ev) => {
      if (ev === 'bestpath') this.watched = true;
    });
    this.on('removeListener', () => {
      this.watched = this.listenerCount('bestpath') > 0;
    });
  }
  /** Someone listens to 'bestpath' (checked per prefix, so kept as a field). */
  private watched = false;
  /** RFC 4271 §9.1.2.1 next-hop resolvability, from opts.nextHopReachable. */
  private readonly usable: PathUsable | undefined;

  /**
   * Runs best-path selection again for every prefix with a path, after the next-hop reachability
   * answer may have changed (e.g. the kernel's routes changed). Emits 'bestpath' for what changed.
   */
  nextHopsChanged(): void {
    if (!this.usable) return;
    const keys = new Set<PrefixKey>(this.loc.keys());
    for (const src of this.sources) {
      if (src.kind === 'local') continue;
      for (const k of src.adjIn.keys()) keys.add(k);
      for (const k of src.stale?.keys() ?? []) keys.add(k);
    }
    for (const k of keys) this.recompute(k, this.local, this.local.adjIn.has(k));
  }

  // ------------------------------------------------------------------------------------------
  // Lifecycle

  /** Starts listening (when configured) and starts every configured session. */
  async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    if (this.opts.listen) {
      const server = createServer((sock) => this.onAccept(sock));
      this.server = server;
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        const l = this.opts.listen!;
        server.listen({ port: l.port, host: l.address, backlog: l.backlog ?? LISTEN_BACKLOG }, () => {
          server.off('error', reject);
          resolve();
        });
      });
      this.log.info({ event: 'listening', port: this.listenPort }, 'BGP listening');
      for (const p of this.peersByKey.values())
        if (p.config.md5Password) this.refreshListenerKey(p.config.address);
    }
    for (const p of this.peersByKey.values()) if (!p.unreachable) p.session.start();
  }

  /** The port we listen on (useful with `listen: { port: 0 }`). */
  get listenPort(): number | undefined {
    const a = this.server?.address();
    return a && typeof a === 'object' ? a.port : undefined;
  }

  /**
   * Stops every session and the listener. `graceful: true` keeps our routes at peers that
   * negotiated Graceful Restart: their sessions close without a NOTIFICATION (RFC 4724 §4), so
   * they keep our routes as stale until we return and send End-of-RIB. Otherwise each session
   * gets Cease/Administrative Shutdown.
   */
  async stop(opts: { graceful?: boolean } = {}): Promise<void> {
    this.started = false;
    for (const p of this.peersByKey.values()) {
      const gr = opts.graceful && p.negotiated?.gracefulRestart;
      p.session.stop(CeaseSubcode.ADMINISTRATIVE_SHUTDOWN, !gr);
      if (p.grTimer !== undefined) this.clock.clearTimeout(p.grTimer);
      this.stopLongLived(p);
    }
    const server = this.server;
    this.server = undefined;
    for (const c of this.refused) c.destroy();
    this.refused.clear();
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
    // Let NOTIFICATIONs leave before the process goes.
    await new Promise((r) => setTimeout(r, 50));
  }

  // ------------------------------------------------------------------------------------------
  // Peers

  /** Adds a peer and starts its session (if the speaker is started). Other sessions are untouched. */
  addPeer(config: PeerConfig): void {
    const c = validatePeer(config);
    const key = peerKey(c.address, c.port);
    if (this.peersByKey.has(key)) throw new BgpConfigError('address', key, 'peer already configured');
    const src = this.newSource('peer', c.address, c.asn !== this.asn) as Peer['src'];
    src.routeReflectorClient = c.routeReflectorClient ?? false;
    const peer: Peer = {
      key,
      config: c,
      src,
      session: undefined as unknown as Session,
      importP: compilePolicy(c.import, 'import'),
      exportP: compilePolicy(c.export, 'export'),
      cache: new Map(),
      cacheBytes: 0,
      out: new PrefixMap(),
      established: false,
      sending: false,
      dirty: new Set(),
      treatAsWithdraw: 0,
      restarting: this.opts.restarting ?? false,
      maxPrefixesExceeded: 0,
      llgrTimers: new Map(),
    };
    peer.session = this.newSession(peer);
    this.peersByKey.set(key, peer);
    this.peerBySource.set(src.id, peer);
    if (c.md5Password) this.refreshListenerKey(c.address);
    this.sources.push(src);
    if (this.started) peer.session.start();
  }

  /**
   * Changes a peer. Policy, next-hop-self, route-reflector-client and max-prefix changes apply in
   * place (export re-evaluated; an import change sends ROUTE-REFRESH, or resets the session with
   * Cease/Other Configuration Change when the peer lacks route refresh); transport changes (asn, port, passive, timers, password, source, GR)
   * reset only this session.
   */
  updatePeer(config: PeerConfig): void {
    const c = validatePeer(config);
    const p = this.peersByKey.get(peerKey(c.address, c.port));
    if (!p) throw new BgpConfigError('address', peerKey(c.address, c.port), 'no such peer');
    const old = p.config;
    const same = (k: keyof PeerConfig) => JSON.stringify(old[k]) === JSON.stringify(c[k]);
    const transport = !(
      [
        'asn',
        'port',
        'passive',
        'holdTime',
        'keepalive',
        'md5Password',
        'sourceAddress',
        'gracefulRestart',
        'longLivedGracefulRestart',
        'connectRetry',
      ] as const
    ).every(same);
    const importChanged = !same('import');
    p.config = c;
    if (old.md5Password !== c.md5Password) this.refreshListenerKey(c.address);
    p.importP = compilePolicy(c.import, 'import');
    p.exportP = compilePolicy(c.export, 'export');
    p.src.routeReflectorClient = c.routeReflectorClient ?? false;
    // The routes from this peer may now be reflected differently: every context's cache goes.
    this.outCaches.clear();
    p.outCache = undefined;
    this.cacheClear(p);
    if (importChanged && !transport && p.established && p.negotiated?.routeRefresh) {
      // Soft inbound reconfiguration: the peer re-sends everything, and every route goes
      // through the new import policy again (rejected ones are withdrawn from the Loc-RIB).
      for (const f of p.negotiated.families) p.session.sendRouteRefresh(f.afi, f.safi);
      this.log.info(
        { event: 'route-refresh-sent', peer: c.address },
        'import policy changed: asked the peer to re-send',
      );
    } else if (transport || importChanged) {
      p.session.stop(CeaseSubcode.OTHER_CONFIGURATION_CHANGE, true);
      p.session.removeAllListeners();
      p.src.ebgp = c.asn !== this.asn;
      p.session = this.newSession(p);
      if (this.started && !p.unreachable) p.session.start();
      return;
    }
    if (p.established) {
      for (const k of this.loc.keys()) p.dirty.add(k);
      for (const k of p.out.keys()) p.dirty.add(k);
      this.scheduleFlush();
    }
    if (c.maxPrefixes !== undefined) this.checkMaxPrefixes(p);
  }

  /**
   * Removes a peer: Cease/Peer De-configured, and its routes leave the Loc-RIB. `port` may be
   * left out when only one peer has this address.
   */
  removePeer(address: string, port?: number): void {
    const p = this.findPeer(address, port);
    p.session.stop(CeaseSubcode.PEER_DECONFIGURED, true);
    p.session.removeAllListeners();
    if (p.grTimer !== undefined) this.clock.clearTimeout(p.grTimer);
    this.stopLongLived(p);
    this.peersByKey.delete(p.key);
    this.peerBySource.delete(p.src.id);
    if (p.config.md5Password) this.refreshListenerKey(p.config.address);
    const i = this.sources.indexOf(p.src);
    if (i !== -1) this.sources.splice(i, 1);
    this.purge(p, 'all');
    for (const s of p.out.values()) this.attrs.release(s);
    p.out.clear();
  }

  /**
   * A liveness detector (BFD, RFC 5882 §4.2) saw the path to this peer fail: the session goes down
   * at once, and it stays down (no connection out, incoming ones refused) until
   * {@link peerReachable}. RFC 5882 §4.3 with graceful restart:
   * - `graceful` (the peer's BFD shares fate with its control plane, C bit clear, so this may be a
   *   restart) keeps the routes stale when Graceful Restart was negotiated: an Established session
   *   closes without a NOTIFICATION. Otherwise a Cease/BFD Down NOTIFICATION (RFC 9384) is sent and
   *   the peer's routes are withdrawn now.
   * - A restart already under way (the session closed, its routes kept stale) goes on unless
   *   `forwardingFailed` (the peer's BFD is independent of its control plane, C bit set): then its
   *   forwarding failed too, and the stale routes go now.
   * Returns whether the peer's routes are kept stale.
   */
  peerUnreachable(
    address: string,
    opts: { port?: number; reason: string; graceful?: boolean; forwardingFailed?: boolean },
  ): boolean {
    const p = this.findPeer(address, opts.port);
    p.unreachable = opts.reason;
    if (!p.established && p.src.stale !== undefined) {
      const abort = opts.forwardingFailed === true;
      this.log.warn(
        { event: 'peer-unreachable', peer: p.config.address, reason: opts.reason, restartAborted: abort },
        abort
          ? 'liveness detection says the restarting peer cannot forward: its stale routes go now'
          : 'liveness detection says the peer is unreachable during its restart: stale routes kept',
      );
      p.session.stop(CeaseSubcode.BFD_DOWN, true);
      if (!abort) return true;
      if (p.grTimer !== undefined) this.clock.clearTimeout(p.grTimer);
      p.grTimer = undefined;
      this.stopLongLived(p);
      this.purge(p, 'stale');
      return false;
    }
    const keepStale = opts.graceful === true && p.established && p.negotiated?.gracefulRestart === true;
    this.log.warn(
      { event: 'peer-unreachable', peer: p.config.address, reason: opts.reason, keepStale },
      'liveness detection says the peer is unreachable: session down until it is reachable again',
    );
    p.session.stop(CeaseSubcode.BFD_DOWN, !keepStale);
    return keepStale;
  }

  /** The liveness detector sees the peer again: its session may connect (and accept) once more. */
  peerReachable(address: string, port?: number): void {
    const p = this.findPeer(address, port);
    if (!p.unreachable) return;
    p.unreachable = undefined;
    this.log.info({ event: 'peer-reachable', peer: p.config.address }, 'peer reachable again');
    if (this.started) p.session.start();
  }

  /** State and counters of every peer (for `podnetctl node status`). */
  peers(): PeerStatus[] {
    return [...this.peersByKey.values()].map((p) => {
      const s = p.session;
      return {
        key: p.key,
        address: p.config.address,
        port: p.config.port,
        asn: p.config.asn,
        type: p.src.ebgp ? 'ebgp' : 'ibgp',
        state: s.state,
        since: s.since,
        routerId: p.negotiated?.peerId,
        holdTime: p.negotiated?.holdTime,
        prefixesReceived: p.src.adjIn.size,
        prefixesAdvertised: p.out.size,
        staleRoutes: p.src.stale?.size ?? 0,
        attrCacheBytes: p.cacheBytes,
        maxPrefixes: p.config.maxPrefixes ?? (this.defaultMaxPrefixes || undefined),
        maxPrefixesExceeded: p.maxPrefixesExceeded,
        messagesIn: s.counters.messagesIn,
        messagesOut: s.counters.messagesOut,
        updatesIn: s.counters.updatesIn,
        updatesOut: s.counters.updatesOut,
        lastError: s.counters.lastError,
        routeReflectorClient: p.src.routeReflectorClient,
        description: p.config.description,
      };
    });
  }

  // ------------------------------------------------------------------------------------------
  // Local routes

  /** Announces `prefix` from this speaker. `attrs.nextHop` defaults to our session address per peer. */
  originate(prefix: string, attrs: Partial<RouteAttrs> = {}): void {
    const key = this.keyOf(prefix, 'prefix');
    if (attrs.nextHop !== undefined && !addressFamily(attrs.nextHop))
      throw new BgpConfigError('attrs.nextHop', attrs.nextHop, 'not an IP address');
    const full: RouteAttrs = { origin: 'igp', asPath: [], ...attrs };
    for (const [i, lc] of (attrs.largeCommunities ?? []).entries()) {
      const parts = lc.split(':');
      if (parts.length !== 3 || parts.some((x) => !/^\d{1,10}$/.test(x) || Number(x) > 0xffffffff))
        throw new BgpConfigError(
          `attrs.largeCommunities[${i}]`,
          lc,
          'expected global:local1:local2 (each 0..4294967295)',
        );
    }
    if (attrs.communities) {
      full.communities = attrs.communities.map((c, i) => {
        const n = normaliseCommunity(c);
        if (n === undefined)
          throw new BgpConfigError(`attrs.communities[${i}]`, c, 'expected asn:value or a well-known name');
        return n;
      });
    }
    this.setPath(this.local, key, this.attrs.make(full));
  }

  /** Withdraws a prefix this speaker originated (no-op if it did not). */
  withdraw(prefix: string): void {
    this.removePath(this.local, this.keyOf(prefix, 'prefix'));
  }

  /** Prefixes this speaker originates. */
  originated(): string[] {
    return [...this.local.adjIn.keys()].map(keyToPrefix);
  }

  // ------------------------------------------------------------------------------------------
  // RIB views

  /** The Loc-RIB: best path per prefix with its ECMP next hops. */
  locRib(): RibEntry[] {
    const out: RibEntry[] = [];
    for (const [k, src] of this.loc) out.push(this.entry(k, src));
    return out;
  }

  /** Number of prefixes in the Loc-RIB. */
  get locRibSize(): number {
    return this.loc.size;
  }

  lookup(prefix: string): RibEntry | undefined {
    const k = this.keyOf(prefix, 'prefix');
    const src = this.loc.get(k);
    return src ? this.entry(k, src) : undefined;
  }

  /** Routes received from a peer (after import policy), including stale ones. */
  adjRibIn(address: string, port?: number): { prefix: string; attrs: RouteAttrs; stale: boolean }[] {
    const p = this.findPeer(address, port);
    const out = [...p.src.adjIn].map(([k, s]) => ({ prefix: keyToPrefix(k), attrs: s.attrs, stale: false }));
    for (const [k, s] of p.src.stale ?? [])
      if (!p.src.adjIn.has(k)) out.push({ prefix: keyToPrefix(k), attrs: s.attrs, stale: true });
    return out;
  }

  /** Routes advertised to a peer, with the attributes as sent. */
  adjRibOut(address: string, port?: number): { prefix: string; attrs: RouteAttrs }[] {
    const p = this.findPeer(address, port);
    return [...p.out].map(([k, s]) => ({ prefix: keyToPrefix(k), attrs: s.attrs }));
  }

  /** Number of interned attribute sets (for diagnostics). */
  get attributeSets(): number {
    return this.attrs.size;
  }

  // ------------------------------------------------------------------------------------------
  // Internals: sessions

  private newSource(kind: 'local' | 'peer', address: string, ebgp: boolean): PathSource {
    const s: PathSource = {
      id: this.nextSourceId++,
      kind,
      address,
      addressOrder: addressOrder(address),
      ebgp,
      routerId: kind === 'local' ? this.opts.routerId : '0.0.0.0',
      routeReflectorClient: false,
      up: false,
      adjIn: new PrefixMap(),
    };
    if (kind === 'local') this.sources.push(s);
    return s;
  }

  private newSession(p: Peer): Session {
    const c = p.config;
    const gr = c.gracefulRestart
      ? {
          restartTime: c.gracefulRestart.restartTime,
          restarting: p.restarting,
          forwardingPreserved: this.opts.forwardingPreserved ?? FAMILIES.map((f) => f.afi),
          notification: c.gracefulRestart.notification === true,
        }
      : undefined;
    return new Session(
      {
        asn: this.asn,
        routerId: this.routerId,
        families: FAMILIES,
        gracefulRestart: gr,
        longLivedGracefulRestart: c.longLivedGracefulRestart,
      },
      {
        address: c.address,
        port: c.port,
        asn: c.asn,
        passive: c.passive,
        holdTime: c.holdTime,
        keepalive: c.keepalive,
        connectRetry: c.connectRetry ?? 5,
        sourceAddress: c.sourceAddress,
        md5Password: c.md5Password,
        idleHoldMin: 1,
        idleHoldMax: 60,
      },
      {
        onEstablished: (n) => this.onEstablished(p, n),
        onDown: (reason, graceful, error) => this.onDown(p, reason, graceful, error),
        onUpdate: (body) => this.onUpdate(p, body),
        onRouteRefresh: () => {
          for (const k of this.loc.keys()) p.dirty.add(k);
          p.outCache = undefined;
          for (const s of p.out.values()) this.attrs.release(s);
          p.out.clear();
          this.scheduleFlush();
        },
        onStateChange: (from, to, reason) =>
          this.emit('peer', { key: p.key, address: c.address, port: c.port, from, to, reason }),
      },
      this.clock,
      this.transport,
      this.log,
    );
  }

  /** The peer at `address` (and `port`; without it, the only peer at that address). */
  private findPeer(address: string, port?: number): Peer {
    if (port !== undefined) {
      const p = this.peersByKey.get(peerKey(address, port));
      if (!p) throw new BgpConfigError('address', peerKey(address, port), 'no such peer');
      return p;
    }
    const a = canonicalAddress(address);
    const all = [...this.peersByKey.values()].filter((p) => p.config.address === a);
    if (all.length === 0) throw new BgpConfigError('address', address, 'no such peer');
    if (all.length > 1)
      throw new BgpConfigError('port', undefined, `${all.length} peers at ${address}: name the port`);
    return all[0]!;
  }

  /**
   * The peer an accepted connection from `address` belongs to. The remote port of a connection
   * says nothing (it is ephemeral): the only peer at that address, or, when several share it, the
   * one at the standard port 179 (the others are reached by our outgoing connections only).
   */
  private peerFor(address: string): Peer | undefined {
    let only: Peer | undefined;
    let n = 0;
    for (const p of this.peersByKey.values()) {
      if (p.config.address !== address) continue;
      n++;
      only = p;
    }
    if (n <= 1) return only;
    return this.peersByKey.get(peerKey(address, 179));
  }

  /** The listening socket holds one TCP MD5 key per address: that of the first peer there with one. */
  private refreshListenerKey(address: string): void {
    if (!this.server) return;
    let key: string | null = null;
    for (const p of this.peersByKey.values())
      if (p.config.address === address && p.config.md5Password) {
        key = p.config.md5Password;
        break;
      }
    this.listenerKey(address, key);
  }

  /** Sets or removes the TCP MD5 key for a peer on the listening socket. */
  private listenerKey(address: string, key: string | null): void {
    const fd = (this.server as unknown as { _handle?: { fd?: number } })._handle?.fd;
    if (fd === undefined || fd < 0) {
      this.log.error(
        { event: 'md5-error', peer: address },
        'cannot set TCP MD5 key: listening socket has no fd',
      );
      return;
    }
    try {
      setListenerMd5(fd, address, key);
    } catch (err) {
      this.log.error(
        { event: 'md5-error', peer: address, err: String(err) },
        'cannot set TCP MD5 key on the listener',
      );
    }
  }

  /** Hands an accepted connection to the speaker (what the listener does; also for custom transports). */
  acceptConnection(conn: Conn, remoteAddress: string): void {
    const addr = normaliseAddr(remoteAddress);
    const p = this.peerFor(addr);
    if (!p) {
      this.refuse(conn, addr);
      return;
    }
    conn.setNoDelay?.(true);
    p.session.incoming(conn);
  }

  private onAccept(sock: Socket): void {
    if (!this.server) {
      sock.destroy();
      return;
    }
    this.acceptConnection(sock, sock.remoteAddress ?? '');
  }

  /**
   * A connection from an address with no peer: Cease/Connection Rejected, then the socket is
   * closed (at once, or after a second if the peer does not close first). Past the per-source
   * rate, it is destroyed without a word or a log line.
   */
  private refuse(conn: Conn, addr: string): void {
    conn.on('error', () => {});
    const r = this.refusalAllowed(addr);
    if (!r.allowed) {
      conn.destroy();
      return;
    }
    this.log.warn(
      { event: 'connection-rejected', remote: addr, ...(r.suppressed ? { suppressed: r.suppressed } : {}) },
      'connection from an address with no peer',
    );
    this.refused.add(conn);
    const t = this.clock.setTimeout(() => conn.destroy(), 1000);
    conn.on('close', () => {
      this.clock.clearTimeout(t);
      this.refused.delete(conn);
    });
    // Read and drop whatever arrives, so the peer's close is seen and the socket goes.
    conn.on('data', () => {});
    conn.write(REJECTED);
    conn.end();
  }

  /** Token bucket per source address: `refusalsPerMinute` answered refusals, refilled evenly. */
  private refusalAllowed(addr: string): { allowed: boolean; suppressed: number } {
    const cap = this.refusalsPerMinute;
    const now = this.clock.now();
    let b = this.refusals.get(addr);
    if (b)
      this.refusals.delete(addr); // re-inserted below: the map stays in last-seen order
    else b = { tokens: cap, at: now, suppressed: 0 };
    b.tokens = Math.min(cap, b.tokens + ((now - b.at) * cap) / 60_000);
    b.at = now;
    this.refusals.set(addr, b);
    if (this.refusals.size > REFUSAL_SOURCES) this.refusals.delete(this.refusals.keys().next().value!);
    if (b.tokens < 1) {
      b.suppressed++;
      return { allowed: false, suppressed: b.suppressed };
    }
    b.tokens -= 1;
    const suppressed = b.suppressed;
    b.suppressed = 0;
    return { allowed: true, suppressed };
  }

  private onEstablished(p: Peer, n: Negotiated): void {
    p.negotiated = n;
    p.established = true;
    p.src.up = true;
    this.establishedCount++;
    p.src.routerId = n.peerId;
    this.cacheClear(p);
    p.outCache = undefined; // its context (the local address, LLGR) is known anew
    // Our restart is over for this peer: later OPENs carry neither the R bit nor F bits.
    p.restarting = false;
    if (p.session.local.gracefulRestart) p.session.local.gracefulRestart.restarting = false;
    this.log.info(
      { event: 'established', peer: p.config.address, peerId: n.peerId, hold: n.holdTime },
      'session established',
    );
    if (p.src.stale && !(n.gracefulRestart && n.peerGracefulRestart)) this.purge(p, 'stale');
    else if (p.src.stale && n.peerGracefulRestart) {
      // RFC 4724 §4.2: families the peer did not preserve forwarding for lose their stale routes now;
      // for families in the long-lived phase, the F bit of its LLGR capability says (RFC 9494).
      for (const afi of [Afi.IPV4, Afi.IPV6]) {
        const caps = p.llgrTimers.has(afi)
          ? n.longLivedGracefulRestart
            ? n.peerLongLivedGracefulRestart?.families
            : undefined
          : n.peerGracefulRestart.families;
        const f = caps?.find((x) => x.afi === afi);
        if (!f?.forwardingPreserved) this.purgeFamily(p, afi);
      }
    }
    if (!p.src.stale) this.stopLongLived(p);
    if (p.grTimer !== undefined && !n.peerGracefulRestart) {
      this.clock.clearTimeout(p.grTimer);
      p.grTimer = undefined;
    }
    // Initial advertisement: the whole Loc-RIB, then End-of-RIB per family (flushPeer sends them
    // once the last slice of the table is out).
    for (const k of this.loc.keys()) p.dirty.add(k);
    p.eorPending = n.families.map((f) => encodeMessage(endOfRib(f.afi, f.safi), { as4: n.as4 }));
    this.flushPeer(p);
  }

  private onDown(p: Peer, reason: string, graceful: boolean, error?: BgpError): void {
    if (p.established) this.establishedCount--;
    p.established = false;
    p.src.up = false;
    p.dirty.clear();
    p.eorPending = undefined;
    for (const s of p.out.values()) this.attrs.release(s);
    p.out.clear();
    // RFC 4724 §4.2 helper: only with GR on at both ends, only the families the peer's capability
    // lists, and for its restart time capped by maxRestartTime.
    const n = p.negotiated;
    const gr = n?.gracefulRestart ? n.peerGracefulRestart : undefined;
    const kept = new Set(gr?.families.filter((f) => f.safi === Safi.UNICAST).map((f) => f.afi) ?? []);
    const restartTime = Math.min(gr?.restartTime ?? 0, p.config.maxRestartTime ?? Number.POSITIVE_INFINITY);
    // RFC 9494: families with LLGR go long-lived stale when the restart time is over, or at
    // once when graceful restart does not keep them (restart time 0, or not in the GR capability).
    const longLived = graceful && gr ? longLivedFamilies(n, p.config.maxLongLivedStaleTime) : new Map();
    if (restartTime === 0) kept.clear();
    this.log.info(
      {
        event: 'down',
        peer: p.config.address,
        reason,
        graceful,
        err: error?.message,
        ...(graceful && gr ? { keepStale: [...kept], restartTime } : {}),
        ...(longLived.size > 0 ? { longLivedStale: Object.fromEntries(longLived) } : {}),
      },
      'session down',
    );
    if (graceful && gr && kept.size + longLived.size > 0 && p.src.adjIn.size + (p.src.stale?.size ?? 0) > 0) {
      // Keep the routes as stale for the restart time; families not listed go now.
      if (p.src.stale) {
        for (const [k, s] of p.src.adjIn) {
          const old = p.src.stale.get(k);
          if (old) this.attrs.release(old);
          p.src.stale.set(k, s);
        }
      } else p.src.stale = p.src.adjIn;
      p.src.adjIn = new PrefixMap();
      for (const f of FAMILIES) {
        if (kept.has(f.afi)) continue;
        const t = longLived.get(f.afi);
        if (t === undefined) this.purgeFamily(p, f.afi);
        else this.enterLongLived(p, f.afi, t);
      }
      if (p.grTimer !== undefined) this.clock.clearTimeout(p.grTimer);
      p.grTimer = undefined;
      if (kept.size === 0) return;
      p.grTimer = this.clock.setTimeout(() => {
        p.grTimer = undefined;
        this.log.info(
          { event: 'gr-timeout', peer: p.config.address },
          longLived.size > 0
            ? 'restart time over, stale routes of families with LLGR become LLGR_STALE'
            : 'restart time over, removing stale routes',
        );
        for (const afi of kept) {
          const t = longLived.get(afi);
          if (t === undefined) this.purgeFamily(p, afi);
          else this.enterLongLived(p, afi, t);
        }
      }, restartTime * 1000);
      return;
    }
    this.stopLongLived(p);
    this.purge(p, 'all');
  }

  /**
   * RFC 9494: the long-lived stale phase of `afi` for this peer. Its stale routes carrying
   * NO_LLGR go; the others get LLGR_STALE (so they lose to any other path and are re-advertised
   * only to peers with LLGR) and stay for `staleTime` seconds, unless End-of-RIB or a withdrawal
   * comes first.
   */
  private enterLongLived(p: Peer, afi: number, staleTime: number): void {
    const stale = p.src.stale;
    const marked = new Map<AttrSet, AttrSet | null>();
    let kept = 0;
    let dropped = 0;
    for (const [k, s] of stale ? [...stale] : []) {
      if (keyFamily(k) !== afi) continue;
      let next = marked.get(s);
      if (next === undefined) {
        const a = markLongLivedStale(s.attrs);
        next = a === null ? null : a === s.attrs ? s : this.attrs.make(a);
        marked.set(s, next);
      }
      if (next === s) {
        kept++;
        continue;
      }
      if (next === null) {
        dropped++;
        stale!.delete(k);
      } else {
        kept++;
        stale!.set(k, this.attrs.acquire(next));
      }
      this.attrs.release(s);
      if (!p.src.adjIn.has(k)) this.recompute(k, p.src, next !== null);
    }
    if (stale?.size === 0) p.src.stale = undefined;
    const old = p.llgrTimers.get(afi);
    if (old !== undefined) this.clock.clearTimeout(old);
    p.llgrTimers.delete(afi);
    this.log.info(
      { event: 'llgr-stale', peer: p.config.address, afi, routes: kept, noLlgr: dropped, staleTime },
      'long-lived graceful restart: keeping stale routes as LLGR_STALE',
    );
    if (kept === 0) return;
    p.llgrTimers.set(
      afi,
      this.clock.setTimeout(() => {
        p.llgrTimers.delete(afi);
        this.log.info(
          { event: 'llgr-timeout', peer: p.config.address, afi },
          'long-lived stale time over, removing LLGR_STALE routes',
        );
        this.purge(p, 'stale', afi);
      }, staleTime * 1000),
    );
  }

  /** Removes the stale routes of one family and stops its long-lived stale timer. */
  private purgeFamily(p: Peer, afi: number): void {
    this.purge(p, 'stale', afi);
    const t = p.llgrTimers.get(afi);
    if (t !== undefined) this.clock.clearTimeout(t);
    p.llgrTimers.delete(afi);
  }

  private stopLongLived(p: Peer): void {
    for (const t of p.llgrTimers.values()) this.clock.clearTimeout(t);
    p.llgrTimers.clear();
  }

  /** Removes a peer's routes: only the stale ones, or everything. */
  private purge(p: Peer, which: 'stale' | 'all', family?: number): void {
    const stale = p.src.stale;
    if (stale) {
      const keys = [...stale.keys()].filter((k) => family === undefined || keyFamily(k) === family);
      for (const k of keys) {
        const s = stale.get(k)!;
        stale.delete(k);
        this.attrs.release(s);
        if (!p.src.adjIn.has(k)) this.recompute(k, p.src);
      }
      if (stale.size === 0) p.src.stale = undefined;
    }
    if (which === 'all') {
      const keys = [...p.src.adjIn.keys()];
      for (const k of keys) this.removePath(p.src, k);
    }
  }

  // ------------------------------------------------------------------------------------------
  // Internals: UPDATE processing

  private onUpdate(p: Peer, body: Buffer): void {
    const n = p.negotiated!;
    try {
      const { wEnd, aStart, aEnd } = updateLayout(body);
      if (aEnd === aStart) {
        if (wEnd === 2 && aEnd === body.length) {
          this.onEndOfRib(p, Afi.IPV4);
          return;
        }
        this.applyV4(p, body, 2, wEnd, null);
        if (aEnd < body.length) {
          // RFC 7606 §3.d: NLRI without the mandatory attributes is treated as withdrawn.
          p.treatAsWithdraw++;
          this.log.warn(
            { event: 'update-error', peer: p.config.address, action: 'treat-as-withdraw' },
            'NLRI without path attributes',
          );
          this.applyV4(p, body, aEnd, body.length, null);
        }
        return;
      }
      const hasNlri = aEnd < body.length;
      const raw = hasNlri ? body.toString('latin1', aStart, aEnd) : undefined;
      const cached = raw === undefined ? undefined : p.cache.get(raw);
      if (cached !== undefined) {
        // Fast path: attributes seen before from this peer; only prefixes to walk.
        this.applyV4(p, body, 2, wEnd, null);
        this.applyV4(p, body, aEnd, body.length, cached);
        this.checkMaxPrefixes(p);
        return;
      }
      if (raw !== undefined) {
        // IPv4 NLRI: decode the attributes once, cache the outcome, walk the prefixes as numbers.
        const v = validateAttributes(body.subarray(aStart, aEnd), { as4: n.as4 }, p.src.ebgp, true);
        if (!v.attrs.some((a) => a.type === 'mp-reach' || a.type === 'mp-unreach')) {
          for (const i of v.issues)
            this.log.warn(
              { event: 'update-error', peer: p.config.address, action: i.action, err: i.error.message },
              'malformed UPDATE attribute',
            );
          let set: AttrSet | null = null;
          if (v.action === 'treat-as-withdraw') p.treatAsWithdraw++;
          // When the import filter rejects every prefix, the attributes would only be built to be
          // dropped: the prefixes are withdrawn from this peer all the same (set null).
          else if (this.anyImportedV4(p, body, aEnd, body.length))
            set = this.importAttrs(p, fromWire(v.attrs, n.as4));
          this.applyV4(p, body, 2, wEnd, null);
          this.applyV4(p, body, aEnd, body.length, set);
          // Only attributes that some accepted prefix uses are worth remembering: caching the
          // rejected ones would let a peer churn the cache (and the young generation of the heap)
          // with attribute lists that lead nowhere.
          if (set?.interned) this.cachePut(p, raw, set);
          this.checkMaxPrefixes(p);
          return;
        }
      }
      const d = decodeUpdate(body, { as4: n.as4 }, p.src.ebgp);
      const msg = d.msg;
      for (const i of d.issues)
        this.log.warn(
          { event: 'update-error', peer: p.config.address, action: i.action, err: i.error.message },
          'malformed UPDATE attribute',
        );
      const eor = isEndOfRib(msg);
      if (eor) {
        this.onEndOfRib(p, eor.afi);
        return;
      }
      for (const pfx of msg.withdrawn) this.removePath(p.src, this.keyOf(pfx));
      for (const a of msg.attrs)
        if (a.type === 'mp-unreach') for (const pfx of a.withdrawn) this.removePath(p.src, this.keyOf(pfx));
      const mp = msg.attrs.find((a) => a.type === 'mp-reach');
      const mpNlri = mp?.type === 'mp-reach' && (mp.afi === Afi.IPV4 || mp.afi === Afi.IPV6) ? mp.nlri : [];
      if (msg.nlri.length === 0 && mpNlri.length === 0) return;
      const bad = d.action === 'treat-as-withdraw';
      if (bad) p.treatAsWithdraw++;
      // Classic NLRI use NEXT_HOP; MP_REACH NLRI use the MP_REACH next hop(s) (RFC 4760 §3).
      const classic = bad
        ? null
        : this.importAttrs(
            p,
            fromWire(
              msg.attrs.filter((a) => a.type !== 'mp-reach'),
              n.as4,
            ),
          );
      const multi =
        bad || mpNlri.length === 0
          ? null
          : this.importAttrs(
              p,
              fromWire(
                msg.attrs.filter((a) => a.type !== 'next-hop'),
                n.as4,
              ),
            );
      for (const pfx of msg.nlri) {
        const k = this.keyOf(pfx);
        if (classic === null) this.removePath(p.src, k);
        else this.importOne(p, k, classic);
      }
      for (const pfx of mpNlri) {
        const k = this.keyOf(pfx);
        if (multi === null) this.removePath(p.src, k);
        else this.importOne(p, k, multi);
      }
      this.checkMaxPrefixes(p);
    } catch (err) {
      if (err instanceof BgpError) {
        this.log.warn(
          { event: 'update-error', peer: p.config.address, err: err.message },
          'UPDATE resets the session',
        );
        p.session.fail(err);
        return;
      }
      throw err;
    }
  }

  /**
   * Walks IPv4 NLRI in [off, end) as numeric keys and announces them with `set` (null: withdraws
   * them). Throws INVALID_NETWORK_FIELD on bad encoding. One loop with direct calls: this is the
   * ingest hot path.
   */
  private applyV4(p: Peer, b: Buffer, off: number, end: number, set: AttrSet | null): void {
    const filter = set !== null && (p.importP?.rules.length ?? 0) > 0;
    while (off < end) {
      const len = b[off++]!;
      if (len > 32) throw updateError(UpdateSubcode.INVALID_NETWORK_FIELD, `prefix length ${len} above 32`);
      const n = (len + 7) >> 3;
      if (off + n > end)
        throw updateError(UpdateSubcode.INVALID_NETWORK_FIELD, `prefix of length ${len} overruns the field`);
      // Key = 2^len + the len network bits (see v4Key); small integers up to /29.
      let net = 0;
      for (let i = 0; i < n; i++) net = ((net << 8) | b[off + i]!) >>> 0;
      off += n;
      const extra = n * 8 - len;
      if (extra > 0) net >>>= extra;
      const k = len <= 30 ? (1 << len) + net : 2 ** len + net;
      if (set === null) this.removePath(p.src, k);
      // The filter reads the numbers: no string or object per prefix (rejected ones cost nothing).
      else if (filter && !prefixAllowedV4(p.importP, (net << (32 - len)) >>> 0, len))
        this.removePath(p.src, k);
      else this.setPath(p.src, k, set);
    }
  }

  /**
   * Does the import filter let any IPv4 prefix in [off, end) through? True without a prefix list,
   * and on bad encoding (`applyV4` then reports it).
   */
  private anyImportedV4(p: Peer, b: Buffer, off: number, end: number): boolean {
    if ((p.importP?.rules.length ?? 0) === 0) return true;
    while (off < end) {
      const len = b[off++]!;
      const n = (len + 7) >> 3;
      if (len > 32 || off + n > end) return true;
      let addr = 0;
      for (let i = 0; i < 4; i++) addr = ((addr << 8) | (i < n ? b[off + i]! : 0)) >>> 0;
      off += n;
      // Bits past the length are ignored on the wire (RFC 4271 §4.3): mask them off.
      if (len < 32) addr = (addr & ~(0xffffffff >>> len)) >>> 0;
      if (prefixAllowedV4(p.importP, addr, len)) return true;
    }
    return false;
  }

  /** Import checks that depend on attributes only: loop prevention and the policy's attribute part. */
  private importAttrs(p: Peer, attrs: RouteAttrs): AttrSet | null {
    if (containsAs(attrs.asPath, this.asn)) return null; // RFC 4271 §9.1.2 loop
    if (attrs.originatorId === this.routerId) return null; // RFC 4456 §8
    if (attrs.clusterList?.includes(this.clusterId)) return null; // RFC 4456 §8
    if (!attrs.nextHop || !usableNextHop(attrs.nextHop)) return null; // RFC 4271 §6.3 / RFC 7606 §7.3
    const after = applyAttrs(p.importP, attrs);
    if (!after) return null;
    return this.attrs.make(after);
  }

  /** Remembers what a raw attribute list imported as, within the peer's byte budget (oldest out first). */
  private cachePut(p: Peer, raw: string, set: AttrSet): void {
    const max = this.attrCacheBytes;
    const cost = cacheCost(raw, set);
    if (cost > max) return;
    p.cache.set(raw, set);
    p.cacheBytes += cost;
    if (p.cacheBytes <= max) return;
    for (const [k, v] of p.cache) {
      p.cache.delete(k);
      p.cacheBytes -= cacheCost(k, v);
      if (p.cacheBytes <= max) break;
    }
  }

  private cacheClear(p: Peer): void {
    p.cache.clear();
    p.cacheBytes = 0;
  }

  private importOne(p: Peer, k: PrefixKey, set: AttrSet): void {
    if (p.importP?.rules.length && !prefixAllowed(p.importP, keyToPrefix(k))) {
      this.removePath(p.src, k);
      return;
    }
    this.setPath(p.src, k, set);
  }

  private onEndOfRib(p: Peer, afi: number): void {
    this.log.info({ event: 'end-of-rib', peer: p.config.address, afi }, 'End-of-RIB received');
    if (p.src.stale) this.purgeFamily(p, afi);
    else this.stopLongLived(p);
    if (!p.src.stale && p.grTimer !== undefined) {
      this.clock.clearTimeout(p.grTimer);
      p.grTimer = undefined;
    }
    this.emit('end-of-rib', { key: p.key, address: p.config.address, port: p.config.port, afi });
  }

  private checkMaxPrefixes(p: Peer): void {
    const max = p.config.maxPrefixes ?? (this.defaultMaxPrefixes || undefined);
    if (max === undefined || p.src.adjIn.size <= max || !p.established) return;
    p.maxPrefixesExceeded++;
    this.log.warn(
      { event: 'max-prefixes', peer: p.key, limit: max, received: p.src.adjIn.size },
      'peer sent more prefixes than its limit: Cease/Maximum Number of Prefixes Reached',
    );
    this.emit('max-prefixes', { key: p.key, address: p.config.address, port: p.config.port, limit: max });
    // RFC 4486 §4: data is AFI, SAFI and the upper bound.
    const data = Uint8Array.of(0, 1, 1, max >>> 24, (max >>> 16) & 255, (max >>> 8) & 255, max & 255);
    p.session.fail(
      new BgpError(ErrorCode.CEASE, CeaseSubcode.MAX_PREFIXES, `more than ${max} prefixes`, data),
    );
  }

  // ------------------------------------------------------------------------------------------
  // Internals: RIB

  private keyOf(prefix: string, field = 'prefix'): PrefixKey {
    const pp = parsePrefix(prefix, field);
    if (pp.afi === Afi.IPV4) {
      const b = pp.bytes;
      return v4Key(((b[0]! << 24) | (b[1]! << 16) | (b[2]! << 8) | b[3]!) >>> 0, pp.len);
    }
    return `${formatIpv6(pp.bytes)}/${pp.len}`;
  }

  /** Stores `cand` as `src`'s path for `k`: the one place an attribute set gets interned. */
  private setPath(src: PathSource, k: PrefixKey, cand: AttrSet): void {
    const old = src.adjIn.get(k);
    if (sameAttrs(old, cand)) return;
    const set = this.attrs.acquire(cand);
    src.adjIn.set(k, set);
    if (old) this.attrs.release(old);
    if (src.stale) {
      const st = src.stale.get(k);
      if (st) {
        src.stale.delete(k);
        this.attrs.release(st);
      }
    }
    this.recompute(k, src, true);
  }

  private removePath(src: PathSource, k: PrefixKey): void {
    const old = src.adjIn.get(k);
    if (!old) {
      // A withdrawal of a route kept as stale (graceful restart) removes it too.
      const st = src.stale?.get(k);
      if (!st) return;
      src.stale!.delete(k);
      this.attrs.release(st);
      this.recompute(k, src, false);
      return;
    }
    src.adjIn.delete(k);
    this.attrs.release(old);
    this.recompute(k, src, false);
  }

  /** Re-runs best-path selection for `k` after `changed` got (`has`) or lost a path for it. */
  private recompute(k: PrefixKey, changed: PathSource, has = pathOf(changed, k) !== undefined): void {
    const prev = this.loc.get(k);
    const srcs = this.sources;
    let best: PathSource | undefined;
    // One peer and nothing originated: its path is the only candidate.
    if (srcs.length <= 2 && this.local.adjIn.size === 0 && !this.usable)
      best = has ? changed : selectBest(srcs, k);
    else best = selectBest(srcs, k, this.usable);
    if (best) {
      if (best !== prev) this.loc.set(k, best);
    } else if (prev) this.loc.delete(k);
    if (best === prev && best !== changed && !this.multipathMayChange(k)) return;
    if (this.watched) this.emitChange(k, best);
    if (this.establishedCount > (changed.up ? 1 : 0)) {
      for (const p of this.peersByKey.values()) if (p.established && p.src !== changed) p.dirty.add(k);
      // The source peer may need a withdrawal of what we sent it before.
      const cp = this.peerOf(changed);
      if (cp?.established && cp.out.has(k)) cp.dirty.add(k);
      this.scheduleFlush();
    }
  }

  private multipathMayChange(_k: PrefixKey): boolean {
    return this.watched && this.sources.length > 2;
  }

  private peerOf(src: PathSource): Peer | undefined {
    return src.kind === 'peer' ? this.peerBySource.get(src.id) : undefined;
  }

  private entry(k: PrefixKey, best: PathSource): RibEntry {
    const set = pathOf(best, k)!;
    const mp = multipath(this.sources, k, best, this.usable);
    return {
      prefix: keyToPrefix(k),
      nextHops: mp.map((m) => m.set.attrs.nextHop ?? '').filter((h) => h !== ''),
      attrs: set.attrs,
      from: best.kind === 'local' ? 'local' : best.address,
      stale: !best.adjIn.has(k),
    };
  }

  private emitChange(k: PrefixKey, best: PathSource | undefined): void {
    const prev = this.emitted.get(k);
    if (!best) {
      if (prev === undefined) return;
      this.emitted.delete(k);
      this.emit('bestpath', {
        type: 'removed',
        prefix: keyToPrefix(k),
        afi: keyFamily(k),
        nextHops: [],
      } satisfies RibChange);
      return;
    }
    const e = this.entry(k, best);
    const sig = `${best.id}|${pathOf(best, k)!.id}|${e.nextHops.join(',')}`;
    if (sig === prev) return;
    this.emitted.set(k, sig);
    this.emit('bestpath', {
      type: prev === undefined ? 'added' : 'changed',
      prefix: e.prefix,
      afi: keyFamily(k),
      nextHops: e.nextHops,
      attrs: e.attrs,
      from: e.from,
    } satisfies RibChange);
  }

  // ------------------------------------------------------------------------------------------
  // Internals: Adj-RIB-Out

  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(() => {
      this.flushScheduled = false;
      for (const p of this.peersByKey.values()) if (p.established && p.dirty.size > 0) this.flushPeer(p);
    });
  }

  /** What we would send `p` for `k` (undefined: nothing / withdraw). */
  private exportFor(p: Peer, k: PrefixKey): AttrSet | undefined {
    const best = this.loc.get(k);
    if (!best || best === p.src) return undefined;
    const n = p.negotiated!;
    const fam = keyFamily(k);
    if (!n.families.some((f) => f.afi === fam)) return undefined;
    const set = pathOf(best, k)!;
    if (p.exportP?.originatedOnly && best.kind !== 'local') return undefined;
    if (p.exportP?.rules.length && !exportAllowed(p.exportP, k)) return undefined;
    // iBGP to iBGP: never back to the router the route came from (RFC 4456 §8); the one check of
    // transformOut's that depends on the peer itself, so it is made before the shared cache.
    const a = set.attrs;
    if (
      best.kind === 'peer' &&
      !best.ebgp &&
      !p.src.ebgp &&
      (a.originatorId === p.src.routerId || (!a.originatorId && best.routerId === p.src.routerId))
    )
      return undefined;
    const cache = this.outCacheOf(p);
    const ck = `${best.id}:${set.id}:${fam}`;
    let out = cache.get(ck);
    if (out === undefined) {
      out = this.transformOut(p, best, set, fam);
      // Keys name set ids, which retire with their sets: bound the map rather than track them.
      if (cache.size >= OUT_CACHE_ENTRIES) cache.clear();
      cache.set(ck, out);
    }
    return out ?? undefined;
  }

  /**
   * The export cache of `p`'s context: everything transformOut reads of the peer (eBGP or not,
   * reflector client or not, LLGR, the next hops we would set, next-hop-self, the export policy).
   */
  private outCacheOf(p: Peer): Map<string, AttrSet | null> {
    if (p.outCache) return p.outCache;
    const ctx = [
      p.src.ebgp ? 'e' : 'i',
      p.src.routeReflectorClient ? 'c' : '-',
      p.negotiated?.peerLongLivedGracefulRestart ? 'l' : '-',
      p.config.nextHopSelf ? 's' : '-',
      this.selfV4(p) ?? '',
      this.selfV6(p) ?? '',
      JSON.stringify(p.config.export ?? null),
    ].join('|');
    let cache = this.outCaches.get(ctx);
    if (!cache) {
      // Contexts of peers long gone are not tracked: bound their number (peers keep their own).
      if (this.outCaches.size >= OUT_CACHE_CONTEXTS) this.outCaches.clear();
      cache = new Map();
      this.outCaches.set(ctx, cache);
    }
    p.outCache = cache;
    return cache;
  }

  private transformOut(p: Peer, best: PathSource, set: AttrSet, fam: number): AttrSet | null {
    const a = set.attrs;
    // RFC 9494: an LLGR_STALE route goes only to peers that sent the LLGR capability (with
    // the community on it); the others get a withdrawal. The partial deployment option is
    // not implemented.
    if (set.llgrStale && !p.negotiated?.peerLongLivedGracefulRestart) return null;
    if (a.communities?.includes('65535:65282')) return null; // NO_ADVERTISE
    if (p.src.ebgp && a.communities?.includes('65535:65281')) return null; // NO_EXPORT
    const fromIbgp = best.kind === 'peer' && !best.ebgp;
    let reflect = false;
    if (fromIbgp && !p.src.ebgp) {
      // iBGP split horizon, relaxed by route reflection (RFC 4456 §6).
      if (!best.routeReflectorClient && !p.src.routeReflectorClient) return null;
      reflect = true; // (a route back to its originator was refused by exportFor)
    }
    const self = fam === Afi.IPV4 ? this.selfV4(p) : this.selfV6(p);
    const r: RouteAttrs = { ...a };
    if (p.src.ebgp) {
      const first = a.asPath[0];
      r.asPath =
        first?.type === 'sequence' && first.asns.length < 255
          ? [{ type: 'sequence', asns: [this.asn, ...first.asns] }, ...a.asPath.slice(1)]
          : [{ type: 'sequence', asns: [this.asn] }, ...a.asPath];
      r.localPref = undefined;
      r.originatorId = undefined;
      r.clusterList = undefined;
      if (best.kind !== 'local') r.med = undefined;
      if (best.kind !== 'local' || !a.nextHop) {
        r.nextHop = self;
        r.linkLocalNextHop = undefined;
      }
    } else {
      r.localPref = set.localPref;
      if (reflect) {
        r.originatorId = a.originatorId ?? best.routerId;
        r.clusterList = [this.clusterId, ...(a.clusterList ?? [])];
      } else if (best.kind === 'local' ? !a.nextHop : p.config.nextHopSelf) {
        r.nextHop = self;
        r.linkLocalNextHop = undefined;
      }
    }
    if (!r.nextHop || addressFamily(r.nextHop) !== fam) return null;
    const after = applyAttrs(p.exportP, r);
    return after ? this.attrs.make(after) : null;
  }

  private selfV4(p: Peer): string | undefined {
    const a = p.session.localAddress ?? p.config.sourceAddress;
    return a && addressFamily(a) === Afi.IPV4 ? a : undefined;
  }

  private selfV6(p: Peer): string | undefined {
    if (p.config.nextHopIpv6) return p.config.nextHopIpv6;
    const a = p.session.localAddress ?? p.config.sourceAddress;
    return a && addressFamily(a) === Afi.IPV6 ? a : undefined;
  }

  /**
   * Sends `p` what changed for it: at most FLUSH_SLICE keys per call, the rest on the next turn of
   * the event loop (scheduleFlush). A full table to a new peer (a million prefixes) thus never
   * holds the loop for seconds: timers (every session's KEEPALIVE, hold timer) run between slices,
   * and a peer's hold timer does not expire because we were busy advertising to another.
   */
  private flushPeer(p: Peer): void {
    const n = p.negotiated;
    if (!n || !p.established) return;
    const announce = new Map<AttrSet, { v4: string[]; v6: string[] }>();
    const withdraw = { v4: [] as string[], v6: [] as string[] };
    let done = 0;
    for (const k of p.dirty) {
      if (done++ === FLUSH_SLICE) break;
      p.dirty.delete(k);
      const cand = this.exportFor(p, k);
      const cur = p.out.get(k);
      if (sameAttrs(cand, cur)) continue;
      const fam = typeof k === 'number' ? 'v4' : 'v6';
      if (cand) {
        const next = this.attrs.acquire(cand);
        p.out.set(k, next);
        let g = announce.get(next);
        if (!g) {
          g = { v4: [], v6: [] };
          announce.set(next, g);
        }
        g[fam].push(keyToPrefix(k));
      } else {
        p.out.delete(k);
        withdraw[fam].push(keyToPrefix(k));
      }
      if (cur) this.attrs.release(cur);
    }
    const frames: Buffer[] = [];
    const ctx = { as4: n.as4 };
    if (withdraw.v4.length) frames.push(...packWithdraw(Afi.IPV4, withdraw.v4));
    if (withdraw.v6.length) frames.push(...packWithdraw(Afi.IPV6, withdraw.v6));
    for (const [set, g] of announce) {
      if (g.v4.length) frames.push(...packAnnounceEncoded(Afi.IPV4, g.v4, wireAttrs(set, Afi.IPV4, ctx)));
      if (g.v6.length) {
        const hops = [
          set.attrs.nextHop!,
          ...(set.attrs.linkLocalNextHop ? [set.attrs.linkLocalNextHop] : []),
        ];
        frames.push(...packAnnounceEncoded(Afi.IPV6, g.v6, wireAttrs(set, Afi.IPV6, ctx), hops));
      }
    }
    if (p.dirty.size > 0) this.scheduleFlush();
    else if (p.eorPending) {
      frames.push(...p.eorPending);
      p.eorPending = undefined;
    }
    if (frames.length) p.session.sendFrames(frames);
  }
}
