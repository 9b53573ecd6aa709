// The object store: one table per resource type, a global revision counter (like etcd's), a bounded
// history of events for watch resumption, the live watchers, and optional persistence to a file.
import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';

export interface ObjectMeta {
  name?: string;
  generateName?: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  generation?: number;
  creationTimestamp?: string;
  deletionTimestamp?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  [k: string]: unknown;
}

export interface KObject {
  apiVersion?: string;
  kind?: string;
  metadata: ObjectMeta;
  [k: string]: unknown;
}

export type EventType = 'ADDED' | 'MODIFIED' | 'DELETED';

export interface StoreEvent {
  rev: number;
  type: EventType;
  typeKey: string;
  obj: KObject;
  /** The object before this change (MODIFIED and DELETED). */
  prev?: KObject;
}

export interface Watcher {
  typeKey: string;
  deliver(ev: StoreEvent): void;
}

export const objectKey = (namespace: string | undefined, name: string) => `${namespace ?? ''}/${name}`;

interface Snapshot {
  format: 'podnet-apiserver/v1';
  revision: number;
  objects: { typeKey: string; obj: KObject }[];
  extra?: Record<string, unknown>;
}

/** The wait after a snapshot write is at least this many times what the write took. */
export const PERSIST_COST_FACTOR = 20;
/** ...but never longer than this. */
export const PERSIST_MAX_DELAY_MS = 5000;

export interface StoreOptions {
  historySize?: number;
  dataFile?: string;
  /**
   * Least debounce for writes to dataFile (default 100 ms). Each write is the whole state, so the
   * wait after one grows with what it cost: at least PERSIST_COST_FACTOR times as long (up to
   * PERSIST_MAX_DELAY_MS), which keeps persistence to a small share of the CPU as the state grows.
   */
  persistDelayMs?: number;
  onPersistError?: (err: unknown) => void;
  /** Milliseconds on a monotonic clock (default performance.now), to time snapshot writes. */
  now?: () => number;
}

export class Store {
  revision = 0;
  /** Events with rev <= compacted are no longer in the history. */
  compacted = 0;
  private readonly tables = new Map<string, Map<string, KObject>>();
  private readonly history: StoreEvent[] = [];
  private historyStart = 0;
  private readonly watchers = new Map<string, Set<Watcher>>();
  private readonly historySize: number;
  private persistTimer: NodeJS.Timeout | undefined;
  /** What the last snapshot write took. */
  private lastFlushMs = 0;
  private dirty = false;
  /** The timer's snapshot write in progress. */
  private writing: Promise<void> | undefined;
  /** Snapshots begun, and the newest one renamed into place (an older one never replaces it). */
  private generation = 0;
  private committed = 0;
  /** Each stored object's JSON as the last snapshot wrote it, with the resourceVersion it had. */
  private readonly texts = new WeakMap<KObject, { rv: string | undefined; text: string }>();
  /** Extra state persisted alongside the objects (the token and TLS material). */
  extra: Record<string, unknown> = {};

  constructor(private readonly opts: StoreOptions = {}) {
    this.historySize = opts.historySize ?? 10_000;
  }

