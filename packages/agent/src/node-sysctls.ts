// `podnet-agent node-sysctls FILE`: what the DaemonSet's privileged `node-sysctls` init container
// runs. Writes the node's one-time sysctls (net.ipv4.ip_forward = 1 by default) from a file in
// sysctl.d syntax, comparing first and writing only what differs, then exits. The long-running
// agent stays unprivileged: under containerd and CRI-O its /proc/sys is read-only.
import type { SysctlEntry } from '@podnet/routes';
import { ConfigError } from './errors.js';

/**
 * Parses sysctl.d text: `key = value` lines, `#` or `;` comments. A key with a '/' is a /proc/sys
 * path as it is; otherwise its dots are the separators (as sysctl(8) reads it).
 */
export function parseSysctlConf(text: string, source: string): SysctlEntry[] {
  const out: SysctlEntry[] = [];
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) return;
    const m = /^-?([^=\s]+)\s*=\s*(.*)$/.exec(line);
    if (!m)
      throw new ConfigError(`line ${i + 1}`, source, `expected "key = value", got ${JSON.stringify(line)}`);
    const key = m[1]!.includes('/') ? m[1]!.replace(/^\/+/, '') : m[1]!.replaceAll('.', '/');
    out.push({ key, value: m[2]!.trim() });
  });
  return out;
}
