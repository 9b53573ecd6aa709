// Builds the N-API addon with node-gyp. Runs as the package's install script, so a fresh
// `npm install` builds it, and from `npm run build` with --if-needed (skip when up to date).
// N-API is ABI-stable, so the headers of whichever Node is installed (Debian's, under /usr) work
// for the Node 24 that runs the code. node-gyp never downloads headers: the network may be closed.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const output = join(root, 'build', 'Release', 'podnet_native.node');

function newestSource() {
  const files = [
    join(root, 'binding.gyp'),
    ...readdirSync(join(root, 'native')).map((f) => join(root, 'native', f)),
  ];
  return Math.max(...files.map((f) => statSync(f).mtimeMs));
}

if (
  process.argv.includes('--if-needed') &&
  existsSync(output) &&
  statSync(output).mtimeMs >= newestSource()
) {
  process.exit(0);
}

function findNodeDir() {
  const candidates = [
    process.env.npm_config_nodedir,
    '/usr',
    '/usr/local',
    join(dirname(process.execPath), '..'),
  ];
  for (const dir of candidates) {
    if (
      dir &&
      existsSync(join(dir, 'include', 'node', 'node_api.h')) &&
      existsSync(join(dir, 'include', 'node', 'common.gypi'))
    ) {
      return dir;
    }
  }
  return undefined;
}

const nodedir = findNodeDir();
if (!nodedir) {
  console.error(
    'podnet/native: no Node headers found (looked for include/node/node_api.h under npm_config_nodedir, /usr, /usr/local).',
  );
  console.error("Install Debian's nodejs headers (package libnode-dev or nodejs) and retry.");
  process.exit(1);
}

// node-gyp: the one npm runs scripts with, else the copy bundled with an installed npm, else PATH.
function findNodeGyp() {
  const candidates = [
    process.env.npm_config_node_gyp,
    join(
      dirname(process.execPath),
      '..',
      'lib',
      'node_modules',
      'npm',
      'node_modules',
      'node-gyp',
      'bin',
      'node-gyp.js',
    ),
    '/usr/lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js',
    '/usr/local/lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js',
    '/usr/share/nodejs/node-gyp/bin/node-gyp.js',
  ];
  return candidates.find((c) => c && existsSync(c));
}

const gypScript = findNodeGyp();
const [cmd, args] = gypScript
  ? [process.execPath, [gypScript, 'rebuild', `--nodedir=${nodedir}`]]
  : ['node-gyp', ['rebuild', `--nodedir=${nodedir}`]];
const result = spawnSync(cmd, args, { cwd: root, stdio: 'inherit' });
if (result.error) {
  console.error(`podnet/native: could not run node-gyp: ${result.error.message}`);
  process.exit(1);
}
process.exit(result.status ?? 1);
