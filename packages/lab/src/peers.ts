// The ToRs' peer tables, parsed into rows: BIRD's `show protocols` and FRR's `show bgp summary json`.
// Pure; the namespace lab (runner.ts) and the Docker lab (docker.ts) read their ToRs through these.
import type { PeerRow } from './runner.js';

/** BGP rows of BIRD's `show protocols` (name proto table state since info…). */
export function birdRows(router: string, text: string): PeerRow[] {
  const rows: PeerRow[] = [];
  for (const line of text.split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f[1] !== 'BGP' || !f[0]) continue;
    rows.push({ router, peer: f[0], state: f[3] ?? '?', since: f[4] ?? '', info: f.slice(5).join(' ') });
  }
  return rows;
}

/** Rows of FRR's `show bgp summary json` (one per peer and address family). */
export function frrRows(router: string, text: string): PeerRow[] {
  const json = JSON.parse(text) as Record<
    string,
    { peers?: Record<string, { state?: string; peerUptime?: string; pfxRcd?: number }> }
  >;
  const rows: PeerRow[] = [];
  for (const [afi, sum] of Object.entries(json)) {
    for (const [peer, p] of Object.entries(sum.peers ?? {})) {
      rows.push({
        router,
        peer: `${peer} (${afi})`,
        state: p.state ?? '?',
        since: p.peerUptime ?? '',
        info: `${p.pfxRcd ?? 0} prefixes in`,
      });
    }
  }
  return rows;
}
