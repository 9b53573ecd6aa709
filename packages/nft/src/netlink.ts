// The netlink path: a NETLINK_NETFILTER socket in the table's namespace that sends one nf_tables
// transaction (element changes, or a whole patch of chains, sets and rules) and waits for the
// kernel's answer, and reads the ruleset generation and rule digests. Spawning `nft` costs a process start per change (~20 ms); this costs a
// sendmsg and the kernel's commit.
//
// After each batch a GETGEN request follows on the same socket: the kernel handles a socket's
// messages in order, so its reply arrives after every ACK and error of the batch and closes it,
// and it carries the generation the batch produced.
import { type NetlinkSocket, openNetlink } from '@podnet/native';
import { errnoName } from '@podnet/rtnetlink';
import { NftError } from './errors.js';
import {
  type BatchPart,
  decodeReplies,
  type ElementChange,
  encodeElementBatch,
  encodeGetGen,
  encodeGetRules,
} from './nfnl.js';
import { encodePatchBatch } from './nfnl-patch.js';
import type { PatchPlan } from './patch.js';

const NETLINK_NETFILTER = 12;

export interface NetlinkOptions {
  /** A namespace path (/var/run/netns/NAME, /proc/PID/ns/net); default: this process's namespace. */
  netns?: string;
  timeoutMs?: number;
  /** A batch larger than this is not sent here (the caller uses `nft -f`). Default 1 MiB. */
  maxBatchBytes?: number;
}

interface Outcome {
  gen: number;
  acks: Set<number>;
  errors: { seq: number; errno: number; extAck?: string }[];
}

/** A rule dump in flight: each chain's rule digests, in order. */
interface Dumping {
  seq: number;
  rules: Map<string, string[]>;
  resolve: (r: Map<string, string[]> | null) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
}

interface Waiting {
  seq: number;
  first: number;
  last: number;
  acks: Set<number>;
  errors: { seq: number; errno: number; extAck?: string }[];
  resolve: (r: Outcome) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
}

const shorten = (elements: string[]) =>
  elements.length <= 4 ? elements.join(', ') : `${elements.slice(0, 4).join(', ')}, … (${elements.length})`;

function describe(table: string, p: BatchPart): string {
  return `${p.op} element inet ${table} ${p.set} { ${shorten(p.elements)} }`;
}

/**
 * The generation, or NFT_ERR_APPLY naming the first refused change (the kernel changed nothing).
 * `describe(p)`: what part `p` asked, in nft's words.
 */
function checkBatch<P extends { seq: number }>(o: Outcome, parts: P[], describe: (p: P) => string): number {
  if (o.errors.length) {
    const e = o.errors[0]!;
    const part = parts.find((p) => p.seq === e.seq);
    const what = part ? describe(part) : `message ${e.seq} of the batch`;
    const name = errnoName(e.errno);
    throw new NftError(
      'NFT_ERR_APPLY',
      `nf_tables refused the transaction (nothing was changed): ${what}: ${name}${e.extAck ? ` (${e.extAck})` : ''}`,
      `${name} (errno ${e.errno})${e.extAck ? `: ${e.extAck}` : ''}`,
    );
  }
  const missing = parts.filter((p) => !o.acks.has(p.seq));
  if (missing.length) {
    throw new NftError(
      'NFT_ERR_APPLY',
      `nf_tables did not acknowledge ${missing.length} of ${parts.length} messages (first: ${describe(missing[0]!)})`,
    );
  }
  return o.gen;
}

export class NfNetlink {
  private sock: NetlinkSocket | undefined;
  private seq = 1;
  private waiting: Waiting | undefined;
  private dumping: Dumping | undefined;
  private tail: Promise<unknown> = Promise.resolve();
  private closed = false;
  private readonly timeoutMs: number;
  readonly maxBatchBytes: number;

  constructor(private readonly opts: NetlinkOptions = {}) {
    this.timeoutMs = opts.timeoutMs ?? 10_000;
    this.maxBatchBytes = opts.maxBatchBytes ?? 1 << 20;
  }