  /** Loads the snapshot in dataFile, if there is one. Returns whether it did. */
  load(): boolean {
    const file = this.opts.dataFile;
    if (!file) return false;
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
      throw err;
    }
    let snap: Snapshot;
    try {
      snap = JSON.parse(text) as Snapshot;
    } catch (err) {
      throw new Error(`${file}: not valid JSON (${(err as Error).message}); move it away to start empty`, {
        cause: err,
      });
    }
    if (
      snap?.format !== 'podnet-apiserver/v1' ||
      typeof snap.revision !== 'number' ||
      !Array.isArray(snap.objects)
    )
      throw new Error(`${file}: not a podnet-apiserver data file (format ${JSON.stringify(snap.format)})`);
    for (const { typeKey, obj } of snap.objects)
      this.table(typeKey).set(objectKey(obj.metadata.namespace, obj.metadata.name!), obj);
    this.revision = snap.revision;
    this.compacted = snap.revision;
    this.extra = snap.extra ?? {};
    return true;
  }

  table(typeKey: string): Map<string, KObject> {
    let t = this.tables.get(typeKey);
    if (!t) {
      t = new Map();
      this.tables.set(typeKey, t);
    }
    return t;
  }

  get(typeKey: string, namespace: string | undefined, name: string): KObject | undefined {
    return this.tables.get(typeKey)?.get(objectKey(namespace, name));
  }

  /** Objects of a type in key order (namespace, then name), optionally in one namespace. */
  list(typeKey: string, namespace?: string): KObject[] {
    const t = this.tables.get(typeKey);
    if (!t) return [];
    const prefix = namespace === undefined ? undefined : `${namespace}/`;
    const keys = [...t.keys()].filter((k) => prefix === undefined || k.startsWith(prefix)).sort();
    return keys.map((k) => t.get(k)!);
  }

  /** Writes an object (ADDED/MODIFIED) or removes it (DELETED); assigns the next revision. */
  commit(type: EventType, typeKey: string, obj: KObject, prev?: KObject): KObject {
    const rev = ++this.revision;
    const stored: KObject = { ...obj, metadata: { ...obj.metadata, resourceVersion: String(rev) } };
    const key = objectKey(stored.metadata.namespace, stored.metadata.name!);
    if (type === 'DELETED') this.table(typeKey).delete(key);
    else this.table(typeKey).set(key, stored);
    const ev: StoreEvent = { rev, type, typeKey, obj: stored };
    if (prev) ev.prev = prev;
    this.history.push(ev);
    if (this.history.length - this.historyStart > this.historySize) {
      this.compacted = this.history[this.historyStart]!.rev;
      this.historyStart++;
      if (this.historyStart > 4096) {
        this.history.splice(0, this.historyStart);
        this.historyStart = 0;
      }
    }
    const ws = this.watchers.get(typeKey);
    if (ws) for (const w of ws) w.deliver(ev);
    this.schedulePersist();
    return stored;
  }

  /** Events after `rev` for a type. Undefined when they are no longer all in the history. */
  eventsSince(typeKey: string, rev: number): StoreEvent[] | undefined {
    if (rev < this.compacted) return undefined;
    const out: StoreEvent[] = [];
    for (let i = this.historyStart; i < this.history.length; i++) {
      const ev = this.history[i]!;
      if (ev.rev > rev && ev.typeKey === typeKey) out.push(ev);
    }
    return out;
  }

  addWatcher(w: Watcher): () => void {
    let set = this.watchers.get(w.typeKey);
    if (!set) {
      set = new Set();
      this.watchers.set(w.typeKey, set);
    }
    set.add(w);
    return () => set.delete(w);
  }

  dropTable(typeKey: string): void {
    this.tables.delete(typeKey);
  }

  schedulePersist(): void {
    if (!this.opts.dataFile) return;
    this.dirty = true;
    // A write in progress schedules the next one when it ends.
    if (this.persistTimer || this.writing) return;
    this.persistTimer = setTimeout(() => {
      this.persistTimer = undefined;
      this.writing = this.writeInBackground().finally(() => {
        this.writing = undefined;
        if (this.dirty) this.schedulePersist();
      });
    }, this.persistDelay());
  }

  /** The debounce before the next snapshot write: the least one, or longer after a costly write. */
  persistDelay(): number {
    const least = this.opts.persistDelayMs ?? 100;
    return Math.max(least, Math.min(PERSIST_MAX_DELAY_MS, Math.ceil(this.lastFlushMs * PERSIST_COST_FACTOR)));
  }

  /** Writes the snapshot now, synchronously (atomically: a temp file renamed over the data file). */
  flush(): void {
    const file = this.opts.dataFile;
    if (!file) return;
    if (this.persistTimer) {
      clearTimeout(this.persistTimer);
      this.persistTimer = undefined;
    }
    if (!this.dirty) return;
    const now = this.opts.now ?? (() => performance.now());
    const started = now();
    const gen = ++this.generation;
    const text = this.snapshotText();
    const tmp = this.tmpFile(file, gen);
    writeFileSync(tmp, text, { mode: 0o600 });
    this.commitFile(tmp, file, gen);
    this.lastFlushMs = now() - started;
  }

  /** Ends any write in progress, then writes what is not written yet (for shutdown). */
  async drain(): Promise<void> {
    await this.writing;
    this.flush();
  }

  /**
   * The timer's write: the text is built on the event loop (unchanged objects reuse their text),
   * the file is written off it, so requests are not held up by the disk. Timed from start to
   * rename, so a loaded machine also lengthens the wait before the next one.
   */
  private async writeInBackground(): Promise<void> {
    const file = this.opts.dataFile;
    if (!file || !this.dirty) return;
    const now = this.opts.now ?? (() => performance.now());
    const started = now();
    const gen = ++this.generation;
    let tmp: string | undefined;
    try {
      tmp = this.tmpFile(file, gen);
      await writeFile(tmp, this.snapshotText(), { mode: 0o600 });
      this.commitFile(tmp, file, gen);
      this.lastFlushMs = now() - started;
    } catch (err) {
      // Tried again after the longest wait, not at once: a full disk is not helped by a tight loop.
      this.dirty = true;
      this.lastFlushMs = PERSIST_MAX_DELAY_MS / PERSIST_COST_FACTOR;
      if (tmp) rmSync(tmp, { force: true });
      this.opts.onPersistError?.(err);
    }
  }

  private tmpFile(file: string, gen: number): string {
    mkdirSync(dirname(file), { recursive: true });
    return `${file}.tmp-${process.pid}-${gen}`;
  }

  /**
   * Renames `tmp` over the data file unless a newer snapshot is already there (a synchronous flush
   * while this one was being written); synchronous, so no other write can come in between.
   */
  private commitFile(tmp: string, file: string, gen: number): void {
    if (gen < this.committed) {
      rmSync(tmp, { force: true });
      return;
    }
    renameSync(tmp, file);
    this.committed = gen;
  }

  /** The whole state as a Snapshot's JSON; marks the store clean. */
  private snapshotText(): string {
    // Written piece by piece: an object unchanged since the last write reuses its text (a commit
    // stores a new object with a new resourceVersion, so the pair names one text).
    const parts: string[] = [];
    for (const [typeKey, t] of this.tables) {
      const head = `{"typeKey":${JSON.stringify(typeKey)},"obj":`;
      for (const obj of t.values()) {
        const rv = obj.metadata.resourceVersion;
        let c = this.texts.get(obj);
        if (!c || c.rv !== rv) {
          c = { rv, text: JSON.stringify(obj) };
          this.texts.set(obj, c);
        }
        parts.push(`${head}${c.text}}`);
      }
    }
    this.dirty = false;
    const format: Snapshot['format'] = 'podnet-apiserver/v1';
    return `{"format":"${format}","revision":${this.revision},"objects":[${parts.join(',')}],"extra":${JSON.stringify(this.extra)}}`;
  }

  markDirty(): void {
    this.dirty = true;
    this.schedulePersist();
  }
}
