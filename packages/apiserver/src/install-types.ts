// The built-in kinds `kubectl apply -k deploy/` creates besides Namespaces, ConfigMaps and CRDs:
// ServiceAccounts (with their token subresource, tokens.ts), RBAC and the DaemonSet. They are
// stored and served with kube-apiserver's metadata rules; nothing acts on them here (no RBAC
// enforcement, no controller runs the DaemonSet).
import type { ResourceType } from './resources.js';

type Def = Pick<ResourceType, 'group' | 'plural' | 'singular' | 'kind' | 'namespaced' | 'hasStatus'> &
  Partial<ResourceType>;

export const INSTALL_TYPES: [Def, string][] = [
  [
    {
      group: '',
      plural: 'serviceaccounts',
      singular: 'serviceaccount',
      kind: 'ServiceAccount',
      namespaced: true,
      hasStatus: false,
      shortNames: ['sa'],
    },
    'v1',
  ],
  ...(['ClusterRole', 'ClusterRoleBinding', 'Role', 'RoleBinding'] as const).map((kind): [Def, string] => [
    {
      group: 'rbac.authorization.k8s.io',
      plural: `${kind.toLowerCase()}s`,
      singular: kind.toLowerCase(),
      kind,
      namespaced: !kind.startsWith('Cluster'),
      hasStatus: false,
    },
    'v1',
  ]),
  [
    {
      group: 'apps',
      plural: 'daemonsets',
      singular: 'daemonset',
      kind: 'DaemonSet',
      namespaced: true,
      hasStatus: true,
      shortNames: ['ds'],
      categories: ['all'],
    },
    'v1',
  ],
];
