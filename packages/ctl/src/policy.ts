// `podnetctl policy <namespace>/<pod>`: which NetworkPolicies select the pod and what they allow,
// computed with the same translation the agent enforces (@podnet/policy), so the table is what the
// node's chains hold.
import {
  type Allow,
  type NamespaceInput,
  type PeerSet,
  type PodInput,
  type PortMatch,
  translate,
} from '@podnet/policy';
import type { CommandResult } from './commands.js';
import { CtlError } from './errors.js';
import { type Column, renderTable } from './format.js';

export interface PolicyRow {
  direction: 'ingress' | 'egress';
  policy: string;
  rule: number;
  peers: string;
  ports: string;
}

const portText = (p: PortMatch) =>
  p.port === undefined ? `${p.protocol}/*` : `${p.protocol}/${p.port}${p.endPort ? `-${p.endPort}` : ''}`;

function peersText(a: Allow, sets: Map<string, PeerSet>): string {
  if (!a.peers) return '*';
  const s = sets.get(a.peers)!;
  const all = [...s.v4, ...s.v6];
  return all.length ? all.join(',') : '(none)';
}

/** The pod's effective allow list, from the cluster's policies, pods and namespaces. */
export function policyExplain(
  target: string,
  cluster: { policies: unknown[]; pods: PodInput[]; namespaces: NamespaceInput[] },
): CommandResult {
  const [namespace, name, extra] = target.split('/');
  if (!namespace || !name || extra !== undefined)
    throw new CtlError('CTL_ERR_USAGE', `${JSON.stringify(target)}: give the pod as NAMESPACE/NAME`);
  const pod = cluster.pods.find((p) => p.namespace === namespace && p.name === name);
  if (!pod) throw new CtlError('CTL_ERR_NOT_FOUND', `pod ${namespace}/${name} not found`);
  if (!pod.node)
    throw new CtlError('CTL_ERR_NOT_FOUND', `pod ${namespace}/${name} is not scheduled to a node`);
  const t = translate({ node: pod.node, nodeAddresses: [], ...cluster });
  const pp = t.pods.find((p) => p.namespace === namespace && p.name === name);
  const sets = new Map(t.sets.map((s) => [s.id, s]));
  const rows: PolicyRow[] = [];
  for (const dir of ['ingress', 'egress'] as const)
    for (const a of pp?.[dir] ?? [])
      rows.push({
        direction: dir,
        policy: a.policy,
        rule: a.rule,
        peers: peersText(a, sets),
        ports: a.ports ? a.ports.map(portText).join(',') + (a.named ? ` (${a.named.join(',')})` : '') : '*',
      });
  const isolation = (dir: 'ingress' | 'egress') =>
    !pp?.[dir]
      ? 'not isolated: everything allowed'
      : rows.some((r) => r.direction === dir)
        ? 'isolated: only the rows below'
        : 'isolated: nothing allowed';
  const problems = t.problems;
  const cols: Column<PolicyRow>[] = [
    { header: 'DIRECTION', value: (r) => r.direction },
    { header: 'POLICY', value: (r) => r.policy },
    { header: 'RULE', value: (r) => r.rule, align: 'right' },
    { header: 'PEERS', value: (r) => r.peers },
    { header: 'PORTS', value: (r) => r.ports },
  ];
  return {
    data: {
      pod: `${namespace}/${name}`,
      node: pod.node,
      policies: pp?.policies ?? [],
      ingressIsolated: !!pp?.ingress,
      egressIsolated: !!pp?.egress,
      allow: rows,
      problems,
    },
    table: () =>
      [
        `Pod ${namespace}/${name} on node ${pod.node}`,
        `Selected by: ${pp?.policies.join(', ') || 'no NetworkPolicy'}`,
        `Ingress: ${isolation('ingress')}`,
        `Egress: ${isolation('egress')}`,
        "Always allowed: replies to allowed connections, and traffic from the pod's own node.",
        ...(rows.length ? ['', renderTable(cols, rows)] : []),
        ...(problems.length ? ['', 'Skipped inputs:', ...problems.map((p) => `  - ${p}`)] : []),
      ].join('\n'),
  };
}
