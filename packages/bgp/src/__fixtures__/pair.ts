// Two network namespaces for a speaker test: `us` (where the speaker runs) and `them` (a daemon or
// a client) joined by one veth pair, and the teardown of speakers, processes, namespaces and the
// daemons' config directories.
import { rmSync } from 'node:fs';
import { cleanupStale, type Netns, NetnsSet, ProcessGroup, vethPair } from '@podnet/testkit';
import type { SpeakerProc } from './proc.js';

export class SpeakerLab {
  readonly nets = new NetnsSet();
  readonly procs = new ProcessGroup();

  /**
   * Clears namespaces left by dead runs, then makes `names.us` and `names.them` joined by a veth
   * pair (`v-us` in us, `names.themIf` in them) with the addresses given; IPv6 ones skip DAD.
   */
  async pair(
    names: { us: string; them: string; themIf: string },
    addrs: { us: string[]; them: string[] },
  ): Promise<{ us: Netns; them: Netns }> {
    await cleanupStale();
    const us = await this.nets.create(names.us);
    const them = await this.nets.create(names.them);
    await vethPair(us, 'v-us', them, names.themIf);
    const add = async (ns: Netns, dev: string, list: string[]) => {
      for (const a of list) await ns.ip('addr', 'add', a, 'dev', dev, ...(a.includes(':') ? ['nodad'] : []));
    };
    await add(us, 'v-us', addrs.us);
    await add(them, names.themIf, addrs.them);
    return { us, them };
  }

  /** Closes `speakers`, stops every process, removes the namespaces and `dirs`. */
  async stop(speakers: (SpeakerProc | undefined)[], dirs: (string | undefined)[] = []): Promise<void> {
    for (const s of speakers) await s?.close(this.procs).catch(() => {});
    await this.procs.stopAll();
    await this.nets.destroy();
    for (const d of dirs) if (d) rmSync(d, { recursive: true, force: true });
  }
}
