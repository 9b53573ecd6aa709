// The CNI commands. Each handler takes the validated config, the parsed environment and its
// dependencies (kernel, datastore, cache, logger), so unit tests drive them with fakes and the
// real tests drive the bundled binary.
import { inflightAlive, type ResultCache, runtimeId } from './cache.js';
import { diffAttachment } from './check.js';
import { now } from './clock.js';
import type { PluginConfig } from './config.js';
import type { Dataplane } from './dataplane.js';
import type { Datastore } from './datastore.js';
import type { CniRequest } from './env.js';
import { CniError, CniErrorCode, toCniError } from './errors.js';
import {
  type AttachmentPlan,
  handleId,
  hostIfName,
  PRIMARY_IFNAME,
  planAttachment,
  planLink,
  planResult,
} from './plan.js';
import { type CniResult, mergeResults, parseResult } from './result.js';
import { requireVersionFor } from './version.js';

export interface Log {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
  child(bindings: Record<string, unknown>): Log;
}

export interface Deps {
  dataplane: Dataplane;
  /** Opened lazily: VERSION and a cached idempotent ADD never load the Kubernetes client. */
  datastore: () => Promise<Datastore>;
  cache: ResultCache;
  log: Log;
  /** Bounded retry of rollback/release calls; tests shorten it. */
  releaseRetry?: { attempts: number; delayMs: number };
  /** Failure injection for tests: awaited at named points of ADD (see failpoint.ts). */
  failpoint?: (name: FailpointName) => Promise<void>;
  /** Who runs the plugin (default: runtimeId(), the parent's executable); GC keys on it. */
  runtime?: string;
  /**
   * The process an ADD's in-flight marker names (default: this one). The agent serving the shim
   * names the shim, which waits for the answer (and execs the standalone plugin if the agent dies).
   */
  owner?: { pid: number; pidStart: string };
  /** Wall clock in ms (default Date.now); GC's grace period is measured with it. */
  wallClock?: () => number;
}

/**
 * Failure injection points of ADD. `allocate-response-lost` comes after the allocation was stored
 * and makes the allocation call fail as if its response had been lost on the way back.
 */
export type FailpointName = 'after-allocate' | 'before-annotate' | 'allocate-response-lost';

/** The IPAM error code (CniError details) of an allocation refused because another ADD holds the handle. */
export const HANDLE_BUSY = 'IPAM_ERR_HANDLE_BUSY';

type AddReq = Extract<CniRequest, { type: 'ADD' }>;
type DelReq = Extract<CniRequest, { type: 'DEL' }>;
type CheckReq = Extract<CniRequest, { type: 'CHECK' }>;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function withRetry<T>(deps: Deps, what: string, fn: () => Promise<T>): Promise<T> {
  const { attempts, delayMs } = deps.releaseRetry ?? { attempts: 5, delayMs: 400 };
  let last: unknown;
  for (let i = 0; i < attempts; i++) {
    try {
      return await fn();
    } catch (err) {
      last = err;
      const retryable = err instanceof CniError && err.code === CniErrorCode.TryAgainLater;
      deps.log.warn({ what, attempt: i + 1, err: (err as Error).message }, 'datastore call failed');
      if (!retryable || i === attempts - 1) break;
      await sleep(delayMs * (i + 1));
    }
  }
  throw last;
}

function prevOf(cfg: PluginConfig): CniResult | undefined {
  return cfg.prevResult === undefined ? undefined : parseResult(cfg.prevResult, cfg.cniVersion);
}

