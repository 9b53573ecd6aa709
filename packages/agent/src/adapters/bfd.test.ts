// BfdLink: what the agent does with BFD state changes, with a fake BFD and a recording speaker.
import { EventEmitter } from 'node:events';
import type { BfdInstance, BfdPeerConfig, StateChange } from '@podnet/bfd';
import type { Speaker } from '@podnet/bgp';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import type { DesiredPeer } from '../model.js';
import { BfdLink } from './bfd.js';

class FakeBfd extends EventEmitter implements BfdInstance {
  readonly peers = new Map<string, BfdPeerConfig>();
  readonly heldOver: { peer: string; ms: number }[][] = [];
  holdOver(peers: { peer: string; ms: number }[]) {
    this.heldOver.push(peers);
    return Promise.resolve(peers.map((p) => p.peer));
  }
  start() {}
  stop() {}
  addPeer(c: BfdPeerConfig) {
    this.peers.set(c.peer, c);
  }
  updatePeer() {}
  removePeer(peer: string) {
    this.peers.delete(peer);
  }
  has(peer: string) {
    return this.peers.has(peer);
  }
  stateOf() {
    return 'down' as const;
  }
}

function setup(restarting = false) {
  const calls: string[] = [];
  const speaker = {
    peerUnreachable: (
      a: string,
      o: { port?: number; reason: string; graceful?: boolean; forwardingFailed?: boolean },
    ) => {
      calls.push(
        `down ${a}:${o.port} ${o.reason} graceful=${o.graceful}${o.forwardingFailed ? ' forwarding-failed' : ''}`,
      );
      return o.graceful === true;
    },
    peerReachable: (a: string, port?: number) => {
      calls.push(`up ${a}:${port}`);
    },
  } as unknown as Speaker;
  const bfd = new FakeBfd();
  const registry = new Registry();
  const link = new BfdLink(() => speaker, { logger: pino({ level: 'silent' }), registry, bfd, restarting });
  return { calls, bfd, link, registry };
}

const peer = (over: Partial<DesiredPeer> = {}): DesiredPeer =>
  ({
    key: '10.0.0.254:179',
    address: '10.0.0.254',
    port: 179,
    localAddress: '10.0.0.1',
    bfd: { minTx: 300, minRx: 300, multiplier: 3, controlPlaneCheck: false },
    ...over,
  }) as DesiredPeer;

const change = (from: string, to: string, remoteCpi = false): StateChange =>
  ({
    peer: '10.0.0.254',
    from,
    to,
    diag: 'control-detection-time-expired',
    reason: 'x',
    remoteCpi,
  }) as StateChange;

describe('BfdLink (the agent between BFD and BGP)', () => {
  it('takes every BGP session to the address down on an Up→Down, counts it, and releases them on Up', async () => {
    const { calls, bfd, link, registry } = setup();
    link.sync(peer());
    link.sync(peer({ key: '10.0.0.254:1179', port: 1179 }));
    expect(bfd.peers.get('10.0.0.254')).toMatchObject({ local: '10.0.0.1', timers: { minTx: 300 } });
    bfd.emit('state', change('init', 'down'));
    expect(calls).toEqual([]);
    bfd.emit('state', change('up', 'down'));
    expect(calls).toEqual([
      'down 10.0.0.254:179 bfd-control-detection-time-expired graceful=false',
      'down 10.0.0.254:1179 bfd-control-detection-time-expired graceful=false',
    ]);
    expect(await registry.getSingleMetricAsString('podnet_bfd_session_down_total')).toMatch(
      /podnet_bfd_session_down_total\{peer="10.0.0.254",diag="control-detection-time-expired"\} 1/,
    );
    bfd.emit('state', change('init', 'up'));
    expect(calls.slice(2)).toEqual(['up 10.0.0.254:179', 'up 10.0.0.254:1179']);
  });

  it('keeps routes stale only with controlPlaneCheck and the peer’s C bit clear (RFC 5882 §4.3)', () => {
    const { calls, bfd, link } = setup();
    link.sync(peer({ bfd: { minTx: 300, minRx: 300, multiplier: 3, controlPlaneCheck: true } }));
    bfd.emit('state', change('up', 'down', false));
    bfd.emit('state', change('up', 'down', true));
    expect(calls).toEqual([
      'down 10.0.0.254:179 bfd-control-detection-time-expired graceful=true',
      'down 10.0.0.254:179 bfd-control-detection-time-expired graceful=false forwarding-failed',
    ]);
  });

  it('asks each peer with graceful restart to hold its session for the restart time before a graceful stop', async () => {
    const { bfd, link } = setup();
    link.sync(peer({ gracefulRestart: { enabled: true, restartTime: 120 } }));
    link.sync(
      peer({ key: '10.0.0.254:1179', port: 1179, gracefulRestart: { enabled: true, restartTime: 30 } }),
    );
    link.sync(
      peer({
        key: '10.0.0.9:179',
        address: '10.0.0.9',
        gracefulRestart: { enabled: false, restartTime: 120 },
      }),
    );
    await link.holdOver();
    // One session per address, held for the longest restart time of its BGP sessions; a peer
    // without graceful restart drops our routes anyway, so its session is not held.
    expect(bfd.heldOver).toEqual([[{ peer: '10.0.0.254', ms: 120_000 }]]);
  });

  it('after a graceful restart, the first session to each address listens first to resume the held one', () => {
    const { bfd, link } = setup(true);
    link.sync(peer());
    expect(bfd.peers.get('10.0.0.254')?.resume).toBe(true);
    link.remove(peer());
    link.sync(peer());
    expect(bfd.peers.get('10.0.0.254')?.resume).toBe(false);
    const fresh = setup(false);
    fresh.link.sync(peer());
    expect(fresh.bfd.peers.get('10.0.0.254')?.resume).toBe(false);
  });

  it('shares one session per address at the fastest timers, and stops it (releasing BGP) when BFD is turned off', () => {
    const { calls, bfd, link } = setup();
    link.sync(peer());
    link.sync(
      peer({
        key: 'b',
        port: 1179,
        bfd: { minTx: 100, minRx: 500, multiplier: 5, controlPlaneCheck: false },
      }),
    );
    expect(bfd.peers.get('10.0.0.254')?.timers).toEqual({ minTx: 100, minRx: 300, multiplier: 3 });
    link.sync(peer({ bfd: undefined }));
    link.remove(peer({ key: 'b', port: 1179 }));
    expect(bfd.has('10.0.0.254')).toBe(false);
    expect(calls).toEqual(['up 10.0.0.254:179']);
  });
});
