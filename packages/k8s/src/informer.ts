// Informers: list, then watch from the list's resourceVersion, keeping an in-memory store.
//
// - Resume: every event and BOOKMARK advances the resourceVersion; a dropped connection re-watches
//   from it, so nothing is missed and nothing is replayed.
// - 410 Gone (as an HTTP status or an ERROR event): the version is too old; relist, and emit the
//   difference between the old store and the new list as events.
// - Errors back off exponentially with full jitter, up to maxBackoffMs; a healthy watch resets it.
// - `synced` resolves after the first complete list; `hasSynced` is the flag.
// - An object that fails its schema is logged with the failing fields and skipped; the informer
//   keeps running and keeps the last valid version.
import { createInterface } from 'node:readline';
import type { Logger } from 'pino';
import type { z } from 'zod';
import type { KubeClient } from './client.js';
import { toK8sError } from './client.js';
import { K8S_ERR, type SchemaError } from './errors.js';
import { type ResourceDef, safeValidate } from './resources.js';
import { HttpStatusError } from './transport.js';

export interface Meta {
  metadata?: { name?: string; namespace?: string; resourceVersion?: string };
}

export type ParseResult<T> = { ok: true; value: T } | { ok: false; error: SchemaError | Error };

/** Where an informer lists and watches, and how it validates what it gets. */
export interface InformerSource<T> {
  kind: string;
  /** Collection path, e.g. /apis/podnet.io/v1alpha1/ipamblocks or /api/v1/pods. */
  path: string;
  list(opts: {
    labelSelector?: string;
    fieldSelector?: string;
    /**
     * `0`: any version the server holds (kube-apiserver answers from its watch cache); a version:
     * not older than it (also from the cache); absent or empty: the latest, read from etcd.
     */
    resourceVersion?: string;
  }): Promise<{ items: unknown[]; resourceVersion: string }>;
  parse(raw: unknown): ParseResult<T>;
}

export type InformerEvent<T> =
  | { type: 'added'; object: T }
  | { type: 'modified'; object: T; old: T }
  | { type: 'deleted'; object: T }
  | { type: 'synced' }
  | { type: 'relisted'; resourceVersion: string }
  /** The set of invalid objects (`invalid()`) changed: one was rejected, fixed or deleted. */
  | { type: 'invalid'; key: string };

export interface InformerOptions<T = unknown> {
  labelSelector?: string;
  fieldSelector?: string;
  logger?: Logger;
  initialBackoffMs?: number;
  maxBackoffMs?: number;
  /**
   * Asks the server to end each watch after this long (it is then resumed from the last
   * resourceVersion). Default 240 s. kube-apiserver sends a BOOKMARK 2 s before this deadline
   * (1.20 only then; later releases also about once a minute), so the resourceVersion a resumed
   * watch starts from is recent even when nothing selected changed.
   */
  watchTimeoutSeconds?: number;
  /**
   * Start by watching from this resourceVersion (e.g. one persisted earlier) instead of listing.
   * When the server no longer has it (410 Gone) the informer lists as usual. `synced` resolves
   * only after a complete list.
   */
  resumeFrom?: string;
  /**
   * Keeps only what the consumer uses of each object (a projection), so the store stays small at
   * scale. Applied after validation; the result must keep metadata.name (and namespace).
   */
  project?: (obj: T) => T;
  /**
   * Whether two versions of an object are the same to the consumer. When given, a MODIFIED event
   * whose projection is `same` as the stored one updates the store silently: no `modified` is
   * emitted (e.g. a Node's heartbeat, when only its addresses and podnet annotations are used).
   */
  same?: (a: T, b: T) => boolean;
}

export function objectKey(o: Meta): string {
  const m = o.metadata ?? {};
  return m.namespace ? `${m.namespace}/${m.name}` : String(m.name);
}

/** Full-jitter exponential backoff: uniform in [0, min(max, initial * 2^attempt)]. */
export function backoffDelay(
  attempt: number,
  initialMs: number,
  maxMs: number,
  random = Math.random,
): number {
  const cap = Math.min(maxMs, initialMs * 2 ** Math.min(attempt, 30));
  return Math.max(initialMs / 2, Math.floor(random() * cap));
}