export async function cmdAdd(cfg: PluginConfig, req: AddReq, deps: Deps): Promise<CniResult> {
  requireVersionFor('ADD', cfg.cniVersion);
  const prev = prevOf(cfg);
  const log = deps.log;
  const hostIf = hostIfName(req.pod, req.containerId, req.ifname);
  const handle = handleId(cfg.name, req.containerId, req.ifname);

  // Idempotent ADD: the same container and interface again returns the same result, provided the
  // kernel still matches; a stale attachment is torn down and built again.
  const cached = deps.cache.get(cfg.name, req.containerId, req.ifname);
  if (cached && cached.plan.netns === req.netns) {
    const diffs = diffAttachment(cached.plan, await deps.dataplane.observe(cached.plan));
    if (diffs.length === 0) {
      log.info({ containerId: req.containerId, hostIf }, 'ADD repeated: returning the cached result');
      return mergeResults(prev, { ...cached.result, cniVersion: cfg.cniVersion });
    }
    log.warn({ containerId: req.containerId, diffs }, 'ADD repeated but the attachment drifted: rebuilding');
  }
  if (cached) {
    await deps.dataplane.remove({
      hostIf: cached.plan.hostIf,
      netns: cached.plan.netns,
      podIf: cached.plan.podIf,
    });
    deps.cache.delete(cfg.name, req.containerId, req.ifname);
  }

  const t0 = now();
  // A namespace that is not there is the runtime's mistake: say so before allocating anything.
  await deps.dataplane.checkNetns(req.netns);
  const ds = await deps.datastore();
  const tOpen = now();
  const attrs: Record<string, string> = {
    node: cfg.nodeName,
    containerID: req.containerId,
    ifname: req.ifname,
  };
  // eth0's addresses are the pod's: recorded on the Pod (podnet.io/podIPs), routed by the agent to
  // the pod's host interface, and released by the agent's IPAM GC once the pod is gone. Another
  // attachment's (net1…) are none of these: its own host route carries them, and DEL or GC
  // releases them; `attachedTo` only names the pod.
  const primary = req.ifname === PRIMARY_IFNAME;
  if (req.pod && primary) {
    attrs.namespace = req.pod.namespace;
    attrs.pod = req.pod.name;
  } else if (req.pod) {
    attrs.attachedTo = `${req.pod.namespace}/${req.pod.name}`;
  }
  // The veth pair does not depend on the addresses: it is made while IPAM waits on the API server,
  // and gets its addresses and routes once they are known.
  const linking = (async () => {
    const mtu = cfg.mtu ?? (await deps.dataplane.detectMtu());
    const link = planLink({
      netns: req.netns,
      hostIf,
      podIf: req.ifname,
      mtu,
      arpMode: cfg.arpMode,
      ipv6: cfg.assignIpv6,
    });
    const { podMac } = await createLink(link, deps);
    return { mtu, podMac, ms: now() - tOpen };
  })();
  // From here until the attachment is cached (or rolled back), GC sees this ADD as in flight.
  // A live marker of another process for the same attachment (the runtime ran two ADDs at once)
  // stays that process's.
  const runtime = deps.runtime ?? runtimeId();
  const other = deps.cache.getInflight(handle);
  const self = deps.owner?.pid ?? process.pid;
  const ownMarker = !(other && other.pid !== self && inflightAlive(other));
  if (ownMarker) {
    deps.cache.markInflight(
      {
        network: cfg.name,
        containerId: req.containerId,
        ifname: req.ifname,
        handle,
        runtime,
        hostIf,
      },
      deps.owner,
    );
  }
  const clearMarker = () => {
    if (ownMarker) deps.cache.clearInflight(handle);
  };
  const allocating = ds
    .allocate({
      handle,
      node: cfg.nodeName,
      ipv4: cfg.assignIpv4,
      ipv6: cfg.assignIpv6,
      ipv4Pools: cfg.ipv4Pools,
      ipv6Pools: cfg.ipv6Pools,
      attrs,
    })
    .then(async (alloc) => {
      await deps.failpoint?.('allocate-response-lost');
      return { alloc, ms: now() - tOpen };
    });
  const [linked, allocated] = await Promise.allSettled([linking, allocating]);
  if (allocated.status === 'rejected' || linked.status === 'rejected') {
    const cause =
      allocated.status === 'rejected'
        ? toCniError(allocated.reason, CniErrorCode.IpamFailure, 'ADD failed')
        : toCniError((linked as PromiseRejectedResult).reason, CniErrorCode.DataplaneFailure, 'ADD failed');
    // Whatever half was made is undone: the link (if any), and the allocation. The allocation is
    // released by handle even when the call failed: the server may have stored it before its answer
    // was lost (a timeout, a cut connection), and releasing a handle that holds nothing is a no-op.
    // Only a handle another ADD of this attachment still holds (HANDLE_BUSY) is not ours to release.
    const busy = allocated.status === 'rejected' && cause.details === HANDLE_BUSY;
    const problems = await rollback({ hostIf, podIf: req.ifname }, busy ? undefined : handle, deps);
    log.error({ handle, hostIf, err: cause.message, rollback: problems }, 'ADD failed and was rolled back');
    // A complete rollback ends the ADD; an incomplete one leaves the marker for GC (this process
    // ends now, so GC sees it as dead) and the runtime's DEL.
    if (problems.length === 0 || busy) clearMarker();
    if (problems.length === 0) throw cause;
    throw new CniError(cause.code, cause.message, `rollback incomplete: ${problems.join('; ')}`, { cause });
  }
  const { alloc } = allocated.value;
  const { mtu, podMac } = linked.value;
  const tAlloc = now();
  log.info({ handle, ipv4: alloc.ipv4, ipv6: alloc.ipv6, ms: Math.round(allocated.value.ms) }, 'allocated');

  const plan = planAttachment({
    netns: req.netns,
    hostIf,
    podIf: req.ifname,
    mtu,
    ipv4: alloc.ipv4,
    ipv6: alloc.ipv6,
    arpMode: cfg.arpMode,
  });
  try {
    await deps.failpoint?.('after-allocate');
    await deps.dataplane.configure(plan);
    const ips = [alloc.ipv4, alloc.ipv6].filter((x): x is string => x !== undefined);
    const tWired = now();
    await deps.failpoint?.('before-annotate');
    if (req.pod && primary) await ds.annotatePod(req.pod, ips);
    const tAnnotated = now();
    const result = planResult(plan, podMac, cfg.cniVersion);
    deps.cache.put({
      kind: 'podnet-attachment',
      network: cfg.name,
      containerId: req.containerId,
      ifname: req.ifname,
      handle,
      pod: req.pod,
      plan,
      result,
      createdAt: new Date().toISOString(),
      runtime,
    });
    clearMarker();
    log.info(
      {
        hostIf,
        ips,
        openMs: Math.round(tOpen - t0),
        allocateMs: Math.round(allocated.value.ms),
        linkMs: Math.round(linked.value.ms),
        wireMs: Math.round(tWired - tAlloc),
        annotateMs: Math.round(tAnnotated - tWired),
        apiRequests: ds.stats?.().requests,
        apiCalls: ds.stats?.().calls,
        startMs: Math.round(t0),
        sinceProcessStartMs: Math.round(now()),
      },
      'ADD done',
    );
    return mergeResults(prev, result);
  } catch (err) {
    const cause = toCniError(err, CniErrorCode.DataplaneFailure, 'ADD failed');
    const problems = await rollback(plan, handle, deps);
    log.error({ handle, hostIf, err: cause.message, rollback: problems }, 'ADD failed and was rolled back');
    if (problems.length === 0) clearMarker();
    if (problems.length === 0) throw cause;
    throw new CniError(cause.code, cause.message, `rollback incomplete: ${problems.join('; ')}`, { cause });
  }
}

