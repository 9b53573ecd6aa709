// The NodeStatus of this node (podnet.io, cluster-scoped, named after the node), written only by
// this node's agent: built from the agent's /status by a pure function, written when it changed at
// most every --node-status-interval and at least every --node-status-heartbeat, through the agent's
// shared token bucket. The same reporter records the node-level Events: a BGP session that went
// down or came back (on its BGPPeer, or on the Node for mesh and route-reflector sessions), and a
// route the kernel refused (on the Node).
import { readFileSync } from 'node:fs';
import { isK8sError, K8S_ERR, type KubeClient, NODESTATUS, type NodeStatusStatus } from '@podnet/k8s';
import type { Logger } from 'pino';
import type { EventRecorder, TokenBucket } from './events.js';
import type { AgentStatus } from './status.js';
import { rfc3339Seconds } from './status-writer.js';

export const AGENT_VERSION: string = (() => {
  try {
    return (
      JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }
    ).version;
  } catch {
    return 'unknown';
  }
})();

type Counts = NodeStatusStatus['routes']['ipv4'];
const FAILED = new Set(['failed', 'conflict', 'unresolved']);

/** NodeStatus.status from the agent's /status (all but lastUpdate). Pure. */
export function buildNodeStatus(
  s: AgentStatus,
  version: string,
  heartbeatSeconds: number,
): Omit<NodeStatusStatus, 'lastUpdate'> {
  const routes = { ipv4: zero(), ipv6: zero() };
  for (const r of s.routes) {
    const c = r.dst.includes(':') ? routes.ipv6 : routes.ipv4;
    c.desired++;
    if (r.state === 'installed') c.installed++;
    else if (FAILED.has(r.state)) c.failed++;
    else c.pending++;
  }
  const sessions = s.peers.map((p) => ({
    peer: p.port === 179 ? p.address : `${p.address}:${p.port}`,
    type: p.type,
    source: p.source,
    ...(p.nodeName ? { peerNode: p.nodeName } : {}),
    remoteAs: p.remoteAs,
    state: p.state,
    since: rfc3339Seconds(Date.parse(p.since)),
    prefixesAccepted: p.prefixesReceived,
    prefixesAdvertised: p.prefixesAdvertised,
    ...(p.lastError && p.state !== 'Established' ? { lastError: p.lastError } : {}),
  }));
  return {
    agentVersion: version,
    ...(s.node.address ? { address: s.node.address } : {}),
    ...(s.node.asNumber ? { asNumber: s.node.asNumber } : {}),
    ready: s.ready,
    reasons: s.readiness.reasons,
    sessions,
    establishedSessions: sessions.filter((x) => x.state === 'Established').length,
    totalSessions: sessions.length,
    routes,
    ipam: s.ipam ?? { blocks: [], addressesInUse: 0 },
    ...(s.lastResync ? { lastResync: s.lastResync } : {}),
    heartbeatSeconds,
  };
}

function zero(): Counts {
  return { desired: 0, installed: 0, failed: 0, pending: 0 };
}

/** A node-level Event the reporter owes, derived from two successive /status reads. Pure. */
export interface NodeEvent {
  object: { apiVersion: string; kind: string; name: string };
  type: 'Normal' | 'Warning';
  reason: 'SessionDown' | 'SessionEstablished' | 'RouteRejected';
  message: string;
}

/**
 * Events between two reads: a session that left Established (SessionDown) or came back after one
 * (SessionEstablished; a first Established after start is quiet), and a route that turned `failed`
 * or failed for a new reason (RouteRejected). Mesh and route-reflector sessions go on the Node.
 */