  private socket(): NetlinkSocket {
    if (this.closed) throw new NftError('NFT_ERR_EXEC', 'the nf_tables netlink socket is closed');
    if (this.sock) return this.sock;
    let sock: NetlinkSocket;
    try {
      sock = openNetlink({ protocol: NETLINK_NETFILTER, netns: this.opts.netns, rcvbuf: 4 << 20 });
      sock.setExtAck(true);
    } catch (err) {
      throw new NftError(
        'NFT_ERR_EXEC',
        `cannot open a NETLINK_NETFILTER socket${this.opts.netns ? ` in ${this.opts.netns}` : ''}: ${(err as Error).message}`,
        '',
        { cause: err },
      );
    }
    sock.onMessage(
      (d) => this.onDatagram(d),
      (e) =>
        this.fail(new NftError('NFT_ERR_EXEC', `nf_tables netlink socket: ${e.message}`, '', { cause: e })),
    );
    sock.unref();
    this.sock = sock;
    return sock;
  }

  /** Runs one exchange at a time: replies are matched to the one exchange in flight. */
  private serial<T>(f: () => Promise<T>): Promise<T> {
    const run = this.tail.then(f, f);
    this.tail = run.catch(() => {});
    return run;
  }

  /** The namespace's nf_tables ruleset generation (bumped by every committed transaction). */
  generation(): Promise<number> {
    return this.serial(async () => (await this.exchange(Buffer.alloc(0), 0, -1)).gen);
  }

  /**
   * Applies element changes to `table` as one transaction; resolves with the generation after it,
   * or null when the batch is larger than `maxBatchBytes` (nothing was sent). Throws
   * NFT_ERR_APPLY naming the refused change and the errno; the kernel then changed nothing.
   */
  applyElements(table: string, changes: ElementChange[]): Promise<number | null> {
    return this.serial(async () => {
      const batch = encodeElementBatch(table, changes, this.takeSeq(0));
      if (batch.bytes.length > this.maxBatchBytes) return null;
      this.seq = batch.last + 1;
      const o = await this.exchange(batch.bytes, batch.first, batch.last);
      return checkBatch(o, batch.parts, (p) => describe(table, p));
    });
  }

  /**
   * Applies a patch (chains, sets, elements and rules) as one transaction; resolves with the
   * generation after it, or null when the encoder does not take the plan or the batch is larger
   * than `maxBatchBytes` (nothing was sent: the caller uses `nft -f`). Throws NFT_ERR_APPLY naming
   * the refused step; the kernel then changed nothing.
   */
  applyPatch(plan: PatchPlan): Promise<number | null> {
    return this.serial(async () => {
      const batch = encodePatchBatch(plan, this.takeSeq(0));
      if (!batch || batch.bytes.length > this.maxBatchBytes) return null;
      this.seq = batch.last + 1;
      const o = await this.exchange(batch.bytes, batch.first, batch.last);
      return checkBatch(o, batch.parts, (p) => p.what);
    });
  }

  /**
   * Digests of every rule of `table` (of its chain `chain` only, when given), per chain in order
   * (NFT_MSG_GETRULE dump; see nfnl.ts ruleDigest), or null when the table (or the chain) does not
   * exist; a chain without rules is absent from the map. Far cheaper than `nft -j list` for large
   * tables, and it compares the kernel's own encoding of each rule.
   */
  ruleDigests(table: string, chain?: string): Promise<Map<string, string[]> | null> {
    return this.serial(() => {
      const sock = this.socket();
      const seq = this.takeSeq(1);
      return new Promise<Map<string, string[]> | null>((resolve, reject) => {
        this.dumping = {
          seq,
          rules: new Map(),
          resolve,
          reject,
          timer: setTimeout(
            () =>
              this.failDump(
                new NftError('NFT_ERR_READ', `nf_tables rule dump: no end within ${this.timeoutMs} ms`),
              ),
            this.timeoutMs,
          ),
        };
        sock.ref();
        try {
          sock.send(encodeGetRules(table, seq, chain));
        } catch (err) {
          this.failDump(
            new NftError('NFT_ERR_EXEC', `nf_tables netlink send: ${(err as Error).message}`, '', {
              cause: err,
            }),
          );
        }
      });
    });
  }