/** Creates the link; a leftover host interface of an earlier sandbox of the same pod is replaced once. */
async function createLink(link: AttachmentPlan, deps: Deps): Promise<{ podMac: string }> {
  try {
    return await deps.dataplane.createLink(link);
  } catch (err) {
    if (!(err instanceof CniError) || !/File exists/.test(err.message)) throw err;
    deps.log.warn({ hostIf: link.hostIf }, 'host interface already exists: replacing it');
    // Host side only: an interface of that name inside the pod's namespace is not ours to delete.
    await deps.dataplane.remove({ hostIf: link.hostIf, netns: undefined, podIf: link.podIf });
    return deps.dataplane.createLink(link);
  }
}

/**
 * Undoes a partial ADD: the veth pair and (when `handle` is given) the allocation. Returns what could
 * not be undone.
 */
async function rollback(
  plan: Pick<AttachmentPlan, 'hostIf' | 'podIf'>,
  handle: string | undefined,
  deps: Deps,
): Promise<string[]> {
  const problems: string[] = [];
  try {
    // Deleting the host end deletes the pair; `netns` is left out so that a name clash inside the
    // pod (which made the create fail) never costs the pod an interface this ADD did not make.
    await deps.dataplane.remove({ hostIf: plan.hostIf, netns: undefined, podIf: plan.podIf });
  } catch (err) {
    problems.push(`removing ${plan.hostIf}: ${(err as Error).message}`);
  }
  if (handle === undefined) return problems;
  try {
    const ds = await deps.datastore();
    await withRetry(deps, 'release', () => ds.releaseByHandle(handle));
  } catch (err) {
    problems.push(`releasing ${handle}: ${(err as Error).message}`);
  }
  return problems;
}