export function nodeEvents(node: string, prev: AgentStatus | undefined, next: AgentStatus): NodeEvent[] {
  const out: NodeEvent[] = [];
  const nodeObj = { apiVersion: 'v1', kind: 'Node', name: node };
  const before = new Map(prev?.peers.map((p) => [`${p.address}:${p.port}`, p]));
  for (const p of next.peers) {
    const was = before.get(`${p.address}:${p.port}`);
    if (!was || was.state === p.state) continue;
    const object =
      p.source === 'node-to-node-mesh' || p.source === 'route-reflector' || p.source === ''
        ? nodeObj
        : { apiVersion: `${NODESTATUS.group}/${NODESTATUS.version}`, kind: 'BGPPeer', name: p.source };
    const who = `${p.address}${p.nodeName ? ` (node ${p.nodeName})` : ''}`;
    if (was.state === 'Established')
      out.push({
        object,
        type: 'Warning',
        reason: 'SessionDown',
        message: `node ${node}: BGP session with ${who} left Established for ${p.state}${p.lastError ? `: ${p.lastError}` : ''}`,
      });
    else if (p.state === 'Established')
      out.push({
        object,
        type: 'Normal',
        reason: 'SessionEstablished',
        message: `node ${node}: BGP session with ${who} is Established again`,
      });
  }
  const failedBefore = new Map(
    prev?.routes.filter((r) => r.state === 'failed').map((r) => [r.dst, r.detail ?? '']),
  );
  for (const r of next.routes)
    if (r.state === 'failed' && failedBefore.get(r.dst) !== (r.detail ?? ''))
      out.push({
        object: nodeObj,
        type: 'Warning',
        reason: 'RouteRejected',
        message: `node ${node}: route ${r.dst} (${r.source}) not installed: ${r.detail ?? 'refused by the kernel'}`,
      });
  return out;
}

export interface NodeStatusReporterOptions {
  client: KubeClient;
  nodeName: string;
  status: () => AgentStatus;
  recorder: EventRecorder;
  limiter: TokenBucket;
  intervalMs: number;
  heartbeatMs: number;
  version?: string;
  logger?: Logger;
  now?: () => number;
}

/** Most Events kept waiting at once; older ones are dropped (and counted) when the rate limit lags. */
const MAX_QUEUED_EVENTS = 100;

export class NodeStatusReporter {
  private readonly log: Logger | undefined;
  private readonly now: () => number;
  private timer: NodeJS.Timeout | undefined;
  private last: string | undefined;
  private lastWrite = 0;
  private prev: AgentStatus | undefined;
  private busy: Promise<void> | undefined;
  private events: NodeEvent[] = [];
  /** NodeStatus writes done, Events dropped for lack of room (for tests and /status). */
  writes = 0;
  droppedEvents = 0;

  constructor(private readonly o: NodeStatusReporterOptions) {
    this.log = o.logger?.child({ component: 'node-status', node: o.nodeName });
    this.now = o.now ?? Date.now;
  }

  start(): void {
    if (this.timer) return;
    // Events are checked every second; the NodeStatus is written per the interval and heartbeat.
    this.timer = setInterval(() => void this.tick(), 1000);
    void this.tick();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.busy;
  }

  /** One pass: queue Events, write the NodeStatus if due. Exposed for tests. */
  tick(): Promise<void> {
    if (this.busy) return this.busy;
    this.busy = this.pass().finally(() => {
      this.busy = undefined;
    });
    return this.busy;
  }

  private async pass() {
    const s = this.o.status();
    this.events.push(...nodeEvents(this.o.nodeName, this.prev, s));
    this.prev = s;
    if (this.events.length > MAX_QUEUED_EVENTS) {
      this.droppedEvents += this.events.length - MAX_QUEUED_EVENTS;
      this.events = this.events.slice(-MAX_QUEUED_EVENTS);
    }
    while (this.events.length) {
      const e = this.events.shift()!;
      await this.o.recorder.record(e.object, e.type, e.reason, e.message);
    }
    const body = buildNodeStatus(s, this.o.version ?? AGENT_VERSION, Math.round(this.o.heartbeatMs / 1000));
    const key = JSON.stringify(body);
    const t = this.now();
    const changed = key !== this.last;
    if (!(changed && t - this.lastWrite >= this.o.intervalMs) && t - this.lastWrite < this.o.heartbeatMs)
      return;
    await this.o.limiter.take();
    try {
      await this.write({ ...body, lastUpdate: rfc3339Seconds(this.now()) });
      this.last = key;
      this.lastWrite = t;
      this.writes++;
    } catch (err) {
      this.log?.warn({ err: (err as Error).message }, 'cannot write the NodeStatus; retrying');
    }
  }

  /** Creates the object when absent, then writes its status subresource. */
  private async write(status: NodeStatusStatus) {
    const r = this.o.client.resource(NODESTATUS);
    try {
      await r.patchStatus(this.o.nodeName, status as unknown as Record<string, unknown>);
    } catch (err) {
      if (!isK8sError(err, K8S_ERR.NOT_FOUND)) throw err;
      try {
        await r.create({ metadata: { name: this.o.nodeName } });
      } catch (e) {
        if (!isK8sError(e, K8S_ERR.ALREADY_EXISTS)) throw e;
      }
      await r.patchStatus(this.o.nodeName, status as unknown as Record<string, unknown>);
      this.log?.info('NodeStatus created');
    }
  }
}
