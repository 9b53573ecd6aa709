// Leader election on a coordination.k8s.io/v1 Lease, with client-go's semantics: the holder renews
// the lease every retry period; a candidate takes it over only once it has seen the same lease
// record unchanged for a whole lease duration (measured on its own clock, so clock skew between
// nodes does not matter); every write is a compare-and-swap on resourceVersion, so two candidates
// never both win. A holder that cannot renew within renewDeadline stops leading before its lease
// can expire elsewhere. A graceful stop releases the lease (empty holder) so another node takes
// over at once; a holder that dies is replaced one lease duration after its last renewal.
import { K8S_ERR, type KubeClient, toK8sError } from '@podnet/k8s';
import type { Logger } from 'pino';

const GROUP = { group: 'coordination.k8s.io', version: 'v1', plural: 'leases' } as const;

export interface LeaseSpec {
  holderIdentity?: string | null;
  leaseDurationSeconds?: number;
  acquireTime?: string;
  renewTime?: string;
  leaseTransitions?: number;
}

interface Lease {
  apiVersion?: string;
  kind?: string;
  metadata: { name: string; namespace?: string; resourceVersion?: string };
  spec?: LeaseSpec;
}

export interface LeaderElectorOptions {
  client: KubeClient;
  namespace: string;
  name: string;
  /** This candidate, e.g. the node name. */
  identity: string;
  /** How long a lease holds without renewal. Default 15 s. */
  leaseDurationMs?: number;
  /** A holder that could not renew for this long stops leading. Default 10 s (< leaseDuration). */
  renewDeadlineMs?: number;
  /** How often to try to acquire or renew. Default 2 s. */
  retryPeriodMs?: number;
  logger?: Logger;
  now?: () => number;
  onStartedLeading?: () => void;
  onStoppedLeading?: () => void;
}

/** metav1.MicroTime: RFC 3339 with six fractional digits (kube-apiserver refuses three). */
export function microTime(ms: number): string {
  return new Date(ms).toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
}

export class LeaderElector {
  private readonly leaseMs: number;
  private readonly renewDeadlineMs: number;
  private readonly retryMs: number;
  private readonly now: () => number;
  private readonly log: Logger | undefined;
  private timer: NodeJS.Timeout | undefined;
  private running = false;
  private leading = false;
  private lastRenew = 0;
  private observed: { record: string; at: number } | undefined;
  private lease: Lease | undefined;
  private pass: Promise<void> = Promise.resolve();
  /** Attempts made, for tests and metrics. */
  attempts = 0;

  constructor(private readonly o: LeaderElectorOptions) {
    this.leaseMs = o.leaseDurationMs ?? 15_000;
    this.renewDeadlineMs = o.renewDeadlineMs ?? 10_000;
    this.retryMs = o.retryPeriodMs ?? 2_000;
    if (!(this.renewDeadlineMs < this.leaseMs))
      throw new Error(
        `leader election: renew deadline ${this.renewDeadlineMs} ms must be shorter than the lease duration ${this.leaseMs} ms`,
      );
    if (!(this.retryMs < this.renewDeadlineMs))
      throw new Error(
        `leader election: retry period ${this.retryMs} ms must be shorter than the renew deadline ${this.renewDeadlineMs} ms`,
      );
    this.now = o.now ?? Date.now;
    this.log = o.logger?.child({ component: 'leader', lease: `${o.namespace}/${o.name}` });
  }

  isLeader(): boolean {
    return this.leading;
  }

  /** The holder last seen in the lease ('' when released). */
  holder(): string {
    return this.lease?.spec?.holderIdentity ?? '';
  }

  start(): this {
    if (this.running) return this;
    this.running = true;
    this.tick();
    return this;
  }

  private tick() {
    if (!this.running) return;
    this.pass = this.attempt().finally(() => {
      if (this.running) this.timer = setTimeout(() => this.tick(), this.retryMs);
    });
  }

  /** Stops campaigning; `release` (the default) hands the lease over at once if we hold it. */
  async stop(opts: { release?: boolean } = {}): Promise<void> {
    this.running = false;
    if (this.timer) clearTimeout(this.timer);
    await this.pass;
    if (this.leading && opts.release !== false) await this.release();
    this.setLeading(false);
  }

