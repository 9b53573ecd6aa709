// The per-attachment result cache: one JSON file per (network, container, interface) under the
// cache dir. ADD writes it last (so its presence means the attachment completed), CHECK and
// idempotent ADD read it, DEL and GC remove it. Writes are atomic (temp file + rename).
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
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
    const tmp = `${file}.${process.pid}.tmp`;
    writeFileSync(tmp, JSON.stringify(entry), { mode: 0o600 });
    renameSync(tmp, file);
  }

  delete(network: string, containerId: string, ifname: string): void {
    rmSync(this.path(network, containerId, ifname), { force: true });
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
