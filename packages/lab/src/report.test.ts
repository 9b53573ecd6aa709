import { describe, expect, it } from 'vitest';
import { agentPeerTable } from './report.js';

describe('agentPeerTable', () => {
  const peer = (state: string) => ({
    address: '10.88.0.11',
    nodeName: 'node-a',
    type: 'mesh',
    state,
    since: '2026-12-02T12:34:26.000Z',
    prefixesReceived: 2,
    prefixesAdvertised: 2,
    lastError: 'connect ECONNREFUSED 10.88.0.11:179',
  });

  it('shows the last error of a session that is down', () => {
    expect(agentPeerTable([peer('Active')])).toContain('connect ECONNREFUSED 10.88.0.11:179');
  });

  it('does not show an earlier error once the session is Established', () => {
    const t = agentPeerTable([peer('Established')]);
    expect(t).toContain('10.88.0.11 (node-a)');
    expect(t).toContain('Established');
    expect(t).not.toContain('ECONNREFUSED');
  });
});
