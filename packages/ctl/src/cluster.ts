// `podnetctl cluster status`: every node's readiness and BGP sessions, read from the NodeStatus
// objects the agents write (no shell on any node). A node without one, or whose agent stopped
// rewriting it (older than 3 heartbeats), says so.
import type { NodeStatus } from '@podnet/k8s';
import type { CommandResult } from './commands.js';
import { type Column, formatAge, renderTable } from './format.js';

export type NodeState = 'Ready' | 'NotReady' | 'Stale' | 'NoStatus';

export interface ClusterNode {
  node: string;
  state: NodeState;
  reasons: string[];
  address?: string;
  asNumber?: number;
  agentVersion?: string;
  lastUpdate?: string;
  sessions: NonNullable<NodeStatus['status']>['sessions'];
  routes?: NonNullable<NodeStatus['status']>['routes'];
}

interface Row {
  node: string;
  state: string;
  peer?: string;
  type?: string;
  session?: string;
  since?: string;
  accepted?: number;
  advertised?: number;
  info?: string;
}

/** Joins the Nodes with their NodeStatus; exit code 1 when a node is not Ready. */
export function clusterStatus(nodeNames: string[], statuses: NodeStatus[], now = Date.now()): CommandResult {
  const byName = new Map(statuses.map((s) => [s.metadata.name, s]));
  const names = [...new Set([...nodeNames, ...byName.keys()])].sort();
  const nodes: ClusterNode[] = names.map((name) => {
    const st = byName.get(name)?.status;
    if (!st)
      return {
        node: name,
        state: 'NoStatus',
        reasons: ['no NodeStatus: is podnet-agent running on this node?'],
        sessions: [],
      };
    const age = now - Date.parse(st.lastUpdate);
    const stale = age > 3 * st.heartbeatSeconds * 1000;
    return {
      node: name,
      state: stale ? 'Stale' : st.ready ? 'Ready' : 'NotReady',
      reasons: stale
        ? [
            `last written ${formatAge(age)} ago (every ${st.heartbeatSeconds}s expected): the agent stopped`,
            ...st.reasons,
          ]
        : st.reasons,
      ...(st.address ? { address: st.address } : {}),
      ...(st.asNumber ? { asNumber: st.asNumber } : {}),
      agentVersion: st.agentVersion,
      lastUpdate: st.lastUpdate,
      sessions: st.sessions,
      routes: st.routes,
    };
  });
  const rows: Row[] = nodes.flatMap((n): Row[] => {
    const head = { node: n.node, state: n.state };
    if (!n.sessions.length) return [{ ...head, info: n.reasons.join('; ') || 'no BGP sessions' }];
    return n.sessions.map((s) => ({
      ...head,
      peer: s.peer,
      type: s.type,
      session: s.state,
      since: formatAge(now - Date.parse(s.since)),
      accepted: s.prefixesAccepted,
      advertised: s.prefixesAdvertised,
      info:
        (s.state !== 'Established' ? s.lastError : undefined) ??
        (s.peerNode
          ? `node ${s.peerNode}`
          : s.source !== 'node-to-node-mesh'
            ? `BGPPeer ${s.source}`
            : undefined),
    }));
  });
  const cols: Column<Row>[] = [
    { header: 'NODE', value: (r) => r.node },
    { header: 'STATE', value: (r) => r.state },
    { header: 'PEER', value: (r) => r.peer },
    { header: 'TYPE', value: (r) => r.type },
    { header: 'SESSION', value: (r) => r.session },
    { header: 'SINCE', value: (r) => r.since },
    { header: 'ACCEPTED', value: (r) => r.accepted, align: 'right' },
    { header: 'ADVERTISED', value: (r) => r.advertised, align: 'right' },
    { header: 'INFO', value: (r) => r.info },
  ];
  const bad = nodes.filter((n) => n.state !== 'Ready');
  const down = nodes.flatMap((n) => n.sessions.filter((s) => s.state !== 'Established'));
  return {
    data: { nodes },
    exitCode: bad.length ? 1 : 0,
    table: () =>
      [
        nodes.length ? renderTable(cols, rows) : 'No nodes.',
        '',
        `${nodes.length - bad.length} of ${nodes.length} nodes Ready; ${
          nodes.reduce((n, x) => n + x.sessions.length, 0) - down.length
        } of ${nodes.reduce((n, x) => n + x.sessions.length, 0)} sessions Established.`,
        ...bad.filter((n) => n.reasons.length).map((n) => `${n.node}: ${n.reasons.join('; ')}`),
      ].join('\n'),
  };
}
