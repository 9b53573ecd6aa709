// The `podnet-cni` executable as a V8 startup snapshot (built by scripts/bundle.mjs with
// `node --build-snapshot`; started by the dist/podnet-cni launcher with `--snapshot-blob`).
//
// Building the snapshot evaluates every module an ADD or DEL needs (zod and the resource schemas,
// IPAM, the API client, rtnetlink) and keeps the resulting heap, so a plugin process starts with
// them loaded instead of parsing and running ~0.8 MB of JavaScript each time. What cannot be in a
// snapshot is deferred to the run: the rtnetlink addon (loaded on first use, scripts/bundle.mjs
// patches that in) and the builtins Node does not snapshot (http, https, tls, net: loaded on first
// use through process.getBuiltinModule).
//
// Before the snapshot is taken, an in-memory rehearsal of ADD and DEL runs (warmup.ts): V8 keeps the
// bytecode of every function that ran, so the plugin does not compile it again in each process.
//
// The launcher passes the plugin's directory as the first argument: the addon is looked up there.
import { join } from 'node:path';
import { startupSnapshot } from 'node:v8';
import { z } from 'zod';
import './kube-datastore.js';
import './main.js';
import './netlink.js';
import { runCli } from './run-cli.js';
import { rehearse } from './warmup.js';

if (startupSnapshot.isBuildingSnapshot()) {
  // zod as the plugin runs it (see run-cli.ts), then a rehearsal of ADD and DEL so that the code
  // they run is compiled into the snapshot (warmup.ts). The snapshot is taken once it has settled.
  z.config({ jitless: true });
  void rehearse();
  startupSnapshot.setDeserializeMainFunction(() => {
    const dir = process.argv[1];
    if (dir)
      (globalThis as { __podnetNativeAddon?: string }).__podnetNativeAddon = join(dir, 'podnet_native.node');
    void runCli();
  });
} else {
  void runCli();
}
