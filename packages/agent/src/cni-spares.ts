// Spare addresses: the agent keeps a few addresses of its node's blocks allocated ahead (IPAM
// attribute podnet.io/spare = the node, each under a handle of its own), so that an ADD served
// on the CNI socket answers without waiting on the API server. The pod's own records follow in
// the background: the spare's handle is transferred to the pod's (Ipam.transfer: the pod's
// IPAMHandle, one block write) and the pod is annotated. A pod never waits on either.
//
// What keeps an address from being handed out twice:
// - a spare is allocated in the API before it is kept, so no other allocation takes it;
// - taking one is written to a journal (a file beside the CNI socket) before the ADD gets its
//   answer (written, not fsync'd: a crash of the agent keeps what it wrote; a crash of the kernel
//   ends the pods too), and the record is closed once the transfer (and the annotation) is stored. An agent
//   that starts reads the journal first: a spare taken and not closed is never given again; its
//   transfer is completed when the ADD finished (its result cache entry names the handle) and it
//   goes back to the spares when the ADD did not (the shim then ran the standalone plugin, which
//   allocated on its own) or was deleted since;
// - the journal lives on the socket's filesystem (the DaemonSet's /var/run/podnet, a tmpfs): a
//   reboot, which ends every pod of the node, empties it, and every spare is free again.
// Only ADDs for this node that name no pools take spares; the rest go through IPAM as before.
import { randomBytes } from 'node:crypto';
import { appendFileSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import {
  type Allocation,
  type AllocateRequest as CniAllocateRequest,
  CniError,
  CniErrorCode,
  type Datastore,
  type PodRef,
  ResultCache,
} from '@podnet/cni';
import { type AllocationAttrs, IPAM_ERR, type Ipam, IpamError, SPARE_ATTR } from '@podnet/ipam';
import type { Logger } from 'pino';
import type { Metrics } from './metrics.js';

/** The parts of Ipam the spares use. */
export type SpareIpam = Pick<Ipam, 'allocate' | 'transfer' | 'sparesOf' | 'allocatable' | 'releaseByHandle'>;

export interface Spare {
  /** The IPAM handle the address is held under while it is spare. */
  handle: string;
  ipv4?: string;
  ipv6?: string;
  /** The blocks of the addresses (one per family). */
  blocks: string[];
}

/** Where the ADD that took a spare leaves its result (to tell, after a restart, whether it finished). */
export interface TakenBy {
  cacheDir: string;
  network: string;
}

type JournalLine =
  | {
      op: 'take';
      spare: Spare;
      handle: string;
      attrs: Record<string, string>;
      by: TakenBy;
    }
  | { op: 'annotate'; spare: string; pod: PodRef; ips: string[] }
  | { op: 'done' | 'cancel'; spare: string };

/** A take read from the journal, with the annotation its ADD asked for. */
type OpenTake = Extract<JournalLine, { op: 'take' }> & { annotate?: { pod: PodRef; ips: string[] } };

/** Lines appended before a journal that still holds open records is rewritten without the closed ones. */
const COMPACT_AFTER = 256;

/** How often a replayed take without a result cache entry is looked at again before it is freed. */
const REPLAY_CHECKS = 4;

interface Taken {
  spare: Spare;
  handle: string;
  attrs: Record<string, string>;
  /** Settles once the transfer (and the annotation, if any) is stored or given up. */
  job: Promise<void>;
  /** Called with the annotation to make, or undefined when none will come. */
  annotation: (a: { pod: PodRef; ips: string[] } | undefined) => void;
}

export interface SpareOptions {
  node: string;
  /** Spares kept per kind of request (the families it asks for). */
  count: number;
  journal: string;
  log: Logger;
  /** Retry pause bounds of a background write, ms (tests shorten them). */
  retryMs?: { first: number; max: number };
  metrics?: Pick<Metrics, 'cniSpares' | 'cniSpareAllocations' | 'cniSparePending'>;
  /** Pause between the checks of a replayed take without a result (default 15 s). */
  replayCheckMs?: number;
  /** How long a taken spare waits for its ADD's annotation before the record is closed. */
  annotationWaitMs?: number;
}

const kindOf = (ipv4: boolean, ipv6: boolean) => `${ipv4 ? '4' : ''}${ipv6 ? '6' : ''}`;
const spareKind = (s: Spare) => kindOf(s.ipv4 !== undefined, s.ipv6 !== undefined);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Errors a later attempt cannot mend: the handle belongs to another allocation, or the spare is gone. */
const final = (err: unknown) =>
  err instanceof IpamError && (err.code === IPAM_ERR.HANDLE_BUSY || err.code === IPAM_ERR.NOT_ALLOCATED);

export class SpareAddresses {
  private ipam: SpareIpam;
  private inner: Datastore;
  private readonly free = new Map<string, Spare[]>();
  private readonly taken = new Map<string, Taken>();
  private readonly refilling = new Set<string>();
  /** The kinds of request seen (refilled once loaded). */
  private readonly kinds = new Set<string>();
  /**
   * The journal's open records (take and annotate lines) by spare handle: the spares taken and not
   * closed, never given again in this process.
   */
  private readonly open = new Map<string, string>();
  /** Lines written since the journal was last emptied or rewritten. */
  private appended = 0;
  private ready = false;
  private closed = false;
  private cooldownUntil = 0;
  private readonly starting: Promise<void>;
  readonly stats = { given: 0, missed: 0, made: 0, transferred: 0, replayed: 0, cancelled: 0 };

  constructor(
    private readonly o: SpareOptions,
    ipam: SpareIpam,
    inner: Datastore,
  ) {
    this.ipam = ipam;
    this.inner = inner;
    this.starting = this.start().catch((err: unknown) => {
      this.o.log.warn(
        { err: (err as Error).message },
        'spare addresses not loaded: ADDs allocate through IPAM',
      );
    });
  }

  /** A new API connection (rotated credentials): later work goes through it. */
  rebind(ipam: SpareIpam, inner: Datastore): void {
    this.ipam = ipam;
    this.inner = inner;
  }

  /** Resolves once the journal was replayed and the node's spares read. */
  loaded(): Promise<void> {
    return this.starting;
  }

  /** Free spares per kind ('4', '6', '46'). */
  available(): Record<string, number> {
    return Object.fromEntries([...this.free].map(([k, v]) => [k, v.length]));
  }

  /** The background transfers still running. */
  async settled(): Promise<void> {
    while (this.taken.size > 0) await Promise.allSettled([...this.taken.values()].map((t) => t.job));
  }

  close(): void {
    this.closed = true;
  }

  /** An allocation for one ADD; `by` names its result cache. */
  async allocate(req: CniAllocateRequest, by: TakenBy): Promise<{ alloc: Allocation; taken?: Taken }> {
    const eligible = req.node === this.o.node && req.ipv4Pools.length === 0 && req.ipv6Pools.length === 0;
    const kind = kindOf(req.ipv4, req.ipv6);
    const earlier = this.taken.get(req.handle);
    if (earlier) {
      // The same attachment again while its spare is being recorded: IPAM returns what the handle
      // holds once the transfer is stored.
      await earlier.job;
    } else if (eligible && kind !== '') {
      const spare = await this.take(kind);
      if (spare) {
        const t = this.record(spare, req.handle, req.attrs, by);
        this.stats.given++;
        this.o.metrics?.cniSpareAllocations.inc({ result: 'given' });
        this.report();
        this.kinds.add(kind);
        return { alloc: { ipv4: spare.ipv4, ipv6: spare.ipv6 }, taken: t };
      }
      this.stats.missed++;
      this.o.metrics?.cniSpareAllocations.inc({ result: 'missed' });
    }
    let alloc: Allocation;
    try {
      alloc = await this.inner.allocate(req);
    } catch (err) {
      if (!(err instanceof CniError) || err.code !== CniErrorCode.IpamExhausted || !this.anyFree()) throw err;
      // The spares hold the last addresses: give them back and try once more.
      await this.releaseFree('the pools are exhausted');
      alloc = await this.inner.allocate(req);
    }
    if (eligible && kind !== '') {
      this.kinds.add(kind);
      this.refill(kind);
    }
    return { alloc };
  }

  /** Defers a taken spare's annotation to its background record; false when `t` is done already. */
  annotateLater(t: Taken, pod: PodRef, ips: string[]): boolean {
    if (!this.taken.has(t.handle)) return false;
    this.append({ op: 'annotate', spare: t.spare.handle, pod, ips });
    t.annotation({ pod, ips });
    return true;
  }

  /** Releases a handle; one whose spare is still being recorded is released once that is done. */
  async releaseByHandle(handle: string): Promise<void> {
    const t = this.taken.get(handle);
    if (t) {
      t.annotation(undefined);
      let timer: NodeJS.Timeout | undefined;
      const done = await Promise.race([
        t.job.then(() => true),
        new Promise<boolean>((r) => {
          timer = setTimeout(() => r(false), 10_000);
        }),
      ]);
      clearTimeout(timer);
      if (!done) {
        throw new CniError(
          CniErrorCode.TryAgainLater,
          `releasing ${handle}: its address ${t.spare.ipv4 ?? t.spare.ipv6} is still being recorded (the API server does not answer)`,
        );
      }
    }
    await this.inner.releaseByHandle(handle);
  }

  /** The spares held and the records pending, into the metrics. */
  private report(): void {
    const m = this.o.metrics;
    if (!m) return;
    for (const [kind, list] of this.free) m.cniSpares.set({ families: kind }, list.length);
    m.cniSparePending.set(this.open.size);
  }

  /** A spare free to give. */
  private keep(spare: Spare): void {
    const kind = spareKind(spare);
    const list = this.free.get(kind) ?? [];
    list.push(spare);
    this.free.set(kind, list);
  }

  private anyFree(): boolean {
    for (const l of this.free.values()) if (l.length > 0) return true;
    return false;
  }

  private async take(kind: string): Promise<Spare | undefined> {
    if (!this.ready) return undefined;
    const list = this.free.get(kind);
    while (list && list.length > 0) {
      const s = list.shift()!;
      // A pool disabled, deleted or no longer selecting this node since the spare was made. When
      // the pools cannot be read (the API server does not answer), the spare is given: it was in
      // an enabled pool when it was made, and an ADD should not need the API server.
      const ok = await this.ipam.allocatable(this.o.node, s.blocks).catch((err: unknown) => {
        this.o.log.debug(
          { spare: s.handle, err: (err as Error).message },
          'pools not read: spare given as made',
        );
        return true;
      });
      if (ok) return s;
      this.o.log.info(
        { spare: s.handle, blocks: s.blocks },
        'spare address no longer allocatable here: released',
      );
      void this.ipam.releaseByHandle(s.handle).catch((err: unknown) => {
        this.o.log.warn({ spare: s.handle, err: (err as Error).message }, 'releasing a spare failed');
      });
    }
    return undefined;
  }

  private record(spare: Spare, handle: string, attrs: Record<string, string>, by: TakenBy): Taken {
    this.append({ op: 'take', spare, handle, attrs, by });
    let annotation!: Taken['annotation'];
    const wanted = new Promise<{ pod: PodRef; ips: string[] } | undefined>((r) => {
      annotation = r;
    });
    const t: Taken = { spare, handle, attrs, annotation, job: Promise.resolve() };
    this.taken.set(handle, t);
    t.job = this.complete(t, attrs.pod !== undefined ? wanted : Promise.resolve(undefined));
    return t;
  }

  /**
   * The background record of a taken spare: once its ADD has been answered (the pod's annotation
   * is asked for, or the ADD is rolled back), so that the ADD never shares the CPU with it; then
   * the transfer, the annotation, and a new spare.
   */
  private async complete(t: Taken, wanted: Promise<{ pod: PodRef; ips: string[] } | undefined>) {
    const log = this.o.log.child({ handle: t.handle, spare: t.spare.handle });
    try {
      let timer: NodeJS.Timeout | undefined;
      const a = await Promise.race([
        wanted,
        new Promise<undefined>((r) => {
          timer = setTimeout(() => r(undefined), this.o.annotationWaitMs ?? 60_000);
          timer.unref();
        }),
      ]);
      clearTimeout(timer);
      // The ADD writes its result and answers in this turn of the event loop: after it.
      await new Promise((r) => setImmediate(r));
      const moved = await this.retrying('transfer', () =>
        this.ipam.transfer(t.spare.handle, t.handle, this.o.node, t.spare.blocks, t.attrs as AllocationAttrs),
      );
      if (!moved.ok) return;
      this.stats.transferred++;
      if (a && !(await this.retrying('annotate', () => this.inner.annotatePod(a.pod, a.ips))).ok) return;
      this.append({ op: 'done', spare: t.spare.handle });
      log.debug({ addresses: moved.value }, 'spare address recorded for its pod');
    } finally {
      this.taken.delete(t.handle);
      this.compact();
      this.refill(spareKind(t.spare));
    }
  }

  /**
   * Runs a background write until it succeeds, fails for good or the agent stops; not ok when it
   * did not succeed (the journal keeps the record open: the next agent start completes it).
   */
  private async retrying<T>(
    what: string,
    fn: () => Promise<T>,
  ): Promise<{ ok: true; value: T } | { ok: false }> {
    const { first, max } = this.o.retryMs ?? { first: 500, max: 30_000 };
    let pause = first;
    for (let attempt = 1; attempt <= 1_000; attempt++) {
      try {
        return { ok: true, value: await fn() };
      } catch (err) {
        const msg = (err as Error).message;
        if (final(err)) {
          this.o.log.error(
            { what, err: msg },
            'recording a spare address for its pod failed: the address stays set aside',
          );
          return { ok: false };
        }
        this.o.log.warn(
          { what, attempt, err: msg },
          'recording a spare address for its pod failed: retrying',
        );
        if (this.closed) return { ok: false };
        await sleep(pause);
        pause = Math.min(pause * 2, max);
      }
    }
    return { ok: false };
  }

  /** Allocates spares of `kind` in the background up to the count. */
  private refill(kind: string): void {
    if (this.refilling.has(kind) || this.closed || !this.ready) return;
    this.refilling.add(kind);
    void (async () => {
      try {
        for (let i = 0; i < this.o.count * 2 && !this.closed; i++) {
          const list = this.free.get(kind) ?? [];
          this.free.set(kind, list);
          if (list.length >= this.o.count || Date.now() < this.cooldownUntil) return;
          const handle = `podnet-spare.${this.o.node}.${randomBytes(4).toString('hex')}`;
          const r = await this.ipam.allocate({
            handle,
            node: this.o.node,
            ipv4: kind.includes('4'),
            ipv6: kind.includes('6'),
            attrs: { [SPARE_ATTR]: this.o.node },
          });
          if (r.ipv4?.borrowed || r.ipv6?.borrowed) {
            // No room in this node's blocks: another node's block is not held for spares.
            await this.ipam.releaseByHandle(handle);
            this.cooldownUntil = Date.now() + 30_000;
            return;
          }
          const spare: Spare = {
            handle,
            blocks: [r.ipv4?.block, r.ipv6?.block].filter((b): b is string => b !== undefined),
          };
          if (r.ipv4) spare.ipv4 = r.ipv4.address;
          if (r.ipv6) spare.ipv6 = r.ipv6.address;
          this.keep(spare);
          this.stats.made++;
          this.report();
        }
      } catch (err) {
        this.cooldownUntil = Date.now() + 30_000;
        this.o.log.info({ kind, err: (err as Error).message }, 'no spare address made: retrying in 30 s');
      } finally {
        this.refilling.delete(kind);
      }
    })();
  }

  /** Gives every free spare back to its block. */
  private async releaseFree(why: string): Promise<void> {
    const all = [...this.free.values()].flat();
    for (const l of this.free.values()) l.length = 0;
    this.report();
    this.cooldownUntil = Date.now() + 30_000;
    this.o.log.info({ spares: all.map((s) => s.handle), why }, 'spare addresses released');
    for (const s of all) {
      await this.ipam.releaseByHandle(s.handle).catch((err: unknown) => {
        this.o.log.warn({ spare: s.handle, err: (err as Error).message }, 'releasing a spare failed');
      });
    }
  }

  /** Replays the journal, then reads the node's spares from the API. */
  private async start(): Promise<void> {
    const open = new Map<string, OpenTake>();
    const lines = this.readJournal();
    for (const line of lines) {
      if (line.op === 'take') open.set(line.spare.handle, { ...line });
      else if (line.op === 'annotate') {
        const e = open.get(line.spare);
        if (e) e.annotate = { pod: line.pod, ips: line.ips };
      } else open.delete(line.spare);
    }
    this.appended = lines.length;
    for (const e of open.values()) {
      const { annotate, ...take } = e;
      const annotated = annotate
        ? `${JSON.stringify({ op: 'annotate', spare: e.spare.handle, ...annotate })}\n`
        : '';
      this.open.set(e.spare.handle, `${JSON.stringify(take)}\n${annotated}`);
    }
    for (const e of open.values()) this.replay(e, REPLAY_CHECKS);
    const found = await this.ipam.sparesOf(this.o.node);
    for (const f of found) {
      if (this.open.has(f.handle)) continue;
      const spare: Spare = { handle: f.handle, blocks: f.addresses.map((a) => a.block) };
      for (const a of f.addresses) {
        if (a.address.includes(':')) spare.ipv6 = a.address;
        else spare.ipv4 = a.address;
      }
      this.keep(spare);
    }
    this.ready = true;
    this.compact();
    // The kinds asked for while loading, and the ones found.
    for (const kind of new Set([...this.kinds, ...this.free.keys()])) this.refill(kind);
    this.o.log.info(
      { spares: this.available(), replayed: this.stats.replayed, cancelled: this.stats.cancelled },
      'spare addresses loaded',
    );
  }

  /**
   * Decides on a spare taken before this process started and not closed: completes its record when
   * its ADD finished (the result cache entry names the handle). Without an entry it waits: the
   * agent before this one may still be running that ADD (it drains its commands while this one
   * starts). After REPLAY_CHECKS checks without one, the ADD did not finish here (the shim ran the
   * standalone plugin) or was deleted since, and the spare is free again.
   */
  private replay(e: OpenTake, checksLeft: number): void {
    if (this.closed) return;
    const entry = new ResultCache(e.by.cacheDir).get(
      e.by.network,
      e.attrs.containerID ?? '',
      e.attrs.ifname ?? '',
    );
    if (!entry || entry.handle !== e.handle) {
      if (checksLeft > 0) {
        const timer = setTimeout(() => this.replay(e, checksLeft - 1), this.o.replayCheckMs ?? 15_000);
        timer.unref();
        return;
      }
      this.append({ op: 'cancel', spare: e.spare.handle });
      this.stats.cancelled++;
      // Not yet loaded: the node's spares, read then, include it.
      if (this.ready) this.keep(e.spare);
      this.compact();
      this.o.log.info(
        { handle: e.handle, spare: e.spare.handle },
        'a spare taken before the restart was not used: free again',
      );
      return;
    }
    this.stats.replayed++;
    const ips = [e.spare.ipv4, e.spare.ipv6].filter((x): x is string => x !== undefined);
    const pod = e.annotate?.pod ?? (e.attrs.pod !== undefined ? entry.pod : undefined);
    const t: Taken = {
      spare: e.spare,
      handle: e.handle,
      attrs: e.attrs,
      annotation: () => {},
      job: Promise.resolve(),
    };
    this.taken.set(e.handle, t);
    t.job = this.complete(t, Promise.resolve(pod ? { pod, ips: e.annotate?.ips ?? ips } : undefined));
    this.o.log.info(
      { handle: e.handle, spare: e.spare.handle, ips },
      'completing the record of a spare address taken before the restart',
    );
  }

  private readJournal(): JournalLine[] {
    let text: string;
    try {
      text = readFileSync(this.o.journal, 'utf8');
    } catch {
      return [];
    }
    const out: JournalLine[] = [];
    for (const [i, line] of text.split('\n').entries()) {
      if (line.trim() === '') continue;
      try {
        out.push(JSON.parse(line) as JournalLine);
      } catch {
        // A line cut short by a crash mid-write: the take it began was never answered.
        this.o.log.warn({ journal: this.o.journal, line: i + 1 }, 'spare journal: unreadable line skipped');
      }
    }
    return out;
  }

  private append(line: JournalLine): void {
    const text = `${JSON.stringify(line)}\n`;
    const key = line.op === 'take' ? line.spare.handle : line.spare;
    if (line.op === 'take' || line.op === 'annotate')
      this.open.set(key, `${this.open.get(key) ?? ''}${text}`);
    else this.open.delete(key);
    appendFileSync(this.o.journal, text, { mode: 0o600 });
    this.appended++;
  }

  /** Empties the journal when no record is open. */
  private compact(): void {
    if (this.open.size === 0) {
      if (this.appended > 0) writeFileSync(this.o.journal, '', { mode: 0o600 });
      this.appended = 0;
    } else if (this.appended > COMPACT_AFTER) {
      // Records that stay open (a transfer refused for good) keep the file from emptying: rewrite
      // it with the open ones only.
      const tmp = `${this.o.journal}.tmp`;
      writeFileSync(tmp, [...this.open.values()].join(''), { mode: 0o600 });
      renameSync(tmp, this.o.journal);
      this.appended = 0;
    }
    this.report();
  }
}
