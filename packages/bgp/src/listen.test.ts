// The speaker's listening socket: the accept backlog it asks the kernel for (ss shows it as the
// Send-Q of a LISTEN socket, capped by net.core.somaxconn).
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { LISTEN_BACKLOG, Speaker } from './speaker.js';

const started: Speaker[] = [];
afterEach(async () => {
  for (const s of started.splice(0)) await s.stop();
});

function backlogOf(port: number): number {
  const out = execFileSync('ss', ['-ltnH', `sport = :${port}`])
    .toString()
    .trim();
  const sendQ = Number(out.split(/\s+/)[2]);
  if (!Number.isInteger(sendQ))
    throw new Error(`ss: no LISTEN socket on port ${port}: ${JSON.stringify(out)}`);
  return sendQ;
}

describe('speaker listen backlog', () => {
  it('asks for LISTEN_BACKLOG by default and the configured backlog when given', async () => {
    const somaxconn = Number(readFileSync('/proc/sys/net/core/somaxconn', 'utf8'));
    const a = new Speaker({ asn: 65000, routerId: '10.9.0.1', listen: { port: 0, address: '127.0.0.1' } });
    const b = new Speaker({
      asn: 65000,
      routerId: '10.9.0.2',
      listen: { port: 0, address: '127.0.0.1', backlog: 100 },
    });
    for (const s of [a, b]) {
      started.push(s);
      await s.start();
    }
    expect(backlogOf(a.listenPort!)).toBe(Math.min(LISTEN_BACKLOG, somaxconn));
    expect(backlogOf(b.listenPort!)).toBe(100);
  });
});
