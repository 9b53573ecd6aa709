// Running `nft`: the executor applies a transaction file on stdin (`nft -f -`) and lists the
// table as JSON. In production it runs in the agent's own network namespace; tests give it a
// namespace (a name: `ip netns exec`; a path: `nsenter --net=`).
import { spawn } from 'node:child_process';
import { NftError } from './errors.js';
import { NfNetlink } from './netlink.js';
import type { ElementChange } from './nfnl.js';
import type { PatchPlan } from './patch.js';

export interface NftExecutor {
  /** Applies one transaction; throws NFT_ERR_APPLY (with nft's stderr) when it is refused. */
  apply(script: string): Promise<void>;
  /**
   * `nft -j list table inet <table>` output, or null when the table does not exist. `terse`:
   * without set and map elements (`nft -t`), for the rules alone.
   */
  list(table: string, opts?: { terse?: boolean }): Promise<string | null>;
  /**
   * The fast path (optional): applies element changes of sets and maps without `interval` as one
   * nf_tables transaction over netlink. Resolves with the ruleset generation after it, or null
   * when it does not take this change (too large: the caller renders it for `apply`). Throws
   * NFT_ERR_APPLY naming the refused change; the kernel then changed nothing.
   */
  applyElements?(table: string, changes: ElementChange[]): Promise<number | null>;
  /**
   * The patch fast path (optional): applies planPatch()'s steps as one nf_tables transaction over
   * netlink. Resolves with the ruleset generation after it, or null when it does not take this
   * plan (the caller renders it for `apply`). Throws NFT_ERR_APPLY naming the refused step; the
   * kernel then changed nothing.
   */
  applyPatch?(plan: PatchPlan): Promise<number | null>;
  /**
   * Each chain's rules as digests of the kernel's encoding, counters left out (optional; without
   * it the rules are compared in `list(table, { terse: true })` output); with `chain`, that chain's
   * only. Null: no such table (or chain).
   */
  ruleDigests?(table: string, chain?: string): Promise<Map<string, string[]> | null>;
  /** The namespace's nf_tables ruleset generation (optional; without it every sync reads the table). */
  generation?(): Promise<number>;
  /** Releases what the executor holds open (the netlink socket). */
  close?(): void;
}

export interface CliOptions {
  /** A namespace name (under /var/run/netns) or a path to a namespace file; default: this one. */
  netns?: string;
  /** The nft program; default `nft`. */
  nft?: string;
  /** Per nft run and per netlink exchange; default 120 s (listing 10,000 chains takes tens of seconds). */
  timeoutMs?: number;
  /**
   * Element changes and the generation over NETLINK_NETFILTER (default true); false: every
   * change through `nft -f` and no generation (every sync reads the table back).
   */
  netlink?: boolean;
  /**
   * With `netlink`: patches (chains, sets and rules that differ) over NETLINK_NETFILTER too
   * (default true); false: through `nft -f`.
   */
  netlinkPatches?: boolean;
}

interface Ran {
  code: number;
  stdout: string;
  stderr: string;
}

function runCommand(argv: string[], input: string | undefined, timeoutMs: number): Promise<Ran> {
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0]!, argv.slice(1), { stdio: ['pipe', 'pipe', 'pipe'], timeout: timeoutMs });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.on('error', (e) =>
      reject(new NftError('NFT_ERR_EXEC', `cannot run ${argv.join(' ')}: ${e.message}`, '', { cause: e })),
    );
    child.on('close', (code, signal) =>
      resolve({
        code: code ?? (signal ? 128 : 1),
        stdout: Buffer.concat(out).toString(),
        stderr: Buffer.concat(err).toString() + (signal ? `\nkilled by ${signal}` : ''),
      }),
    );
    child.stdin.on('error', () => {}); // nft exiting early closes stdin; the exit status tells why.
    child.stdin.end(input ?? '');
  });
}

/** The executor that runs the `nft` program. */
export function nftCli(opts: CliOptions = {}): NftExecutor {
  const nft = opts.nft ?? 'nft';
  const timeoutMs = opts.timeoutMs ?? 120_000;
  const argv = (args: string[]) => {
    if (!opts.netns) return [nft, ...args];
    if (opts.netns.startsWith('/')) return ['nsenter', `--net=${opts.netns}`, nft, ...args];
    return ['ip', 'netns', 'exec', opts.netns, nft, ...args];
  };
  // The netlink socket is opened in the same namespace, by path, on first use.
  const nsPath = opts.netns && !opts.netns.startsWith('/') ? `/var/run/netns/${opts.netns}` : opts.netns;
  const nl = opts.netlink === false ? undefined : new NfNetlink({ netns: nsPath, timeoutMs });
  const fast: Pick<NftExecutor, 'applyElements' | 'applyPatch' | 'generation' | 'ruleDigests' | 'close'> = nl
    ? {
        applyElements: (table, changes) => nl.applyElements(table, changes),
        ...(opts.netlinkPatches === false ? {} : { applyPatch: (plan: PatchPlan) => nl.applyPatch(plan) }),
        ruleDigests: (table, chain) => nl.ruleDigests(table, chain),
        generation: () => nl.generation(),
        close: () => nl.close(),
      }
    : {};
  return {
    ...fast,
    async apply(script) {
      const r = await runCommand(argv(['-f', '-']), script, timeoutMs);
      if (r.code !== 0) {
        const first = r.stderr.trim().split('\n')[0] ?? '';
        throw new NftError(
          'NFT_ERR_APPLY',
          `nft -f refused the transaction (exit ${r.code}): ${first}`,
          r.stderr,
        );
      }
    },
    async list(table, o) {
      const args = [...(o?.terse ? ['-t'] : []), '-j', 'list', 'table', 'inet', table];
      const r = await runCommand(argv(args), undefined, timeoutMs);
      if (r.code === 0) return r.stdout;
      if (/No such file or directory/.test(r.stderr)) return null;
      throw new NftError('NFT_ERR_READ', `nft -j list table inet ${table} failed (exit ${r.code})`, r.stderr);
    },
  };
}
