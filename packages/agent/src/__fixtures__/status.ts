// A healthy agent's /status document for the status writers' tests, with the fields a test sets.
import type { AgentStatus } from '../status.js';

export function agentStatus(over: Partial<AgentStatus> = {}): AgentStatus {
  return {
    version: 1,
    node: { name: 'x', address: '10.88.0.11', asNumber: 64512, listenPort: 179 },
    ready: true,
    readiness: { synced: true, routesApplied: true, sessionsUp: true, reasons: [] },
    datastore: { synced: true, reachable: true },
    routeProtocol: { number: 80, name: 'podnet' },
    peers: [],
    routes: [],
    advertisements: [],
    arp: { mode: 'userspace', interfaces: [], replies: 0 },
    problems: [],
    conditions: [],
    startedAt: '2026-01-01T00:00:00.000Z',
    ...over,
  };
}