  private endDump(): Dumping | undefined {
    const d = this.dumping;
    if (!d) return undefined;
    clearTimeout(d.timer);
    this.dumping = undefined;
    this.sock?.unref();
    return d;
  }

  private failDump(e: Error): void {
    this.endDump()?.reject(e);
  }

  private onDump(d: Dumping, r: ReturnType<typeof decodeReplies>[number]): void {
    if (r.type === 'malformed')
      this.failDump(new NftError('NFT_ERR_READ', `nf_tables rule dump: ${r.reason}`));
    else if (r.type === 'rule' && r.seq === d.seq) {
      const list = d.rules.get(r.chain);
      if (list) list.push(r.digest);
      else d.rules.set(r.chain, [r.digest]);
    } else if (r.type === 'done' && r.seq === d.seq) {
      if (r.errno === 0) this.endDump()?.resolve(d.rules);
      else this.failDump(new NftError('NFT_ERR_READ', `nf_tables rule dump failed: ${errnoName(r.errno)}`));
    } else if (r.type === 'error' && r.seq === d.seq) {
      if (r.errno === 2)
        this.endDump()?.resolve(null); // ENOENT: no such table
      else this.failDump(new NftError('NFT_ERR_READ', `nf_tables rule dump refused: ${errnoName(r.errno)}`));
    }
  }

  private takeSeq(n: number): number {
    if (this.seq + n + 100_000 >= 0xffff_ffff) this.seq = 1;
    const s = this.seq;
    this.seq += n;
    return s;
  }

  /** Sends `batch` (may be empty) and a GETGEN; resolves when the GETGEN reply arrives. */
  private exchange(batch: Buffer, first: number, last: number): Promise<Outcome> {
    const sock = this.socket();
    const seq = this.takeSeq(1);
    return new Promise<Outcome>((resolve, reject) => {
      const w: Waiting = {
        seq,
        first,
        last,
        acks: new Set(),
        errors: [],
        resolve,
        reject,
        timer: setTimeout(
          () =>
            this.fail(
              new NftError(
                'NFT_ERR_APPLY',
                `nf_tables: no answer from the kernel within ${this.timeoutMs} ms`,
              ),
            ),
          this.timeoutMs,
        ),
      };
      this.waiting = w;
      sock.ref();
      try {
        if (batch.length) sock.send(batch);
        sock.send(encodeGetGen(seq));
      } catch (err) {
        this.fail(
          new NftError('NFT_ERR_EXEC', `nf_tables netlink send: ${(err as Error).message}`, '', {
            cause: err,
          }),
        );
      }
    });
  }

  private onDatagram(d: Buffer): void {
    const dump = this.dumping;
    if (dump) {
      for (const r of decodeReplies(d)) this.onDump(dump, r);
      return;
    }
    const w = this.waiting;
    if (!w) return;
    for (const r of decodeReplies(d)) {
      if (r.type === 'malformed') {
        this.fail(new NftError('NFT_ERR_READ', `nf_tables netlink reply: ${r.reason}`));
        return;
      }
      if (r.type === 'ack' && r.seq >= w.first && r.seq <= w.last) w.acks.add(r.seq);
      else if (r.type === 'error' && r.seq >= w.first && r.seq <= w.last) w.errors.push(r);
      else if (r.type === 'error' && r.seq === w.seq) {
        this.fail(new NftError('NFT_ERR_READ', `nf_tables GETGEN refused: ${errnoName(r.errno)}`));
        return;
      } else if (r.type === 'gen' && r.seq === w.seq) {
        this.settle();
        w.resolve({ gen: r.id, acks: w.acks, errors: w.errors });
        return;
      }
    }
  }

  private settle(): void {
    const w = this.waiting;
    if (!w) return;
    clearTimeout(w.timer);
    this.waiting = undefined;
    this.sock?.unref();
  }

  private fail(e: Error): void {
    const w = this.waiting;
    if (!w) return;
    this.settle();
    w.reject(e);
  }

  /** Closes the socket; an exchange in flight fails. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.fail(new NftError('NFT_ERR_EXEC', 'the nf_tables netlink socket was closed'));
    this.failDump(new NftError('NFT_ERR_EXEC', 'the nf_tables netlink socket was closed'));
    this.sock?.close();
    this.sock = undefined;
  }
}
