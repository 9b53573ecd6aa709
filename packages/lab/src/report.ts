// Terminal rendering of the lab's results: the reachability matrix and the peer tables. Pure.

import type { PeerRow, Probe } from './runner.js';
import type { PodRecord } from './state.js';

/** A plain table with a header row, columns padded to their widest cell. */
export function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i] ?? 0))
      .join('  ')
      .trimEnd();
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}

export function podTable(pods: readonly PodRecord[]): string {
  return table(
    ['#', 'pod', 'node', 'IPv4', 'IPv6'],
    pods.map((p, i) => [String(i + 1), p.name, p.node, p.ipv4 ?? '-', p.ipv6 ?? '-']),
  );
}

/**
 * Rows are sources (pods, then the client), columns are target pods by number (see podTable):
 * `ok` reachable, `XX` not, `.` the pod itself.
 */
export function matrix(pods: readonly PodRecord[], probes: readonly Probe[]): string {
  const sources = [...new Set(probes.map((p) => p.from))];
  const header = ['from \\ to', ...pods.map((_, i) => String(i + 1))];
  const rows = sources.map((src) => [
    src,
    ...pods.map((t) => {
      if (t.name === src) return '.';
      const p = probes.find((x) => x.from === src && x.to === t.name);
      return p ? (p.ok ? 'ok' : 'XX') : '-';
    }),
  ]);
  return table(header, rows);
}

export function summary(probes: readonly Probe[]): { ok: number; total: number; failed: Probe[] } {
  const failed = probes.filter((p) => !p.ok);
  return { ok: probes.length - failed.length, total: probes.length, failed };
}

export function peerTable(rows: readonly PeerRow[]): string {
  return table(
    ['router', 'peer', 'state', 'since', 'info'],
    rows.map((r) => [r.router, r.peer, r.state, r.since, r.info]),
  );
}

/** An agent's /status `peers` as a table: peer, type, state, since, prefixes in/out, last error. */
export function agentPeerTable(peers: readonly unknown[]): string {
  const str = (v: unknown) => (v === undefined || v === null ? '' : String(v));
  return table(
    ['peer', 'type', 'state', 'since', 'in/out', 'info'],
    peers.map((x) => {
      const p = (typeof x === 'object' && x !== null ? x : {}) as Record<string, unknown>;
      const since = str(p.since)
        .replace(/^\d{4}-\d\d-\d\dT/, '')
        .replace(/\.\d+Z$/, '');
      const name = p.nodeName ? `${str(p.address)} (${str(p.nodeName)})` : str(p.address);
      return [
        name,
        str(p.type),
        str(p.state),
        since,
        `${str(p.prefixesReceived)}/${str(p.prefixesAdvertised)}`,
        // A session that is up again does not show the error of an earlier attempt.
        p.state === 'Established' ? '' : str(p.lastError),
      ];
    }),
  );
}
