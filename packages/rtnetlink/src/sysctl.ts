// Writes network sysctls idempotently (read, compare, write only what differs) in one network
// namespace: the process's own (the agent runs inside the node's namespace) or another one given by
// path, entered by a short-lived `nsenter` child so the caller's namespace is never touched.
// It lives beside the netlink client because every user of one (routes, arp) needs the other:
// the kernel's per-interface knobs have no netlink interface of their own.
import { execFile } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';

export interface SysctlEntry {
  /** Path under /proc/sys, e.g. `net/ipv4/conf/pn0123456789a/proxy_arp`. */
  key: string;
  value: string;
}

export interface SysctlWriter {
  /** Writes the entries that differ; resolves to the keys it changed. */
  apply(entries: readonly SysctlEntry[]): Promise<string[]>;
}

const KEY_RE = /^[A-Za-z0-9_.-]+(\/[A-Za-z0-9_.-]+)+$/;
const VALUE_RE = /^[A-Za-z0-9 _.-]*$/;

export function checkEntry(e: SysctlEntry): void {
  if (!KEY_RE.test(e.key) || e.key.split('/').some((p) => p === '..' || p === '.')) {
    throw new TypeError(`sysctl key: "${e.key}" is not a /proc/sys path`);
  }
  if (!VALUE_RE.test(e.value)) throw new TypeError(`sysctl ${e.key}: value "${e.value}" is not allowed`);
}

/** Writes /proc/sys of the calling process's own network namespace. */
export function procSysctl(root = '/proc/sys'): SysctlWriter {
  return {
    async apply(entries) {
      const changed: string[] = [];
      for (const e of entries) {
        checkEntry(e);
        const path = `${root}/${e.key}`;
        const cur = (await readFile(path, 'utf8')).trim();
        if (cur === e.value) continue;
        await writeFile(path, e.value);
        changed.push(e.key);
      }
      return changed;
    },
  };
}

/**
 * Writes /proc/sys inside the network namespace at `netnsPath` (/var/run/netns/NAME or
 * /proc/PID/ns/net): one `nsenter --net` child per call runs every compare-and-write.
 */
export function netnsSysctl(netnsPath: string): SysctlWriter {
  return {
    async apply(entries) {
      if (entries.length === 0) return [];
      const lines = entries.map((e) => {
        checkEntry(e);
        const p = `/proc/sys/${e.key}`;
        return `v=$(cat '${p}') || exit 3; [ "$v" = '${e.value}' ] || { echo '${e.value}' > '${p}' || exit 4; echo '${e.key}'; }`;
      });
      const script = `set -u\n${lines.join('\n')}\n`;
      return new Promise((resolve, reject) => {
        execFile(
          'nsenter',
          [`--net=${netnsPath}`, '--', 'sh', '-c', script],
          { timeout: 10_000 },
          (err, stdout, stderr) => {
            if (err) reject(new Error(`sysctl in ${netnsPath}: ${String(stderr).trim() || err.message}`));
            else resolve(String(stdout).split('\n').filter(Boolean));
          },
        );
      });
    },
  };
}