/** An object the informer received but could not use: the raw object as the server sent it. */
export interface InvalidObject {
  key: string;
  raw: unknown;
  error: SchemaError | Error;
}

export class Informer<T extends Meta> {
  private readonly store = new Map<string, T>();
  /** Objects whose latest version failed validation, by key (for status conditions). */
  private readonly rejected = new Map<string, InvalidObject>();
  private readonly handlers = new Set<(ev: InformerEvent<T>) => void>();
  private resourceVersion = '';
  /** The version of the last complete list (or later event): where a relist need not be older than. */
  private listedVersion = '';
  private stopped = true;
  private abort: AbortController | undefined;
  private sleepTimer: NodeJS.Timeout | undefined;
  private wake: (() => void) | undefined;
  private attempt = 0;
  private loop: Promise<void> | undefined;
  private resolveSynced!: () => void;
  private readonly log: Logger | undefined;
  /** Resolves after the first complete list. */
  readonly synced: Promise<void>;
  hasSynced = false;
  /** Counters for tests and metrics. */
  readonly counts = { lists: 0, watches: 0, invalid: 0, errors: 0, bookmarks: 0, unchanged: 0 };

  constructor(
    readonly client: KubeClient,
    readonly source: InformerSource<T>,
    private readonly opts: InformerOptions<T> = {},
  ) {
    this.log = opts.logger?.child({ informer: source.kind, path: source.path });
    this.synced = new Promise((r) => {
      this.resolveSynced = r;
    });
    if (opts.resumeFrom) this.resourceVersion = opts.resumeFrom;
  }

  /** Receives every change; returns an unsubscribe function. */
  on(handler: (ev: InformerEvent<T>) => void): () => void {
    this.handlers.add(handler);
    return () => this.handlers.delete(handler);
  }

  get(key: string): T | undefined {
    return this.store.get(key);
  }

  list(): T[] {
    return [...this.store.values()];
  }

  /** Objects whose latest version is invalid (the store may still hold an older valid one). */
  invalid(): InvalidObject[] {
    return [...this.rejected.values()];
  }

  get lastResourceVersion(): string {
    return this.resourceVersion;
  }

  start(): this {
    if (!this.stopped) return this;
    this.stopped = false;
    this.loop = this.run();
    return this;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.abort?.abort();
    if (this.sleepTimer) clearTimeout(this.sleepTimer);
    this.wake?.();
    await this.loop;
  }

  private emit(ev: InformerEvent<T>) {
    for (const h of this.handlers) {
      try {
        h(ev);
      } catch (err) {
        this.log?.error({ err, event: ev.type }, 'informer handler threw');
      }
    }
  }

  private parse(raw: unknown): T | undefined {
    const r = this.source.parse(raw);
    const key = objectKey(raw as Meta);
    if (r.ok) {
      if (this.rejected.delete(key)) this.emit({ type: 'invalid', key });
      return this.opts.project ? this.opts.project(r.value) : r.value;
    }
    this.rejected.set(key, { key, raw, error: r.error });
    this.emit({ type: 'invalid', key });
    this.counts.invalid++;
    const err = r.error as SchemaError;
    this.log?.warn(
      { name: objectKey(raw as Meta), problems: err.problems ?? [], err: err.message },
      'skipping invalid object',
    );
    return undefined;
  }

  /**
   * Lists as client-go's reflector does: the first list with resourceVersion=0 (served from the
   * API server's watch cache, not etcd), a relist not older than what was seen, and, if the server
   * no longer has that version (410), the latest.
   */
  private async listFromCache(): Promise<{ items: unknown[]; resourceVersion: string }> {
    const { labelSelector, fieldSelector } = this.opts;
    const resourceVersion = this.listedVersion || '0';
    try {
      return await this.source.list({ labelSelector, fieldSelector, resourceVersion });
    } catch (err) {
      if (resourceVersion === '0' || (err as { code?: string }).code !== K8S_ERR.GONE) throw err;
      return await this.source.list({ labelSelector, fieldSelector });
    }
  }

