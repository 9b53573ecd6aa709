// The CNI plugin's credential: a short-lived service account token (TokenRequest, POST
// serviceaccounts/<sa>/token), with an audience and an expiry. It is not bound to the agent's pod:
// a real API server binds a token to a pod only for the pod's own service account ("cannot bind
// token for serviceaccount … to pod running with different serviceaccount name"), and the plugin's
// account (podnet-cni) is not the agent's; the expiry is what limits a leaked token.
// It is written 0600 by temp file + rename into the CNI conf dir as `podnet-cni-token`, which the
// plugin's kubeconfig names by `tokenFile` (relative, so it resolves beside the kubeconfig on the
// host whatever path the container mounts it at). The plugin reads it on every call and caches
// no copy. The agent asks for a new token at 80% of its lifetime.
import { chmodSync, mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { Gauge, type Registry } from 'prom-client';
import { AgentError } from './errors.js';

export const CNI_TOKEN_NAME = 'podnet-cni-token';
/** A new token is requested when this fraction of the current one's lifetime has passed. */
export const REFRESH_AT = 0.8;

export interface TokenRequestSpec {
  namespace: string;
  serviceAccount: string;
  /** Empty: the API server's own audiences (the only ones it accepts for API calls). */
  audiences: string[];
  expirationSeconds: number;
}

export interface IssuedToken {
  token: string;
  /** Epoch ms. */
  expiresAt: number;
}

/** Sends one TokenRequest; production passes requestTokenVia over KubeClient.request (cli.ts tokenApi). */
export type TokenRequester = (spec: TokenRequestSpec) => Promise<IssuedToken>;

interface CoreApiLike {
  createNamespacedServiceAccountToken(p: {
    name: string;
    namespace: string;
    body: object;
  }): Promise<{ status?: { token?: string; expirationTimestamp?: Date | string } }>;
}

export function requestTokenVia(core: CoreApiLike): TokenRequester {
  return async (spec) => {
    let res: Awaited<ReturnType<CoreApiLike['createNamespacedServiceAccountToken']>>;
    try {
      res = await core.createNamespacedServiceAccountToken({
        name: spec.serviceAccount,
        namespace: spec.namespace,
        body: {
          apiVersion: 'authentication.k8s.io/v1',
          kind: 'TokenRequest',
          spec: {
            ...(spec.audiences.length ? { audiences: spec.audiences } : {}),
            expirationSeconds: spec.expirationSeconds,
          },
        },
      });
    } catch (err) {
      const body = (err as { body?: unknown }).body;
      throw new AgentError(
        'AGENT_ERR_CNI_TOKEN',
        `TokenRequest for serviceaccount ${spec.namespace}/${spec.serviceAccount} failed: ${
          typeof body === 'string' ? body : (err as Error).message
        }`,
        { cause: err },
      );
    }
    const token = res.status?.token;
    const exp = res.status?.expirationTimestamp;
    if (!token || !exp)
      throw new AgentError(
        'AGENT_ERR_CNI_TOKEN',
        'TokenRequest answered without status.token or expirationTimestamp',
      );
    return { token, expiresAt: new Date(exp).getTime() };
  };
}

/** Writes the token file (0600, temp file + rename: the plugin never reads half a token). */
export function writeCniToken(dir: string, token: string): string {
  mkdirSync(dir, { recursive: true });
  const path = join(dir, CNI_TOKEN_NAME);
  const tmp = `${path}.podnet-tmp`;
  writeFileSync(tmp, token, { mode: 0o600 });
  chmodSync(tmp, 0o600);
  renameSync(tmp, path);
  return path;
}

export interface RefresherClock {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(h: unknown): void;
}

const realClock: RefresherClock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms).unref(),
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
};

export interface CniTokenRefresherOptions {
  spec: TokenRequestSpec;
  request: TokenRequester;
  /** The CNI conf dir (on the host) the token file goes into. */
  dir: string;
  log: Logger;
  registry?: Registry;
  clock?: RefresherClock;
  /** Retry delays after a failed request: doubling from minRetryMs to maxRetryMs. */
  minRetryMs?: number;
  maxRetryMs?: number;
  /** Called after each write (tests wait on it). */
  onWrite?: (t: IssuedToken) => void;
}

/** Keeps the CNI token file fresh: a new token at REFRESH_AT of the lifetime, retries on failure. */
export class CniTokenRefresher {
  private timer: unknown;
  private stopped = false;
  private failures = 0;
  private current: IssuedToken | undefined;
  private readonly clock: RefresherClock;
  private readonly expiry?: Gauge;
  private readonly errors?: Gauge;

  constructor(private readonly o: CniTokenRefresherOptions) {
    this.clock = o.clock ?? realClock;
    if (o.registry) {
      this.expiry = new Gauge({
        name: 'podnet_cni_token_expiry_timestamp_seconds',
        help: "Expiry of the CNI plugin's current token (Unix seconds)",
        registers: [o.registry],
      });
      this.errors = new Gauge({
        name: 'podnet_cni_token_refresh_failures',
        help: 'Consecutive failed TokenRequests for the CNI plugin (0 after a success)',
        registers: [o.registry],
      });
    }
  }

  /**
   * Requests and writes the first token, then keeps it fresh. When the first request fails, the
   * error is thrown to the caller and the refresher keeps retrying (stop() ends that).
   */
  async start(): Promise<IssuedToken> {
    return this.attempt();
  }

  /** When the next request goes out, in ms from now (for tests and the log). */
  nextDelay(t: IssuedToken): number {
    const now = this.clock.now();
    return Math.max(1000, Math.floor((t.expiresAt - now) * REFRESH_AT));
  }

  stop(): void {
    this.stopped = true;
    if (this.timer !== undefined) this.clock.clearTimeout(this.timer);
    this.timer = undefined;
  }

  private async refreshOnce(): Promise<IssuedToken> {
    const t = await this.o.request(this.o.spec);
    const path = writeCniToken(this.o.dir, t.token);
    this.current = t;
    this.failures = 0;
    this.expiry?.set(t.expiresAt / 1000);
    this.errors?.set(0);
    this.o.log.info(
      {
        file: path,
        expiresAt: new Date(t.expiresAt).toISOString(),
        serviceAccount: this.o.spec.serviceAccount,
      },
      'CNI token written',
    );
    this.o.onWrite?.(t);
    return t;
  }

  private attempt(): Promise<IssuedToken> {
    return this.refreshOnce().then(
      (t) => {
        this.schedule(this.nextDelay(t));
        return t;
      },
      (err: unknown) => {
        this.failures++;
        this.errors?.set(this.failures);
        const min = this.o.minRetryMs ?? 1000;
        const max = this.o.maxRetryMs ?? 60_000;
        const delay = Math.min(max, min * 2 ** Math.min(this.failures - 1, 16));
        const left = this.current ? this.current.expiresAt - this.clock.now() : 0;
        this.o.log.warn(
          { err, failures: this.failures, retryInMs: delay, tokenValidForMs: Math.max(0, left) },
          left > 0
            ? 'CNI token refresh failed; the current token is still valid'
            : 'CNI token request failed and there is no valid token: CNI ADD/DEL are refused until one is written',
        );
        this.schedule(delay);
        throw err;
      },
    );
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    this.timer = this.clock.setTimeout(() => {
      this.timer = undefined;
      // attempt() has logged and rescheduled on failure.
      this.attempt().catch(() => {});
    }, ms);
  }
}
