// What the agent reports about the objects it reads (docs/conditions.md): every agent reports its own
// Node's annotations; the one agent holding the `podnet-status-writer` Lease writes the IPPool and
// BGPPeer conditions. Every status write and Event of the agent shares one rate limit. The same Lease
// elects the other cluster-wide duties (`duties`, e.g. the IPAM garbage collection).
import type { KubeClient } from '@podnet/k8s';
import type { Logger } from 'pino';
import type { AgentConfig } from './config.js';
import { EventRecorder, TokenBucket } from './events.js';
import { LeaderElector } from './leader.js';
import { NodeAnnotationReporter } from './node-events.js';
import { NodeStatusReporter } from './node-status.js';
import type { AgentStatus } from './status.js';
import { StatusWriter } from './status-writer.js';

export const STATUS_LEASE = 'podnet-status-writer';

export interface ClusterStatus {
  elector: LeaderElector;
  writer: StatusWriter;
  nodeReporter: NodeAnnotationReporter;
  /** This node's NodeStatus (absent when no status source was given). */
  nodeStatus?: NodeStatusReporter;
  stop(): Promise<void>;
}

/** A cluster-wide duty done only by the holder of the agents' Lease. */
export interface LeaderDuty {
  onStartedLeading(): void;
  onStoppedLeading(): void;
}

export function startClusterStatus(
  client: KubeClient,
  config: AgentConfig,
  logger: Logger,
  duties: LeaderDuty[] = [],
  agentStatus?: () => AgentStatus,
): ClusterStatus {
  const limiter = new TokenBucket(config.statusWriteRate, config.statusWriteBurst);
  const recorder = new EventRecorder({ client, identity: config.nodeName, limiter, logger });
  const writer = new StatusWriter({
    client,
    recorder,
    limiter,
    logger,
    poolUsageWarning: config.poolUsageWarning,
  });
  const elector = new LeaderElector({
    client,
    namespace: config.namespace,
    name: STATUS_LEASE,
    identity: config.nodeName,
    leaseDurationMs: config.leaderElectionLeaseDuration,
    renewDeadlineMs: config.leaderElectionRenewDeadline,
    retryPeriodMs: config.leaderElectionRetryPeriod,
    logger,
    onStartedLeading: () => {
      writer.start();
      for (const d of duties) d.onStartedLeading();
    },
    onStoppedLeading: () => {
      void writer.stop();
      for (const d of duties) d.onStoppedLeading();
    },
  });
  const nodeReporter = new NodeAnnotationReporter({ client, nodeName: config.nodeName, recorder, logger });
  const nodeStatus = agentStatus
    ? new NodeStatusReporter({
        client,
        nodeName: config.nodeName,
        status: agentStatus,
        recorder,
        limiter,
        intervalMs: config.nodeStatusInterval,
        heartbeatMs: config.nodeStatusHeartbeat,
        logger,
      })
    : undefined;
  elector.start();
  nodeReporter.start();
  nodeStatus?.start();
  return {
    elector,
    writer,
    nodeReporter,
    ...(nodeStatus ? { nodeStatus } : {}),
    async stop() {
      await nodeStatus?.stop();
      // Release first, so another agent takes over at once.
      await elector.stop({ release: true });
      await writer.stop();
      await nodeReporter.stop();
    },
  };
}