  private async relist(): Promise<void> {
    const r = await this.listFromCache();
    this.counts.lists++;
    const seen = new Set<string>();
    for (const raw of r.items) {
      const obj = this.parse(raw);
      const key = objectKey(raw as Meta);
      if (!obj) {
        if (this.store.has(key)) seen.add(key); // keep the last valid version
        continue;
      }
      seen.add(key);
      this.upsert(obj);
    }
    const listed = new Set(r.items.map((raw) => objectKey(raw as Meta)));
    for (const key of [...this.rejected.keys()])
      if (!listed.has(key)) {
        this.rejected.delete(key);
        this.emit({ type: 'invalid', key });
      }
    for (const [key, old] of [...this.store]) {
      if (!seen.has(key)) {
        this.store.delete(key);
        this.emit({ type: 'deleted', object: old });
      }
    }
    this.resourceVersion = r.resourceVersion;
    this.listedVersion = r.resourceVersion;
    if (this.hasSynced) this.emit({ type: 'relisted', resourceVersion: r.resourceVersion });
    else {
      this.hasSynced = true;
      this.resolveSynced();
      this.emit({ type: 'synced' });
    }
    this.log?.debug({ items: this.store.size, resourceVersion: r.resourceVersion }, 'listed');
  }

  private upsert(obj: T) {
    const key = objectKey(obj);
    const old = this.store.get(key);
    this.store.set(key, obj);
    if (!old) this.emit({ type: 'added', object: obj });
    else if (old.metadata?.resourceVersion !== obj.metadata?.resourceVersion) {
      if (this.opts.same?.(old, obj)) this.counts.unchanged++;
      else this.emit({ type: 'modified', object: obj, old });
    }
  }

  private onWatchEvent(type: string, raw: unknown): 'gone' | undefined {
    const rv = (raw as Meta)?.metadata?.resourceVersion;
    switch (type) {
      case 'ADDED':
      case 'MODIFIED': {
        const obj = this.parse(raw);
        if (obj) this.upsert(obj);
        break;
      }
      case 'DELETED': {
        const key = objectKey(raw as Meta);
        if (this.rejected.delete(key)) this.emit({ type: 'invalid', key });
        const old = this.store.get(key);
        if (old) {
          this.store.delete(key);
          this.emit({ type: 'deleted', object: old });
        }
        break;
      }
      case 'BOOKMARK':
        this.counts.bookmarks++;
        break;
      case 'ERROR': {
        const status = raw as { code?: number; message?: string };
        if (status.code === 410) return 'gone';
        this.log?.warn({ status }, 'watch error event');
        return undefined;
      }
      default:
        this.log?.warn({ type }, 'unknown watch event type');
    }
    if (rv) this.resourceVersion = rv;
    return undefined;
  }

