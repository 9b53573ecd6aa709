// Kubernetes Events (core/v1) for what podnet cannot use, and the rate bound every status write
// and Event of the agent goes through.
import { randomBytes } from 'node:crypto';
import type { KubeClient } from '@podnet/k8s';
import type { Logger } from 'pino';

/**
 * A token bucket: `ratePerSecond` tokens a second, at most `burst` saved up. `delay()` takes a token
 * and says how long to wait before using it (0 when one was there).
 */
export class TokenBucket {
  private tokens: number;
  private at: number;

  constructor(
    private readonly ratePerSecond: number,
    private readonly burst: number,
    private readonly now: () => number = Date.now,
  ) {
    if (!(ratePerSecond > 0)) throw new Error(`rate ${ratePerSecond} must be greater than 0`);
    if (!(burst >= 1)) throw new Error(`burst ${burst} must be at least 1`);
    this.tokens = burst;
    this.at = now();
  }

  delay(): number {
    const t = this.now();
    this.tokens = Math.min(this.burst, this.tokens + ((t - this.at) / 1000) * this.ratePerSecond);
    this.at = t;
    this.tokens -= 1;
    return this.tokens >= 0 ? 0 : Math.ceil((-this.tokens / this.ratePerSecond) * 1000);
  }

  /** Resolves when a token is free. */
  async take(): Promise<void> {
    const ms = this.delay();
    if (ms > 0) await new Promise((r) => setTimeout(r, ms));
  }
}

export interface InvolvedObject {
  apiVersion: string;
  kind: string;
  name: string;
  uid?: string;
  /** Empty for a cluster-scoped object: its Events go to namespace `default`. */
  namespace?: string;
}

export interface EventRecorderOptions {
  client: KubeClient;
  /** Who reports (the node name): source.host and reportingInstance. */
  identity: string;
  limiter: TokenBucket;
  logger?: Logger;
  /** Events waiting for the limiter at most (default 256); more are dropped and counted. */
  maxPending?: number;
}

/**
 * Writes core/v1 Events, one per call, through the rate limiter; failures are logged, not thrown.
 * Callers need not wait: at most `maxPending` Events wait for the limiter, and a burst beyond that
 * is dropped (counted, and logged once per burst), as client-go's broadcaster drops when full.
 */
export class EventRecorder {
  private readonly log: Logger | undefined;
  /** Events written, for tests and metrics. */
  written = 0;
  /** Events dropped because too many were waiting for the limiter. */
  dropped = 0;
  private pending = 0;
  private burstDropped = 0;
  private readonly maxPending: number;

  constructor(private readonly o: EventRecorderOptions) {
    this.log = o.logger?.child({ component: 'events' });
    this.maxPending = Math.max(1, o.maxPending ?? 256);
  }

  async record(obj: InvolvedObject, type: 'Normal' | 'Warning', reason: string, message: string) {
    if (this.pending >= this.maxPending) {
      this.dropped++;
      if (this.burstDropped++ === 0)
        this.log?.warn(
          { kind: obj.kind, name: obj.name, reason, waiting: this.pending },
          `${this.maxPending} Events are waiting for the rate limit; dropping Events until they drain`,
        );
      return;
    }
    this.pending++;
    try {
      await this.o.limiter.take();
    } finally {
      this.pending--;
      if (this.pending === 0 && this.burstDropped > 0) {
        this.log?.warn({ dropped: this.burstDropped }, 'Events drained; some were dropped');
        this.burstDropped = 0;
      }
    }
    const now = new Date();
    const suffix = `${now.getTime().toString(16)}${randomBytes(3).toString('hex')}`;
    try {
      await this.o.client.createEvent({
        metadata: { name: `${obj.name}.${suffix}`, namespace: obj.namespace || 'default' },
        involvedObject: {
          apiVersion: obj.apiVersion,
          kind: obj.kind,
          name: obj.name,
          ...(obj.uid ? { uid: obj.uid } : {}),
          ...(obj.namespace ? { namespace: obj.namespace } : {}),
        },
        type,
        reason,
        // kube-apiserver keeps at most 1 KiB of an Event's message.
        message: message.length > 1024 ? `${message.slice(0, 1021)}...` : message,
        source: { component: 'podnet-agent', host: this.o.identity },
        reportingComponent: 'podnet.io/agent',
        reportingInstance: this.o.identity,
        firstTimestamp: now,
        lastTimestamp: now,
        count: 1,
      });
      this.written++;
    } catch (err) {
      this.log?.warn(
        { kind: obj.kind, name: obj.name, reason, err: (err as Error).message },
        'cannot write an Event',
      );
    }
  }
}
