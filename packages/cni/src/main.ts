// The plugin process: environment + stdin in, result or error object on stdout, exit status out.
import { existsSync } from 'node:fs';
import { ResultCache } from './cache.js';
import { now } from './clock.js';
import { type PluginConfig, parseConfig, peekVersion } from './config.js';
import type { Dataplane } from './dataplane.js';
import type { Datastore } from './datastore.js';
import { parseEnv } from './env.js';
import { CniError, CniErrorCode } from './errors.js';
import { failpointFromEnv } from './failpoint.js';
import { pluginLogger } from './log.js';
import { cmdAdd, cmdCheck, cmdDel, cmdGc, cmdStatus, type Deps, type Log } from './plugin.js';
import { convertResult } from './result.js';
import { TIMED_COMMANDS, type TimedCommand, writeTiming } from './timing.js';
import { CURRENT_VERSION, versionInfo } from './version.js';

export interface RunOutcome {
  stdout: string;
  exitCode: number;
}

export interface RunHooks {
  /** Builds the dataplane (default: the config's, rtnetlink-ts unless it says iproute2). */
  dataplane?: (cfg: PluginConfig, log: Log) => Promise<Dataplane>;
  /** Opens the datastore for a config (default: the Kubernetes API through the kubeconfig). */
  datastore?: (cfg: PluginConfig, log: Log) => Promise<Datastore>;
  logger?: (cfg: PluginConfig) => Promise<Log>;
  /**
   * Who the command is run for, when not this process (the agent serving the shim): the runtime GC
   * keys on, and the process named by the ADD's in-flight marker.
   */
  caller?: { runtime: string; pid: number; pidStart: string };
}

async function defaultLogger(cfg: PluginConfig): Promise<Log> {
  return pluginLogger(cfg);
}

async function defaultDatastore(cfg: PluginConfig, log: Log): Promise<Datastore> {
  const { openKubeDatastore } = await import('./kube-datastore.js');
  return openKubeDatastore(cfg, log);
}

async function defaultDataplane(cfg: PluginConfig, log: Log): Promise<Dataplane> {
  // The bundle loads @podnet/native's addon from beside itself; without it, iproute2 does the job.
  const addon = (globalThis as { __podnetNativeAddon?: string }).__podnetNativeAddon;
  const noAddon = addon !== undefined && !existsSync(addon);
  if (noAddon && cfg.dataplane !== 'iproute2') {
    log.warn({ addon }, 'the rtnetlink addon is missing beside the plugin: using iproute2');
  }
  if (cfg.dataplane === 'iproute2' || noAddon) {
    const { IprouteDataplane } = await import('./iproute.js');
    return new IprouteDataplane();
  }
  const { NetlinkDataplane } = await import('./netlink.js');
  return new NetlinkDataplane();
}

/** Runs one CNI invocation. Never throws: every failure becomes a CNI error object. */
export async function runPlugin(
  env: NodeJS.ProcessEnv,
  stdin: string,
  hooks: RunHooks = {},
): Promise<RunOutcome> {
  const tStart = now();
  let version = peekVersion(stdin) ?? CURRENT_VERSION;
  let datastore: Datastore | undefined;
  let dataplane: Dataplane | undefined;
  let log: Log | undefined;
  // For the timing record (timing.ts): set once the command and config are known.
  let timed: { command: TimedCommand; dir: string } | undefined;
  let exitCode = 1;
  try {
    const req = parseEnv(env);
    if (req.type === 'VERSION') return { stdout: `${JSON.stringify(versionInfo())}\n`, exitCode: 0 };
    const cfg = parseConfig(stdin, env);
    version = cfg.cniVersion;
    // The agent serving the shim measures its own runs; only the standalone process records.
    if (!hooks.caller && cfg.timingDir && TIMED_COMMANDS.includes(req.type as TimedCommand))
      timed = { command: req.type as TimedCommand, dir: cfg.timingDir };
    const logger = await (hooks.logger ?? defaultLogger)(cfg);
    log = logger;
    const tConfig = now();
    const child = logger.child({
      command: req.type,
      ...('containerId' in req ? { containerId: req.containerId, ifname: req.ifname } : {}),
    });
    child.debug({ processToPluginMs: Math.round(tStart), configMs: Math.round(tConfig - tStart) }, 'started');
    dataplane = await (hooks.dataplane ?? defaultDataplane)(cfg, child);
    const deps: Deps = {
      dataplane,
      datastore: async () => {
        datastore ??= await (hooks.datastore ?? defaultDatastore)(cfg, child);
        return datastore;
      },
      cache: new ResultCache(cfg.cacheDir),
      log: child,
      ...(hooks.caller
        ? { runtime: hooks.caller.runtime, owner: { pid: hooks.caller.pid, pidStart: hooks.caller.pidStart } }
        : {}),
    };
    const fp = failpointFromEnv(env);
    if (fp) deps.failpoint = fp;
    switch (req.type) {
      case 'ADD': {
        const result = await cmdAdd(cfg, req, deps);
        exitCode = 0;
        return { stdout: `${JSON.stringify(convertResult(result, cfg.cniVersion))}\n`, exitCode };
      }
      case 'DEL':
        await cmdDel(cfg, req, deps);
        exitCode = 0;
        return { stdout: '', exitCode };
      case 'CHECK':
        await cmdCheck(cfg, req, deps);
        exitCode = 0;
        return { stdout: '', exitCode };
      case 'GC':
        await cmdGc(cfg, deps);
        return { stdout: '', exitCode: 0 };
      case 'STATUS':
        await cmdStatus(cfg, deps);
        return { stdout: '', exitCode: 0 };
      default:
        throw new CniError(
          CniErrorCode.InvalidEnv,
          `CNI_COMMAND ${(req as { type: string }).type} is not handled`,
        );
    }
  } catch (err) {
    const e =
      err instanceof CniError
        ? err
        : new CniError(
            CniErrorCode.IoFailure,
            `unexpected failure: ${(err as Error)?.message ?? String(err)}`,
            undefined,
            {
              cause: err,
            },
          );
    log?.error(
      { code: e.code, codeName: e.codeName, error: e.message, details: e.details },
      'CNI command failed',
    );
    return { stdout: `${JSON.stringify(e.toObject(version))}\n`, exitCode: 1 };
  } finally {
    dataplane?.close?.();
    if (datastore) await datastore.close().catch(() => undefined);
    if (timed) {
      const outcome = writeTiming(timed.dir, {
        command: timed.command,
        result: exitCode === 0 ? 'success' : 'error',
        seconds: now() / 1000,
        at: Date.now(),
      });
      if (outcome === 'failed' || outcome === 'full')
        log?.debug({ dir: timed.dir, outcome }, 'timing record not written');
    }
  }
}
