// Builds the CNI shim (shim/podnet-cni-shim.c) with the system C compiler:
// - dist/podnet-cni-shim: the executable installed as the `podnet` plugin; it hands ADD/DEL/CHECK to
//   the node's agent over a unix socket and execs the standalone plugin beside it otherwise;
// - dist/podnet-standalone: the standalone plugin's launcher under the name the shim execs (the same
//   script as dist/podnet-cni).
// Without a compiler the build goes on (warning): install-cni then installs the standalone plugin
// as `podnet`, as before the shim existed.
import { spawnSync } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { publish } from './build-lib.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const dist = join(root, 'dist');
const out = join(dist, 'podnet-cni-shim');

publish(join(dist, 'podnet-standalone'), readFileSync(join(dist, 'podnet-cni')), 0o755);

const cc = process.env.CC || 'cc';
const tmp = `${out}.${process.pid}.build`;
const made = spawnSync(
  cc,
  ['-O2', '-Wall', '-Wextra', '-Werror', '-o', tmp, join(root, 'shim', 'podnet-cni-shim.c')],
  { encoding: 'utf8', timeout: 120_000 },
);
if (made.status !== 0) {
  rmSync(tmp, { force: true });
  rmSync(out, { force: true });
  console.warn(
    `podnet-cni: the CNI shim was not built (${cc}: ${(made.stderr || made.error?.message || '').trim()}); ` +
      'install-cni will install the standalone plugin as `podnet`',
  );
} else {
  publish(out, readFileSync(tmp), 0o755);
  rmSync(tmp, { force: true });
}
