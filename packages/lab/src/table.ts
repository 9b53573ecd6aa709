// A network model's reachability table: which sender asks which receiver (pod→pod on one node and
// across nodes, node→pod, pod→external, external→pod, external→node), what the model promises the
// receiver sees, and the rendering of what it did see. Pure; the runner does the probing.
import { type Expected, expectedFor, type NetworkModel, TRAFFIC, type Traffic } from './models.js';
import { table } from './report.js';

export interface Endpoint {
  name: string;
  /** The namespace the endpoint's echo runs in and its probes start from. */
  ns: string;
  /** A pod's node (its name). */
  node?: string;
  ipv4?: string;
  ipv6?: string;
}

export interface TableRow {
  traffic: Traffic;
  from: Endpoint;
  to: Endpoint;
  /** Per family: the source address the receiver should see, or null for no connection. */
  expected: { 4?: string | null; 6?: string | null };
}

export type Seen = { tcp?: string; udp?: string; tcpError?: string; udpError?: string };

export interface MeasuredRow extends TableRow {
  /** Per family: what the receiver reported over TCP and UDP (absent: no answer, with the error). */
  seen: { 4?: Seen; 6?: Seen };
}

const addr = (e: Endpoint, f: 4 | 6) => (f === 4 ? e.ipv4 : e.ipv6);

/** Every row of the model's table for pods on nodes and one external host. */
export function planTable(
  model: NetworkModel,
  input: { pods: readonly Endpoint[]; nodes: readonly Endpoint[]; external: Endpoint },
): TableRow[] {
  const { pods, nodes, external } = input;
  const nodeOf = (p: Endpoint) => nodes.find((n) => n.name === p.node);
  const pairs: [Traffic, Endpoint, Endpoint][] = [];
  for (const p of pods) {
    for (const q of pods) if (q !== p && q.node === p.node) pairs.push(['pod→pod same node', p, q]);
  }
  for (const p of pods) {
    for (const q of pods) if (q.node !== p.node) pairs.push(['pod→pod cross node', p, q]);
  }
  for (const n of nodes) for (const p of pods) pairs.push(['node→pod', n, p]);
  for (const p of pods) pairs.push(['pod→external', p, external]);
  for (const p of pods) pairs.push(['external→pod', external, p]);
  for (const n of nodes) pairs.push(['external→node', external, n]);
  return pairs.map(([traffic, from, to]) => {
    const expected: TableRow['expected'] = {};
    for (const f of [4, 6] as const) {
      if (!addr(from, f) || !addr(to, f)) continue;
      const e: Expected = expectedFor(model, traffic);
      const node = nodeOf(from);
      expected[f] =
        e === 'none'
          ? null
          : e === 'sender'
            ? (addr(from, f) ?? null)
            : node
              ? (addr(node, f) ?? null)
              : null;
    }
    return { traffic, from, to, expected };
  });
}

/** The cells of a row that differ from what the model promises, e.g. `tcp4 saw 10.88.0.11, want 10.244.0.1`. */
export function rowProblems(r: MeasuredRow): string[] {
  const out: string[] = [];
  for (const f of [4, 6] as const) {
    const want = r.expected[f];
    if (want === undefined) continue;
    for (const proto of ['tcp', 'udp'] as const) {
      const seen = r.seen[f]?.[proto];
      const why = r.seen[f]?.[`${proto}Error`] ?? 'no answer';
      if (want === null && seen !== undefined)
        out.push(`${proto}${f} answered (saw ${seen}), want no connection`);
      if (want !== null && seen !== want)
        out.push(`${proto}${f} saw ${seen ?? `nothing (${why})`}, want ${want}`);
    }
  }
  return out;
}

const cell = (r: MeasuredRow, f: 4 | 6) => {
  if (r.expected[f] === undefined) return '-';
  const s = r.seen[f];
  const one = (v: string | undefined) => v ?? 'none';
  return s?.tcp === s?.udp ? one(s?.tcp) : `tcp ${one(s?.tcp)} / udp ${one(s?.udp)}`;
};

/**
 * The table as printed: one line per sender → receiver, the source each receiver saw over IPv4
 * and IPv6 (TCP and UDP agree, else both are shown; `none`: no connection), and `ok` when that is
 * what the model promises, else what differs.
 */
export function renderTable(model: NetworkModel, rows: readonly MeasuredRow[]): string {
  const order = (r: MeasuredRow) => TRAFFIC.indexOf(r.traffic);
  const sorted = [...rows].sort((a, b) => order(a) - order(b));
  const body = sorted.map((r) => {
    const problems = rowProblems(r);
    return [
      r.traffic,
      r.from.name,
      r.to.name,
      cell(r, 4),
      cell(r, 6),
      problems.length ? `✗ ${problems.join('; ')}` : 'ok',
    ];
  });
  const bad = sorted.filter((r) => rowProblems(r).length > 0).length;
  return `model ${model.name} (${model.description}): ${sorted.length - bad}/${sorted.length} rows as promised\n${table(
    ['traffic', 'from', 'to', 'source seen (IPv4)', 'source seen (IPv6)', 'check'],
    body,
  )}`;
}
