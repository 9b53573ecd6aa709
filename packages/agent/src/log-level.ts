// The agent's log level, live: `BGPConfiguration.logSeverity` (node.<name> over default) sets it
// while the agent runs, unless --log-level or PODNET_LOG_LEVEL was given, which always win. The
// config file's logLevel (and the default, info) apply when no BGPConfiguration sets one.
// Precedence: flag > environment > BGPConfiguration node.<name> > BGPConfiguration default >
// config file > info.
import {
  BGPCONFIGURATION,
  type BGPConfiguration,
  Informer,
  type KubeClient,
  resourceSource,
} from '@podnet/k8s';
import pino, { type Logger, type LoggerOptions } from 'pino';

export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal' | 'silent';

/**
 * A pino root logger whose level can change later for it and every child made from it (pino copies
 * the level into a child when it is made, so each child is tracked, weakly).
 */
export function liveLogger(
  opts: LoggerOptions & { level: LogLevel },
  stream?: pino.DestinationStream,
): { log: Logger; setLevel(level: LogLevel): void } {
  const children = new Set<WeakRef<Logger>>();
  const log = pino({ ...opts, onChild: (child) => children.add(new WeakRef(child)) }, stream as never);
  return {
    log,
    setLevel(level) {
      log.level = level;
      for (const ref of children) {
        const c = ref.deref();
        if (c) c.level = level;
        else children.delete(ref);
      }
    },
  };
}

/** The level BGPConfigurations ask this node for, if any (node.<name> wins over default). */
export function severityFor(configs: BGPConfiguration[], nodeName: string): LogLevel | undefined {
  const node = configs.find((c) => c.metadata.name === `node.${nodeName}`)?.spec.logSeverity;
  const all = configs.find((c) => c.metadata.name === 'default')?.spec.logSeverity;
  return node ?? all;
}

export interface LogLevelControllerOptions {
  client: KubeClient;
  nodeName: string;
  /** The level from the config file or the default. */
  configured: LogLevel;
  /** True when --log-level or PODNET_LOG_LEVEL set it: BGPConfiguration is then only logged. */
  fixed: boolean;
  setLevel(level: LogLevel): void;
  logger: Logger;
}

export class LogLevelController {
  private readonly inf: Informer<BGPConfiguration>;
  private current: LogLevel;

  constructor(private readonly o: LogLevelControllerOptions) {
    this.current = o.configured;
    this.inf = new Informer(o.client, resourceSource(o.client, BGPCONFIGURATION), {
      initialBackoffMs: 200,
      maxBackoffMs: 5000,
      logger: o.logger,
    });
  }

  level(): LogLevel {
    return this.current;
  }

  /** BGPConfigurations seen (for tests). */
  seen(): number {
    return this.inf.list().length;
  }

  start(): void {
    this.inf.on(() => this.apply());
    this.inf.start();
  }

  stop(): Promise<void> {
    return this.inf.stop();
  }

  private apply() {
    const asked = severityFor(this.inf.list(), this.o.nodeName);
    if (this.o.fixed) {
      if (asked && asked !== this.current)
        this.o.logger.debug(
          { logSeverity: asked, level: this.current },
          'BGPConfiguration logSeverity ignored: --log-level or PODNET_LOG_LEVEL wins',
        );
      return;
    }
    const next = asked ?? this.o.configured;
    if (next === this.current) return;
    const was = this.current;
    const line = { was, level: next, from: asked ? 'BGPConfiguration logSeverity' : 'configuration' };
    // At warn, under whichever of the two levels lets it through.
    const before = this.o.logger.isLevelEnabled('warn');
    if (before) this.o.logger.warn(line, 'log level changed');
    this.current = next;
    this.o.setLevel(next);
    if (!before) this.o.logger.warn(line, 'log level changed');
  }
}