export async function cmdDel(cfg: PluginConfig, req: DelReq, deps: Deps): Promise<void> {
  requireVersionFor('DEL', cfg.cniVersion);
  const cached = deps.cache.get(cfg.name, req.containerId, req.ifname);
  const hostIf = cached?.plan.hostIf ?? hostIfName(req.pod, req.containerId, req.ifname);
  const handle = cached?.handle ?? handleId(cfg.name, req.containerId, req.ifname);
  // Only touch the host interface if it is this container's: a newer sandbox of the same pod has
  // the same host name, and then its (newer) cache entry is the owner. The runtime may DEL the old
  // sandbox after the new one was added.
  const newerOwner = deps.cache
    .list(cfg.name)
    .some(
      (e) =>
        e.plan.hostIf === hostIf &&
        e.containerId !== req.containerId &&
        (!cached || e.createdAt > cached.createdAt),
    );
  if (!newerOwner) {
    await deps.dataplane.remove({ hostIf, netns: req.netns ?? cached?.plan.netns, podIf: req.ifname });
  } else {
    deps.log.info({ hostIf }, 'host interface belongs to a newer sandbox of the pod: left alone');
  }
  const ds = await deps.datastore();
  await withRetry(deps, 'release', () => ds.releaseByHandle(handle));
  deps.cache.delete(cfg.name, req.containerId, req.ifname);
  deps.cache.clearInflight(handle);
  deps.log.info({ handle, hostIf }, 'deleted');
}

export async function cmdCheck(cfg: PluginConfig, req: CheckReq, deps: Deps): Promise<void> {
  requireVersionFor('CHECK', cfg.cniVersion);
  const cached = deps.cache.get(cfg.name, req.containerId, req.ifname);
  if (!cached) {
    throw new CniError(
      CniErrorCode.UnknownContainer,
      `no attachment of container ${req.containerId} on ${req.ifname} in network ${cfg.name}`,
    );
  }
  const diffs: string[] = [];
  if (cached.plan.netns !== req.netns)
    diffs.push(`attachment was made in ${cached.plan.netns}, CHECK names ${req.netns}`);
  const prev = prevOf(cfg);
  if (prev) {
    const have = new Set((prev.ips ?? []).map((i) => i.address));
    for (const a of cached.plan.podAddresses) if (!have.has(a)) diffs.push(`prevResult lacks address ${a}`);
  }
  diffs.push(...diffAttachment(cached.plan, await deps.dataplane.observe(cached.plan)));
  if (diffs.length > 0) {
    throw new CniError(
      CniErrorCode.CheckFailed,
      `attachment of ${req.containerId} on ${req.ifname} differs: ${diffs.join('; ')}`,
      diffs.join('\n'),
    );
  }
}

/**
 * GC (CNI 1.1): releases what is provably this plugin's, this runtime's and dead. An attachment is
 * released only when it is not among `cni.dev/valid-attachments`, and
 * - it completed (cached) under the runtime that runs this GC, more than `gcGracePeriodSeconds`
 *   ago (an ADD that finished just after the runtime listed its attachments is not yet in the list);
 * - or its ADD allocated under this runtime and died (an in-flight marker whose process is gone).
 * An allocation of an ADD still running (live marker), of another runtime using the same network
 * name, or with no local trace at all (another runtime's cache directory, a lost cache) is left to
 * its owner, DEL, or the agent's IPAM GC (which releases addresses whose pod is gone).
 */
