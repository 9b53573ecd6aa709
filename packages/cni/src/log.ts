// The plugin's logger: pino, created only when something is logged at or above the configured
// level. A successful ADD at the default level ('warn') logs nothing, so it never pays for
// loading pino (about 8 ms of a process that lives for one call).
import { createRequire } from 'node:module';
import type { PluginConfig } from './config.js';
import type { Log } from './plugin.js';

const LEVELS = { trace: 10, debug: 20, info: 30, warn: 40, error: 50, fatal: 60, silent: Infinity } as const;
type Level = keyof typeof LEVELS;

interface Sink {
  logger: Log | undefined;
}

class LazyLog implements Log {
  constructor(
    private readonly cfg: Pick<PluginConfig, 'logLevel' | 'logFile'>,
    private readonly sink: Sink,
    private readonly bindings: Record<string, unknown>,
  ) {}

  private emit(level: Exclude<Level, 'silent' | 'trace' | 'fatal'>, obj: object, msg?: string): void {
    if (LEVELS[level] < LEVELS[this.cfg.logLevel]) return;
    this.sink.logger ??= createPino(this.cfg);
    this.sink.logger[level]({ ...this.bindings, ...obj }, msg);
  }

  debug(obj: object, msg?: string): void {
    this.emit('debug', obj, msg);
  }
  info(obj: object, msg?: string): void {
    this.emit('info', obj, msg);
  }
  warn(obj: object, msg?: string): void {
    this.emit('warn', obj, msg);
  }
  error(obj: object, msg?: string): void {
    this.emit('error', obj, msg);
  }
  child(bindings: Record<string, unknown>): Log {
    return new LazyLog(this.cfg, this.sink, { ...this.bindings, ...bindings });
  }
}

function createPino(cfg: Pick<PluginConfig, 'logLevel' | 'logFile'>): Log {
  const { pino } = loadPino();
  const dest = cfg.logFile
    ? pino.destination({ dest: cfg.logFile, sync: true, mkdir: true })
    : pino.destination({ fd: 2, sync: true });
  const logger: unknown = pino({ level: cfg.logLevel, base: { component: 'cni', pid: process.pid } }, dest);
  return logger as Log;
}

export function pluginLogger(cfg: Pick<PluginConfig, 'logLevel' | 'logFile'>): Log {
  return new LazyLog(cfg, { logger: undefined }, {});
}

/**
 * pino, loaded synchronously on first use. In the CommonJS bundle `require('pino')` is a call
 * esbuild resolves to the bundled copy, evaluated only here; as plain ESM (dist/, tests) it goes
 * through createRequire.
 */
function loadPino(): typeof import('pino') {
  if (typeof require === 'function') return require('pino') as typeof import('pino');
  return createRequire(import.meta.url)('pino') as typeof import('pino');
}