  private setLeading(on: boolean) {
    if (on === this.leading) return;
    this.leading = on;
    this.log?.info({ identity: this.o.identity }, on ? 'started leading' : 'stopped leading');
    try {
      if (on) this.o.onStartedLeading?.();
      else this.o.onStoppedLeading?.();
    } catch (err) {
      this.log?.error({ err }, 'leadership callback threw');
    }
  }

  /** The Leases collection of the namespace, or one Lease in it. */
  private path(name?: string): string {
    const base = `/apis/${GROUP.group}/${GROUP.version}/namespaces/${encodeURIComponent(this.o.namespace)}/${GROUP.plural}`;
    return name === undefined ? base : `${base}/${encodeURIComponent(name)}`;
  }

  private async get(): Promise<Lease | undefined> {
    try {
      return (await this.o.client.request('GET', this.path(this.o.name))) as Lease;
    } catch (err) {
      const e = toK8sError(err, `get Lease ${this.o.namespace}/${this.o.name}`);
      if (e.code === K8S_ERR.NOT_FOUND) return undefined;
      throw e;
    }
  }

  private async write(lease: Lease, create: boolean): Promise<Lease> {
    const body = { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', ...lease };
    const what = `${create ? 'create' : 'update'} Lease ${this.o.namespace}/${this.o.name}`;
    try {
      return (await (create
        ? this.o.client.request('POST', this.path(), { body })
        : this.o.client.request('PUT', this.path(this.o.name), { body }))) as Lease;
    } catch (err) {
      throw toK8sError(err, what);
    }
  }

  /** One try to acquire or renew; never throws. */
  private async attempt(): Promise<void> {
    this.attempts++;
    const now = this.now();
    try {
      if (await this.tryAcquireOrRenew(now)) {
        this.lastRenew = now;
        this.setLeading(true);
        return;
      }
      if (this.leading) this.setLeading(false); // someone else holds it now
    } catch (err) {
      const e = toK8sError(err, 'leader election');
      if (e.code !== K8S_ERR.CONFLICT)
        this.log?.warn({ err: e.message, code: e.code }, 'cannot acquire or renew the lease');
      if (this.leading && this.now() - this.lastRenew >= this.renewDeadlineMs) {
        this.log?.warn({ renewDeadlineMs: this.renewDeadlineMs }, 'lease not renewed in time');
        this.setLeading(false);
      }
    }
  }

  private async tryAcquireOrRenew(now: number): Promise<boolean> {
    const me = this.o.identity;
    const cur = await this.get();
    const fresh = (held: LeaseSpec | undefined): LeaseSpec => {
      const ours = held?.holderIdentity === me;
      return {
        holderIdentity: me,
        leaseDurationSeconds: Math.max(1, Math.ceil(this.leaseMs / 1000)),
        acquireTime: ours && held?.acquireTime ? held.acquireTime : microTime(now),
        renewTime: microTime(now),
        leaseTransitions: (held?.leaseTransitions ?? 0) + (ours || held === undefined ? 0 : 1),
      };
    };
    if (!cur) {
      this.lease = await this.write({ metadata: { name: this.o.name }, spec: fresh(undefined) }, true);
      return true;
    }
    this.lease = cur;
    const spec = cur.spec ?? {};
    const record = JSON.stringify([spec.holderIdentity, spec.renewTime, spec.leaseTransitions]);
    if (this.observed?.record !== record) this.observed = { record, at: now };
    const holder = spec.holderIdentity ?? '';
    const duration = (spec.leaseDurationSeconds ?? Math.ceil(this.leaseMs / 1000)) * 1000;
    if (holder !== '' && holder !== me && now < this.observed.at + duration) return false;
    this.lease = await this.write({ ...cur, spec: { ...spec, ...fresh(spec) } }, false);
    this.observed = undefined;
    return true;
  }

  private async release(): Promise<void> {
    const cur = this.lease;
    if (!cur || cur.spec?.holderIdentity !== this.o.identity) return;
    try {
      this.lease = await this.write(
        {
          ...cur,
          spec: {
            ...cur.spec,
            holderIdentity: '',
            leaseDurationSeconds: 1,
            renewTime: microTime(this.now()),
          },
        },
        false,
      );
      this.log?.info('released the lease');
    } catch (err) {
      this.log?.warn({ err: (err as Error).message }, 'cannot release the lease; it expires by itself');
    }
  }
}