  /** One watch connection; resolves when it ends, with why. */
  private async watchOnce(): Promise<{ reason: 'closed' | 'gone' | 'error'; err?: unknown }> {
    const { labelSelector, fieldSelector } = this.opts;
    const ctrl = new AbortController();
    this.abort = ctrl;
    if (this.stopped) ctrl.abort();
    this.counts.watches++;
    try {
      const res = await this.client.open(this.source.path, {
        query: {
          watch: true,
          resourceVersion: this.resourceVersion,
          allowWatchBookmarks: true,
          labelSelector,
          fieldSelector,
          timeoutSeconds: this.opts.watchTimeoutSeconds ?? 240,
        },
        signal: ctrl.signal,
      });
      const code = res.statusCode ?? 0;
      if (code < 200 || code > 299) {
        const chunks: Buffer[] = [];
        for await (const c of res) chunks.push(c as Buffer);
        const err = new HttpStatusError(code, Buffer.concat(chunks).toString('utf8'));
        return code === 410 ? { reason: 'gone' } : { reason: 'error', err };
      }
      for await (const line of createInterface({ input: res, crlfDelay: Infinity })) {
        if (!line.trim()) continue;
        let ev: { type?: string; object?: unknown };
        try {
          ev = JSON.parse(line);
        } catch (err) {
          return { reason: 'error', err };
        }
        if (this.onWatchEvent(String(ev.type), ev.object) === 'gone') {
          ctrl.abort();
          return { reason: 'gone' };
        }
        this.attempt = 0;
      }
      return { reason: 'closed' };
    } catch (err) {
      if (this.stopped || ctrl.signal.aborted || (err as Error).name === 'AbortError')
        return { reason: 'closed' };
      return { reason: 'error', err };
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((r) => {
      this.wake = r;
      this.sleepTimer = setTimeout(r, ms);
    });
  }

  private async backoff(err: unknown) {
    this.counts.errors++;
    const delay = backoffDelay(
      this.attempt++,
      this.opts.initialBackoffMs ?? 200,
      this.opts.maxBackoffMs ?? 30_000,
    );
    const e = toK8sError(err, `watch ${this.source.kind}`);
    this.log?.warn({ err: e.message, code: e.code, retryInMs: delay }, 'informer error, backing off');
    await this.sleep(delay);
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      try {
        if (!this.resourceVersion) await this.relist();
      } catch (err) {
        if (this.stopped) break;
        await this.backoff(err);
        continue;
      }
      if (this.stopped) break;
      const started = Date.now();
      const r = await this.watchOnce();
      if (this.stopped) break;
      if (r.reason === 'gone') {
        this.log?.info(
          { resourceVersion: this.resourceVersion },
          'resourceVersion too old (410 Gone); relisting',
        );
        this.listedVersion = this.resourceVersion;
        this.resourceVersion = '';
      } else if (r.reason === 'error') {
        const code = toK8sError(r.err, 'watch').code;
        if (code === K8S_ERR.GONE) {
          this.listedVersion = this.resourceVersion;
          this.resourceVersion = '';
        }
        await this.backoff(r.err);
      } else if (Date.now() - started < 1000) {
        // A watch that closes at once without an error is still a fault: do not spin.
        await this.backoff(new Error('watch closed immediately'));
      }
    }
  }
}

/** An InformerSource's list: the collection at `path` as the server sends it (one GET, counted as a read). */
export function rawList(client: KubeClient, kind: string, path: string): InformerSource<unknown>['list'] {
  return async (opts) => {
    client.stats.reads++;
    try {
      const r = (await client.request('GET', path, { query: { ...opts } })) as {
        items?: unknown[];
        metadata?: { resourceVersion?: string };
      };
      return { items: r.items ?? [], resourceVersion: r.metadata?.resourceVersion ?? '' };
    } catch (err) {
      throw toK8sError(err, `list ${kind}`);
    }
  };
}

/** An informer source for a podnet custom resource, validated by its zod schema. */
export function resourceSource<S extends z.ZodType>(
  client: KubeClient,
  def: ResourceDef<S>,
  namespace?: string,
): InformerSource<z.infer<S> & Meta> {
  const rc = client.resource(def);
  const path = namespace
    ? `/apis/${def.group}/${def.version}/namespaces/${namespace}/${def.plural}`
    : `/apis/${def.group}/${def.version}/${def.plural}`;
  return {
    kind: def.kind,
    path,
    // Raw list: the informer validates each item itself, so invalid ones get logged with their problems.
    list: rawList(client, rc.def.kind, path),
    parse: (raw) => safeValidate(def, raw) as ParseResult<z.infer<S> & Meta>,
  };
}

const CORE_PLURALS = {
  Pod: 'pods',
  Node: 'nodes',
  Secret: 'secrets',
  Service: 'services',
  Namespace: 'namespaces',
} as const;

/** An informer source for core/v1 objects, checked only for a name. */
export function coreSource<T extends Meta>(
  client: KubeClient,
  kind: keyof typeof CORE_PLURALS,
  namespace?: string,
): InformerSource<T> {
  if (kind === 'Secret' && !namespace) throw new Error('coreSource: Secrets are read in one namespace');
  if (kind === 'Namespace' && namespace) throw new Error('coreSource: Namespaces are cluster-scoped');
  const plural = CORE_PLURALS[kind];
  const path = namespace ? `/api/v1/namespaces/${namespace}/${plural}` : `/api/v1/${plural}`;
  return {
    kind,
    path,
    list: rawList(client, kind, path),
    parse(raw) {
      const name = (raw as Meta)?.metadata?.name;
      if (typeof name !== 'string' || name === '')
        return { ok: false, error: new Error(`${kind} without metadata.name`) };
      return { ok: true, value: raw as T };
    },
  };
}
