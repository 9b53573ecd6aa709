// Policies that together use every feature the translation lowers: ranges, SCTP, UDP, named ports
// both ways, ipBlocks with except (IPv4 and IPv6), selector peers, default deny both ways.
import { policy } from './cluster.js';

const sel = (labels: Record<string, string>) => ({ matchLabels: labels });

export const EVERY_FEATURE: unknown[] = [
  policy('x', 'deny-all', { podSelector: {}, policyTypes: ['Ingress', 'Egress'] }),
  policy('x', 'web', {
    podSelector: {},
    ingress: [
      {
        from: [{ namespaceSelector: sel({ ns: 'y' }), podSelector: sel({ pod: 'b' }) }],
        ports: [{ port: 'web' }],
      },
      {
        from: [{ ipBlock: { cidr: '10.0.0.0/16', except: ['10.0.2.0/24'] } }],
        ports: [{ port: 80, endPort: 81 }],
      },
      {
        from: [{ ipBlock: { cidr: 'fd00::/64', except: ['fd00::3:0/112'] } }],
        ports: [{ protocol: 'SCTP', port: 81 }],
      },
      { ports: [{ protocol: 'UDP' }] },
    ],
    egress: [
      { to: [{ namespaceSelector: {} }], ports: [{ port: 'web' }, { protocol: 'UDP', port: 53 }] },
      { to: [{ podSelector: {} }] },
    ],
  }),
  policy('y', 'allow-all', { podSelector: sel({ pod: 'a' }), ingress: [{}] }),
];
