// The per-attachment result cache: one JSON file per (network, container, interface) under the
// cache dir. ADD writes it last (so its presence means the attachment completed), CHECK and
// idempotent ADD read it, DEL and GC remove it. Writes are atomic (temp file + rename).
// Beside them, `inflight/` holds one marker per ADD that has started allocating and not finished
// (or whose rollback could not release its allocation): GC uses it to tell an ADD in flight (its
// process is alive) from one that died.
import {
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import type { PodRef } from './env.js';
import type { AttachmentPlan } from './plan.js';
import type { CniResult } from './result.js';

export interface CacheEntry {
  kind: 'podnet-attachment';
  network: string;
  containerId: string;
  ifname: string;
  handle: string;
  pod: PodRef | undefined;
  plan: AttachmentPlan;
  /** This plugin's own result (1.1.0 shape), before merging with any prevResult. */
  result: CniResult;
  createdAt: string;
  /**
   * The program that ran the ADD (the runtime: containerd, CRI-O, Multus…; see runtimeId). GC
   * touches only entries of the runtime that runs it. Absent in entries of earlier releases.
   */
  runtime?: string;
}

/** An ADD that allocated (or is allocating) and has not completed: see ResultCache.markInflight. */
export interface InflightMarker {
  kind: 'podnet-inflight';
  network: string;
  containerId: string;
  ifname: string;
  handle: string;
  runtime: string;
  /** The veth this ADD makes: GC removes it with the allocation when the ADD died. */
  hostIf: string;
  pid: number;
  /** The process's start time (field 22 of /proc/<pid>/stat), so a reused pid is not mistaken for it. */
  pidStart: string;
  startedAt: string;
}

/** Distinguishes temporary files of one process (the agent serves several commands at once). */
let tmpSeq = 0;

/** The start time of a process (clock ticks since boot), or undefined when there is no such process. */
export function processStart(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may hold spaces and parentheses: count from its closing one.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

/** Whether the ADD that wrote a marker is still running. */
export function inflightAlive(m: Pick<InflightMarker, 'pid' | 'pidStart'>): boolean {
  return processStart(m.pid) === m.pidStart;
}

/**
 * Who runs the plugin: the executable of the parent process (the runtime that execs plugins, e.g.
 * /usr/bin/containerd, or a meta-plugin such as Multus). Attachments are GC'd only by the runtime
 * that made them, so two runtimes using the same network name never release each other's.
 */
export function runtimeId(): string {
  try {
    return readlinkSync(`/proc/${process.ppid}/exe`);
  } catch {
    return `unknown (parent pid ${process.ppid})`;
  }
}

function fileName(network: string, containerId: string, ifname: string): string {
  const clean = (s: string) => s.replace(/[^A-Za-z0-9_.-]/g, '_');
  return `${clean(network)}--${clean(containerId)}--${clean(ifname)}.json`;
}

export class ResultCache {
  constructor(readonly dir: string) {}

  path(network: string, containerId: string, ifname: string): string {
    return join(this.dir, fileName(network, containerId, ifname));
  }

  get(network: string, containerId: string, ifname: string): CacheEntry | undefined {
    try {
      const e = JSON.parse(readFileSync(this.path(network, containerId, ifname), 'utf8')) as CacheEntry;
      return e.kind === 'podnet-attachment' ? e : undefined;
    } catch {
      return undefined;
    }
  }

  put(entry: CacheEntry): void {
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    const file = this.path(entry.network, entry.containerId, entry.ifname);
    const tmp = `${file}.${process.pid}.${++tmpSeq}.tmp`;
    writeFileSync(tmp, JSON.stringify(entry), { mode: 0o600 });
    renameSync(tmp, file);
  }

  delete(network: string, containerId: string, ifname: string): void {
    rmSync(this.path(network, containerId, ifname), { force: true });
  }

  private inflightPath(handle: string): string {
    return join(this.dir, 'inflight', `${handle.replace(/[^A-Za-z0-9_.-]/g, '_')}.json`);
  }

  /**
   * Records that this process (or `owner`, the process the ADD is done for) is about to allocate
   * for `handle` (removed by clearInflight).
   */
  markInflight(
    m: Omit<InflightMarker, 'kind' | 'pid' | 'pidStart' | 'startedAt'>,
    owner?: { pid: number; pidStart: string },
  ): void {
    const dir = join(this.dir, 'inflight');
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const marker: InflightMarker = {
      kind: 'podnet-inflight',
      ...m,
      pid: owner?.pid ?? process.pid,
      pidStart: owner ? owner.pidStart : (processStart(process.pid) ?? ''),
      startedAt: new Date().toISOString(),
    };
    const file = this.inflightPath(m.handle);
    const tmp = `${file}.${process.pid}.${++tmpSeq}.tmp`;
    writeFileSync(tmp, JSON.stringify(marker), { mode: 0o600 });
    renameSync(tmp, file);
  }

  clearInflight(handle: string): void {
    rmSync(this.inflightPath(handle), { force: true });
  }

  getInflight(handle: string): InflightMarker | undefined {
    try {
      const m = JSON.parse(readFileSync(this.inflightPath(handle), 'utf8')) as InflightMarker;
      return m.kind === 'podnet-inflight' ? m : undefined;
    } catch {
      return undefined;
    }
  }

  /** Every entry of one network (for GC). Unreadable files are skipped. */
  list(network: string): CacheEntry[] {
    let names: string[];
    try {
      names = readdirSync(this.dir);
    } catch {
      return [];
    }
    const out: CacheEntry[] = [];
    for (const n of names) {
      if (!n.endsWith('.json')) continue;
      try {
        const e = JSON.parse(readFileSync(join(this.dir, n), 'utf8')) as CacheEntry;
        if (e.kind === 'podnet-attachment' && e.network === network) out.push(e);
      } catch {
        // A torn or foreign file: not ours to interpret.
      }
    }
    return out;
  }
}