export async function cmdGc(cfg: PluginConfig, deps: Deps): Promise<void> {
  requireVersionFor('GC', cfg.cniVersion);
  if (cfg.disableGC) {
    deps.log.info({ network: cfg.name }, 'GC is disabled for this network (disableGC): nothing released');
    return;
  }
  // Without the list every attachment would look stale: refuse rather than release them all.
  if (cfg.validAttachments === undefined) {
    throw new CniError(
      CniErrorCode.InvalidConfig,
      'GC needs cni.dev/valid-attachments in the network configuration (an empty list releases everything)',
    );
  }
  const runtime = deps.runtime ?? runtimeId();
  const nowMs = (deps.wallClock ?? Date.now)();
  const graceMs = cfg.gcGracePeriodSeconds * 1000;
  const valid = cfg.validAttachments;
  const validHandles = new Set(valid.map((a) => handleId(cfg.name, a.containerID, a.ifname)));
  const ds = await deps.datastore();
  const problems: string[] = [];
  const cached = deps.cache.list(cfg.name);
  for (const e of cached) {
    if (validHandles.has(e.handle)) continue;
    if (e.runtime !== runtime) {
      deps.log.info(
        { handle: e.handle, owner: e.runtime ?? '(not recorded)', runtime },
        'GC left an attachment of another runtime alone',
      );
      continue;
    }
    // A repeated ADD rebuilding this attachment right now.
    const busy = deps.cache.getInflight(e.handle);
    if (busy && busy.pid !== (deps.owner?.pid ?? process.pid) && inflightAlive(busy)) {
      deps.log.info({ handle: e.handle, pid: busy.pid }, 'GC left the attachment of an ADD in flight alone');
      continue;
    }
    const age = nowMs - Date.parse(e.createdAt);
    if (!(age >= graceMs)) {
      deps.log.info({ handle: e.handle, ageMs: age, graceMs }, 'GC left a recent attachment alone');
      continue;
    }
    try {
      await deps.dataplane.remove({ hostIf: e.plan.hostIf, netns: e.plan.netns, podIf: e.plan.podIf });
      await ds.releaseByHandle(e.handle);
      deps.cache.delete(cfg.name, e.containerId, e.ifname);
      deps.cache.clearInflight(e.handle);
      deps.log.info({ handle: e.handle }, 'GC released a stale attachment');
    } catch (err) {
      problems.push(`${e.handle}: ${(err as Error).message}`);
    }
  }
  // Allocations with no completed attachment: released only when the ADD that made them is known
  // here and dead (it crashed between allocation and the cache write, or could not roll back).
  const completed = new Set(cached.map((e) => e.handle));
  for (const h of await ds.listHandles(cfg.nodeName, `${handleId(cfg.name, '', '').replace(/\.+$/, '')}.`)) {
    if (validHandles.has(h) || completed.has(h)) continue;
    const m = deps.cache.getInflight(h);
    if (!m || m.runtime !== runtime || m.network !== cfg.name) {
      deps.log.info({ handle: h }, 'GC left an allocation it has no record of alone');
      continue;
    }
    if (inflightAlive(m)) {
      deps.log.info({ handle: h, pid: m.pid }, 'GC left the allocation of an ADD in flight alone');
      continue;
    }
    try {
      // Its veth too, unless the name is taken by a completed attachment (a newer sandbox of the
      // pod). Host side only: deleting it deletes the pair.
      if (m.hostIf && !cached.some((e) => e.plan.hostIf === m.hostIf)) {
        await deps.dataplane.remove({ hostIf: m.hostIf, netns: undefined, podIf: m.ifname });
      }
      await ds.releaseByHandle(h);
      deps.cache.clearInflight(h);
      deps.log.info({ handle: h, pid: m.pid }, 'GC released the allocation of an ADD that died');
    } catch (err) {
      problems.push(`${h}: ${(err as Error).message}`);
    }
  }
  if (problems.length > 0) {
    throw new CniError(
      CniErrorCode.IpamFailure,
      `GC could not release ${problems.length} allocation(s)`,
      problems.join('\n'),
    );
  }
}

export async function cmdStatus(cfg: PluginConfig, deps: Deps): Promise<void> {
  requireVersionFor('STATUS', cfg.cniVersion);
  let st: Awaited<ReturnType<Datastore['status']>>;
  try {
    st = await (await deps.datastore()).status(cfg.nodeName);
  } catch (err) {
    throw new CniError(
      CniErrorCode.PluginNotAvailable,
      `datastore is not reachable: ${(err as Error).message}`,
    );
  }
  if (!st.reachable)
    throw new CniError(CniErrorCode.PluginNotAvailable, `datastore is not reachable: ${st.detail}`);
  if (!st.usablePool)
    throw new CniError(
      CniErrorCode.PluginNotAvailable,
      `node ${cfg.nodeName} has no usable IP pool: ${st.detail}`,
    );
}
