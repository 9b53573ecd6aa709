// The sysctls the route programmer needs, by address family, and how a write that fails is told
// apart: an interface that vanished (transient, retried) from a /proc/sys the process may not write
// (read-only under containerd and CRI-O for unprivileged containers; reported, never retried in a
// loop). Pure except `applyEach`, which goes through the injected SysctlWriter.
import type { SysctlEntry, SysctlWriter } from '@podnet/rtnetlink';
import type { Family } from './ip.js';

/**
 * Global sysctls for the families in use. IPv4 forwarding is per input interface in the kernel
 * (`conf/<if>/forwarding`), but the uplink that carries traffic into the pods is not the
 * programmer's to name, so `ip_forward` stays global. IPv6 forwarding is global only
 * (`conf/all/forwarding` gates ip6_forward), and it also makes the kernel ignore router
 * advertisements on every interface: it is written only when an IPv6 pool is in use.
 */
export function globalSysctls(families: readonly Family[]): SysctlEntry[] {
  const e: SysctlEntry[] = [];
  if (families.includes(4)) e.push({ key: 'net/ipv4/ip_forward', value: '1' });
  if (families.includes(6)) e.push({ key: 'net/ipv6/conf/all/forwarding', value: '1' });
  return e;
}

/** Per pod interface: forwarding for each family in use, and no router advertisements (IPv6). */
export function podInterfaceSysctls(ifname: string, families: readonly Family[]): SysctlEntry[] {
  const e: SysctlEntry[] = [];
  if (families.includes(4)) e.push({ key: `net/ipv4/conf/${ifname}/forwarding`, value: '1' });
  if (families.includes(6)) {
    e.push({ key: `net/ipv6/conf/${ifname}/forwarding`, value: '1' });
    e.push({ key: `net/ipv6/conf/${ifname}/accept_ra`, value: '0' });
  }
  return e;
}

/**
 * Whether packets stop being forwarded while this entry is wrong: the global switches, and IPv4's
 * per-interface one (it gates what arrives on the pod's interface). IPv6's per-interface
 * `forwarding` and `accept_ra` only change host/router behaviour (with all.forwarding on, router
 * advertisements are ignored anyway).
 */
export function forwardingGate(key: string): boolean {
  return (
    key === 'net/ipv4/ip_forward' ||
    key === 'net/ipv6/conf/all/forwarding' ||
    /^net\/ipv4\/conf\/[^/]+\/forwarding$/.test(key)
  );
}

/** `net/ipv4/ip_forward` → `net.ipv4.ip_forward` (what sysctl(8) and operators call it). */
export const sysctlName = (key: string) => key.replaceAll('/', '.');

/** Errors that mean "this process may not write /proc/sys": retrying changes nothing. */
export const UNWRITABLE_CODES: ReadonlySet<string> = new Set(['EROFS', 'EACCES', 'EPERM']);

/**
 * The errno name of a failed write: the error's own `code` (fs writes), or read from the message
 * (the `nsenter` writer reports the shell's message).
 */
export function sysctlErrorCode(err: unknown): string {
  const c = (err as { code?: unknown } | undefined)?.code;
  if (typeof c === 'string' && /^E[A-Z0-9]+$/.test(c)) return c;
  const m = err instanceof Error ? err.message : String(err);
  if (/read-only file system/i.test(m)) return 'EROFS';
  if (/permission denied/i.test(m)) return 'EACCES';
  if (/operation not permitted/i.test(m)) return 'EPERM';
  if (/no such file|nonexistent directory|can't open|cannot open/i.test(m)) return 'ENOENT';
  return 'EIO';
}

export type SysctlResult =
  | { entry: SysctlEntry; ok: true; changed: boolean }
  | { entry: SysctlEntry; ok: false; code: string; message: string };

/**
 * Writes `entries` and says what happened to each. One call to the writer when every write
 * succeeds (the common case); after a failure each entry is tried alone to find which ones fail.
 */
export async function applyEach(
  writer: SysctlWriter,
  entries: readonly SysctlEntry[],
): Promise<SysctlResult[]> {
  if (entries.length === 0) return [];
  try {
    const changed = new Set(await writer.apply(entries));
    return entries.map((entry) => ({ entry, ok: true, changed: changed.has(entry.key) }));
  } catch (err) {
    if (entries.length === 1) return [failed(entries[0]!, err)];
  }
  const out: SysctlResult[] = [];
  for (const entry of entries) {
    try {
      const changed = await writer.apply([entry]);
      out.push({ entry, ok: true, changed: changed.includes(entry.key) });
    } catch (err) {
      out.push(failed(entry, err));
    }
  }
  return out;
}

function failed(entry: SysctlEntry, err: unknown): SysctlResult {
  return {
    entry,
    ok: false,
    code: sysctlErrorCode(err),
    message: err instanceof Error ? err.message : String(err),
  };
}
